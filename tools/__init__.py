"""Maintainers' tools: the GPU table, the release checks and the GPU acceptance command, all measured through
the harness's measurement core."""
