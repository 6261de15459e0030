"""Reading upstream ``flownet.pkl`` checkpoints: safely, strictly, with errors people can act on."""

from __future__ import annotations

import hashlib
import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from rife import registry
from rife.places import get_model_command
from rife.variants import Variant

DDP_PREFIX = "module."


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message says why and what to do."""


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Load a checkpoint with ``weights_only=True`` (nothing in the file is executed)
    and strip the DistributedDataParallel ``module.`` prefix."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"weights file {path} does not exist; run {get_model_command()} to fetch it or pass "
                              f"--pretrained-weights")
    if path.is_dir():
        raise CheckpointError(f"weights path {path} is a directory; pass the checkpoint file itself (e.g. {path}/flownet.pkl)")
    if path.stat().st_size == 0:
        raise CheckpointError(f"weights file {path} is empty; delete it and run {get_model_command()} again")
    if not _looks_like_a_checkpoint(path):
        raise CheckpointError(f"weights file {path} is not a PyTorch checkpoint (neither a torch.save zip archive "
                              f"nor a pickle); pass an upstream flownet.pkl")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # PyTorch's message advises turning the safe loader off; that advice is not passed on.
        found = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) (\S+)", str(e))
        if found is None:
            raise CheckpointError(f"weights file {path} is not a PyTorch checkpoint of tensors (damaged or another "
                                  f"kind of pickle); pass an upstream flownet.pkl") from None
        raise CheckpointError(
            f"weights file {path} was refused by the safe loader: it holds objects other than tensors "
            f"({found.group(1)}), which could run code; use an upstream flownet.pkl"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as e:
        raise CheckpointError(
            f"weights file {path} is not a readable PyTorch checkpoint (truncated or another format: "
            f"{type(e).__name__}); delete it and run {get_model_command()} again"
        ) from None
    if not isinstance(loaded, Mapping) or not all(isinstance(v, Tensor) for v in loaded.values()):
        raise CheckpointError(f"weights file {path} is not a state dict of tensors (found {type(loaded).__name__}); use an upstream flownet.pkl")
    return {_strip_prefix(str(k)): v for k, v in loaded.items()}


def _looks_like_a_checkpoint(path: Path) -> bool:
    """torch.save writes a zip archive (or, before PyTorch 1.6, a pickle: protocol 2 and up start with 0x80)."""
    with open(path, "rb") as f:
        start = f.read(4)
    return start == b"PK\x03\x04" or start[:1] == b"\x80"


def _strip_prefix(key: str) -> str:
    return key[len(DDP_PREFIX):] if key.startswith(DDP_PREFIX) else key


def shapes_of(state: Mapping[str, Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


def detect_releases(state: Mapping[str, Tensor]) -> tuple[str, ...]:
    """The releases whose architecture the checkpoint holds (every key and shape, see ``rife.registry.matches``);
    more than one where releases share an architecture (4.25 and 4.26, v3.6 and v3.8)."""
    return registry.candidates(shapes_of(state))


def held_releases(state: Mapping[str, Tensor], sha256: str | None = None) -> tuple[str, ...]:
    """``detect_releases``, narrowed to one where the file's sha256 is a release's published one."""
    found = detect_releases(state)
    pinned = registry.pinned(sha256) if sha256 is not None else None
    return (pinned,) if pinned in found else found


def detect_variant(state: Mapping[str, Tensor], sha256: str | None = None) -> str:
    """The one release the checkpoint holds: by its architecture, and where several releases share it, by the
    published file's sha256, else an error that names them and asks for --arch. A checkpoint of no known
    architecture gives the closest release, whose strict load then names what differs."""
    found = held_releases(state, sha256)
    if len(found) == 1:
        return found[0]
    if not found:
        return registry.closest(shapes_of(state))
    raise CheckpointError(f"the checkpoint holds {registry.describe(found)} network, which these releases share; "
                          f"pass --arch {found[-1]} (or another of them) to say which")


def expected_unused_prefixes(variant: Variant) -> tuple[str, ...]:
    """Keys a checkpoint carries that inference never uses: the teacher, and the refinement networks of
    variants that run without them."""
    return registry.UNUSED_PREFIXES if not variant.refine_unet else ("block_tea.",)


def check_variant(state: Mapping[str, Tensor], variant: Variant, source: str, sha256: str | None = None) -> None:
    """Refuse a checkpoint of another known release, naming what it holds (one of no known architecture is left
    to the strict load, which names the keys that differ)."""
    found = detect_releases(state)
    if variant.name not in found:
        found = held_releases(state, sha256)
    if found and variant.name not in found:
        raise CheckpointError(f"{source} holds {registry.describe(found)} checkpoint but --arch {variant.name} was "
                              f"asked for; drop --arch or pass --arch {found[-1]}")


def load_into(model: nn.Module, variant: Variant, state: Mapping[str, Tensor], source: str,
              sha256: str | None = None) -> None:
    """Copy ``state`` into ``model`` with strict key and shape checks."""
    check_variant(state, variant, source, sha256)
    wanted = model.state_dict()
    unused = expected_unused_prefixes(variant)
    missing = sorted(k for k in wanted if k not in state)
    unexpected = sorted(k for k in state if k not in wanted and not k.startswith(unused))
    misshaped = sorted(
        f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
        for k, v in wanted.items() if k in state and state[k].shape != v.shape
    )
    problems = []
    for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("mis-shaped keys", misshaped)):
        if keys:
            shown = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
            problems.append(f"{len(keys)} {label}: {shown}")
    if problems:
        raise CheckpointError(f"{source} does not fit the {variant.name} model: " + "; ".join(problems))
    model.load_state_dict({k: state[k] for k in wanted}, strict=True)

