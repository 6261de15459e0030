"""Scenario runner: streams, timing, stopping rules, result files."""
