"""The documentation: the generated pages are current, the README is short and keeps the commands CI and a fresh clone
rely on, every relative link resolves, and every option and release is documented."""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

import pytest

import arguments
from rife import registry
from tools import docs

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
QUICK_START = "./run_model.sh --dummy"
TEST_COMMAND = "./setup.sh && .venv/bin/python -m pytest -q"


def test_the_generated_pages_are_what_the_generator_writes():
    assert docs.stale() == [], "run: python -m tools.docs"
    assert docs.main(["--check"]) == 0


def test_check_names_a_stale_page_and_writing_makes_it_current(tmp_path, monkeypatch, capsys):
    (tmp_path / "docs").mkdir()
    for page in (docs.OPTIONS_PAGE, docs.MODELS_PAGE):
        shutil.copy(page, tmp_path / "docs" / page.name)
    monkeypatch.setattr(docs, "ROOT", tmp_path)
    monkeypatch.setattr(docs, "OPTIONS_PAGE", tmp_path / "docs" / "options.md")
    monkeypatch.setattr(docs, "MODELS_PAGE", tmp_path / "docs" / "models.md")
    stale = tmp_path / "docs" / "options.md"
    stale.write_text(stale.read_text().replace("| `--dummy` |", "| `--dummy-old` |"))

    assert docs.main(["--check"]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "docs/options.md" in lines[0] and "models.md" not in lines[0]

    assert docs.main([]) == 0
    assert stale.read_text() == (ROOT / "docs" / "options.md").read_text()
    assert docs.main(["--check"]) == 0


def test_a_page_without_its_markers_is_one_line_naming_the_block(tmp_path, monkeypatch, capsys):
    (tmp_path / "docs").mkdir()
    shutil.copy(docs.MODELS_PAGE, tmp_path / "docs" / "models.md")
    (tmp_path / "docs" / "options.md").write_text("# Options\n\nno table here\n")
    monkeypatch.setattr(docs, "ROOT", tmp_path)
    monkeypatch.setattr(docs, "OPTIONS_PAGE", tmp_path / "docs" / "options.md")
    monkeypatch.setattr(docs, "MODELS_PAGE", tmp_path / "docs" / "models.md")
    assert docs.main(["--check"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "docs/options.md" in err[0] and "'options'" in err[0]


def test_the_output_is_deterministic():
    assert docs.expected() == docs.expected()


def test_the_readme_is_short_and_keeps_the_commands_ci_and_a_fresh_clone_run():
    text = README.read_text()
    assert len(text.splitlines()) <= 150
    lines = [line.strip() for line in text.splitlines()]
    assert QUICK_START in lines
    assert TEST_COMMAND in lines
    ci = (ROOT / ".ci" / "run").read_text()  # CI runs the same command (its setup quietly)
    assert TEST_COMMAND.replace("./setup.sh", "./setup.sh >/dev/null") in ci


def _prose(text: str) -> str:
    """``text`` without fenced code blocks and inline code, where brackets are not links."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.DOTALL | re.MULTILINE)
    return re.sub(r"`[^`\n]*`", "", text)


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown page."""
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#{1,6}\s+(.*?)\s*#*$", re.sub(r"^```.*?^```", "", path.read_text(),
                                                                   flags=re.DOTALL | re.MULTILINE), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    links = re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", _prose(page.read_text()))
    broken = []
    for link in links:
        if re.match(r"[a-z][a-z0-9+.-]*:", link):  # https:, mailto:
            continue
        target, _, anchor = link.partition("#")
        path = (page.parent / target).resolve() if target else page
        if not path.exists():
            broken.append(f"{link}: no {path}")
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(f"{link}: no heading #{anchor} in {path.name}")
    assert not broken, broken


def test_every_page_of_docs_is_linked_from_the_readme():
    linked = set(re.findall(r"\]\(docs/([^)#]+)", README.read_text()))
    assert {p.name for p in PAGES} <= linked


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    out = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                out |= _flags(sub)
        elif not isinstance(action, argparse._HelpAction):
            out.update(action.option_strings)
    return out


def test_every_option_and_variable_is_in_the_options_page():
    page = (ROOT / "docs" / "options.md").read_text()
    flags = _flags(arguments.build_parser())
    assert flags, "the parser has no options"
    assert not [f for f in sorted(flags) if f"`{f}`" not in page]
    assert not [v for o in arguments.OPTIONS for v in o.env if f"`{v}`" not in page]


def test_every_release_is_in_the_models_page():
    page = (ROOT / "docs" / "models.md").read_text()
    assert registry.RELEASES
    names = [r.name for r in registry.RELEASES] + list(registry.ALIASES)
    assert not [n for n in names if f"`{n}`" not in page]
    # in both generated tables: one row each
    for table in ("releases", "weights"):
        block = page.split(f"<!-- generated: {table} ")[1].split(f"<!-- end generated: {table} -->")[0]
        assert [line.split(" | ")[0].split("`")[1] for line in block.splitlines() if line.startswith("| `")
                and not line.startswith("| `--arch`")] == [r.name for r in registry.RELEASES]
