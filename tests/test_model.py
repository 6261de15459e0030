"""The model layer: checkpoints, safe loading, equality with upstream, published figures, precision, sizes."""

from __future__ import annotations

import dataclasses
import math
import os
import pickle
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

import metrics
from rife import families
from rife.assets import v4_upstream_dir
from rife.checkpoint import CheckpointError, detect_releases, read_state_dict
from rife.engine import Engine, EngineError, resolve_precision
from rife.ifnet import IFNet
from rife.kernels import Kernels
from rife.loader import ModelChoice, load_model
from rife.registry import VARIANTS, get_variant

CPU = torch.device("cpu")
AT_720P = pytest.mark.slow  # the same check on the whole 1280 x 720 frame, in the full suite


def upstream_layout_checkpoint(variant_name: str, path: Path, seed: int = 0) -> Path:
    """Random weights saved as upstream saves them: ``module.`` prefix, teacher and unused nets included."""
    variant = get_variant(variant_name)
    torch.manual_seed(seed)
    net = IFNet(variant)
    state = OrderedDict((f"module.{k}", v) for k, v in net.state_dict().items())
    teacher = IFNet(VARIANTS["paper"]).block0.__class__(variant.teacher_in_channels, variant.block_widths[-1])
    state.update((f"module.block_tea.{k}", v) for k, v in teacher.state_dict().items())
    if not variant.refine_unet:
        paper = IFNet(VARIANTS["paper"])
        state.update((f"module.{k}", v) for k, v in paper.state_dict().items() if k.startswith(("contextnet.", "unet.")))
    torch.save(state, path)
    return path


@pytest.mark.parametrize("arch", ["paper", "v4.0"])
def test_upstream_layout_loads_strictly_and_is_detected(tmp_path, arch):
    """v4.0's architecture is 4.1's too: detection names both, and --arch says which (the published v4.0 file is
    told apart by its sha256, see test_v4_real_checkpoint_facts)."""
    path = upstream_layout_checkpoint(arch, tmp_path / "flownet.pkl")
    state = read_state_dict(path)
    assert detect_releases(state) == {"paper": ("paper",), "v4.0": ("v4.0", "4.1")}[arch]
    loaded = load_model(ModelChoice(weights=path, arch=arch))
    assert loaded.variant.name == arch
    for k, v in loaded.net.state_dict().items():
        assert torch.equal(v, state[k])
    assert len(loaded.weights_sha256) == 64


def test_v4_real_checkpoint_facts(v4_weights):
    state = read_state_dict(v4_weights)
    assert len(state) == 222
    assert sum(v.numel() for v in state.values()) == 8_738_588
    assert state["block0.conv0.0.0.weight"].shape == (96, 7, 3, 3)
    assert load_model(ModelChoice(weights=v4_weights)).variant.name == "v4.0"


def test_arch_mismatch_says_what_the_file_holds(tmp_path):
    path = upstream_layout_checkpoint("v4.0", tmp_path / "v4.pkl")
    with pytest.raises(CheckpointError, match=r"holds a v4.0 / 4.1 \(one architecture\) checkpoint but --arch paper"):
        load_model(ModelChoice(arch="paper", weights=path))


def test_missing_unexpected_and_misshaped_keys_are_named(tmp_path):
    state = torch.load(upstream_layout_checkpoint("paper", tmp_path / "a.pkl"), weights_only=True)
    del state["module.block1.lastconv.bias"]
    state["module.block2.extra.weight"] = torch.zeros(3)
    state["module.unet.conv.weight"] = torch.zeros(3, 16, 5, 5)
    torch.save(state, tmp_path / "bad.pkl")
    with pytest.raises(CheckpointError) as err:
        load_model(ModelChoice(weights=tmp_path / "bad.pkl"))
    text = str(err.value)
    assert "1 missing keys: block1.lastconv.bias" in text
    assert "1 unexpected keys: block2.extra.weight" in text
    assert "unet.conv.weight (3, 16, 5, 5) (expected (3, 16, 3, 3))" in text


class _Payload:
    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    good = upstream_layout_checkpoint("paper", tmp_path / "good.pkl")
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    empty = tmp_path / "empty.pkl"
    empty.write_bytes(b"")
    text = tmp_path / "text.pkl"
    text.write_text("not a checkpoint\n")
    not_dict = tmp_path / "list.pkl"
    torch.save([1, 2, 3], not_dict)
    return {
        "missing": (tmp_path / "nope.pkl", "does not exist"),
        "directory": (tmp_path, "is a directory"),
        "empty": (empty, "is empty"),
        "truncated": (truncated, "not a readable PyTorch checkpoint"),
        "text": (text, "is not a PyTorch checkpoint \\(neither"),
        "not a state dict": (not_dict, "not a state dict of tensors"),
    }


def test_each_bad_file_gets_one_clear_error(tmp_path):
    for case, (path, message) in _bad_files(tmp_path).items():
        with pytest.raises(CheckpointError, match=message) as err:
            read_state_dict(path)
        assert "\n" not in str(err.value), case


@pytest.mark.parametrize("container", ["torch.save", "raw pickle"])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, container):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pkl"
    payload = {"module.block0.conv0.0.0.weight": torch.zeros(1), "x": _Payload(str(marker))}
    if container == "torch.save":
        torch.save(payload, evil)
    else:
        evil.write_bytes(pickle.dumps(payload))
    with pytest.raises(CheckpointError, match="refused by the safe loader|not a readable|not a PyTorch checkpoint"):
        read_state_dict(evil)
    assert not marker.exists()


def _triplet_psnr(engine: Engine, frames: list[torch.Tensor], i: int, t: float = 0.5) -> tuple[torch.Tensor, float]:
    h, w = frames[i].shape[-2:]
    img0, img1 = engine.to_model_input(frames[i]), engine.to_model_input(frames[i + 2])
    if t == 0.5:
        out = engine.interpolate(img0, img1, 1, (h, w))[0]
    else:
        with torch.inference_mode():
            out = engine.net(img0, img1, t)[:, :, :h, :w]
    return out, float(metrics.psnr(out.float(), frames[i + 1])[0])


@pytest.fixture(scope="module")
def v4_engines(v4_weights):
    fp32 = resolve_precision(CPU, "fp32", False)
    ours = load_model(ModelChoice(weights=v4_weights))
    upstream = load_model(ModelChoice(weights=v4_weights, impl="upstream"))
    return Engine(ours.net, ours.variant, CPU, fp32), Engine(upstream.net, upstream.variant, CPU, fp32)


@pytest.mark.parametrize("clip,i,t", [("bunny crop", 0, 0.5), ("bikes", 28, 0.5), ("bunny crop", 4, 0.25),
                                      pytest.param("bunny", 0, 0.5, marks=AT_720P),
                                      pytest.param("bunny", 4, 0.25, marks=AT_720P)])
def test_v4_equals_upstream_on_real_frames(v4_engines, clips, clip, i, t):
    """i = 28 of bikes.mp4 triggers the large-motion retry."""
    frames = clips[clip]
    ours, upstream = v4_engines
    a, _ = _triplet_psnr(ours, frames, i, t)
    b, _ = _triplet_psnr(upstream, frames, i, t)
    assert (a - b).abs().max().item() <= 1e-4


@pytest.fixture(scope="module")
def v4_ensemble_engines(v4_weights):
    fp32 = resolve_precision(CPU, "fp32", False)
    ours = load_model(ModelChoice(weights=v4_weights, ensemble=True))
    upstream = load_model(ModelChoice(weights=v4_weights, impl="upstream", ensemble=True))
    return Engine(ours.net, ours.variant, CPU, fp32), Engine(upstream.net, upstream.variant, CPU, fp32)


@pytest.mark.parametrize("clip,i,retries", [("bunny crop", 0, False), ("bikes", 28, True)])
def test_v4_ensemble_equals_upstream_on_real_frames(v4_engines, v4_ensemble_engines, clips, clip, i, retries,
                                                    monkeypatch):
    """``--ensemble yes`` with 4.0: every block in both directions, averaged; the large-motion retry decided on the
    frames' own direction, and its pass's first block one way only, as upstream runs it."""
    wanted = []
    run = families.GeneralPass._run

    def spy(self, frames, scales, retry=None, one_way_first=False):
        out, wants = run(self, frames, scales, retry, one_way_first)
        if wants is not None:
            wanted.append(bool(wants.any()))
        return out, wants

    monkeypatch.setattr(families.GeneralPass, "_run", spy)
    ours, upstream = v4_ensemble_engines
    a, _ = _triplet_psnr(ours, clips[clip], i)
    b, _ = _triplet_psnr(upstream, clips[clip], i)
    assert wanted == [retries]
    assert (a - b).abs().max().item() <= 1e-4
    one_way, _ = _triplet_psnr(v4_engines[0], clips[clip], i)
    assert (a - one_way).abs().max().item() > 1e-3  # the second direction changed the frame


def test_retry_triplet_really_retries(v4_engines, bikes_frames):
    net = v4_engines[0].net
    calls = []
    original = net.classic.estimate

    def spy(*args, **kwargs):
        state, wants = original(*args, **kwargs)
        calls.append(None if wants is None else bool(wants.any()))
        return state, wants

    net.classic.estimate = spy
    try:
        _triplet_psnr(v4_engines[0], bikes_frames, 28)
    finally:
        del net.classic.estimate
    assert calls == [True, None]  # the retry was wanted, and the doubled-scale pass ran


FIRST_BUNNY_TRIPLET = 33.977


@pytest.mark.parametrize("clip,expected", [pytest.param("bunny", 34.684, marks=AT_720P), ("bikes", 40.047)])
def test_published_psnr_first_ten_triplets(v4_engines, clips, clip, expected):
    frames = clips[clip]
    scores = [_triplet_psnr(v4_engines[0], frames, i)[1] for i in range(0, 19, 2)]
    assert abs(sum(scores) / len(scores) - expected) <= 0.01
    if clip == "bunny":
        assert abs(scores[0] - FIRST_BUNNY_TRIPLET) < 1e-3 and abs(scores[3] - 29.941) < 1e-3


def test_first_bunny_triplet_at_720p(v4_engines, clips):
    """The first of the ten 720p triplets above (all ten: ``slow``), a whole frame in the fast tier."""
    assert abs(_triplet_psnr(v4_engines[0], clips["bunny"], 0)[1] - FIRST_BUNNY_TRIPLET) < 1e-3


def test_cpu_fp16_is_refused_with_one_line():
    with pytest.raises(EngineError, match="fp16 is refused on the CPU") as err:
        resolve_precision(CPU, "fp16", False)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("clip", ["bunny crop", pytest.param("bunny", marks=AT_720P)])
def test_cpu_bf16_is_mixed_precision_and_keeps_the_frames(v4_weights, clips, clip):
    bf16 = resolve_precision(CPU, "bf16", False)
    assert bf16.autocast and bf16.input_dtype == torch.float32
    loaded = load_model(ModelChoice(weights=v4_weights))
    fp32_engine = Engine(loaded.net, loaded.variant, CPU, resolve_precision(CPU, "fp32", False))
    ref = [_triplet_psnr(fp32_engine, clips[clip], i)[0] for i in (0, 6)]
    bf16_engine = Engine(load_model(ModelChoice(weights=v4_weights)).net, loaded.variant, CPU, bf16)
    out = [_triplet_psnr(bf16_engine, clips[clip], i)[0] for i in (0, 6)]
    for a, b in zip(out, ref, strict=True):
        mse = (a.double() - b.double()).pow(2).mean().item()
        assert -10 * math.log10(mse) >= 50.0


@pytest.mark.parametrize("arch", ["paper", "v4.0"])
def test_odd_sizes_are_padded_and_cropped(tmp_path, arch):
    loaded = load_model(ModelChoice(weights=upstream_layout_checkpoint(arch, tmp_path / "w.pkl"), arch=arch))
    engine = Engine(loaded.net, loaded.variant, CPU, resolve_precision(CPU, "fp32", False))
    assert engine.padded_size(250, 333) == ((256, 352) if arch == "paper" else (256, 384))
    frames = torch.randint(0, 256, (2, 1, 3, 250, 333), dtype=torch.uint8)
    img0, img1 = engine.to_model_input(frames[0]), engine.to_model_input(frames[1])
    assert img0[..., 250:, :].abs().sum() == 0 and img0[..., :, 333:].abs().sum() == 0
    out = engine.interpolate(img0, img1, 3, (250, 333))
    assert len(out) == 3 and all(o.shape == (1, 3, 250, 333) for o in out)
    assert all(torch.isfinite(o).all() and 0 <= o.min() and o.max() <= 1 for o in out)


def test_paper_refuses_frame_counts_it_cannot_make(tmp_path):
    loaded = load_model(ModelChoice(weights=upstream_layout_checkpoint("paper", tmp_path / "w.pkl")))
    engine = Engine(loaded.net, loaded.variant, CPU, resolve_precision(CPU, "fp32", False))
    x = torch.rand(1, 3, 64, 64)
    with pytest.raises(EngineError, match=r"--interpolation 2 is not possible .* 1, 3, 7"):
        engine.interpolate(x, x, 2, (64, 64))


def test_paper_three_frames_are_recursive_midpoints(tmp_path):
    loaded = load_model(ModelChoice(weights=upstream_layout_checkpoint("paper", tmp_path / "w.pkl")))
    engine = Engine(loaded.net, loaded.variant, CPU, resolve_precision(CPU, "fp32", False))
    a, b = torch.rand(1, 3, 64, 96), torch.rand(1, 3, 64, 96)
    frames = engine.interpolate(a, b, 3, (64, 96))
    with torch.inference_mode():
        mid = engine.net(a, b)
        assert torch.equal(frames[1], mid)
        assert torch.equal(frames[0], engine.net(a, mid))
        assert torch.equal(frames[2], engine.net(mid, b))


def test_v4_timesteps_are_k_over_n_plus_1(v4_engines, bunny_frames):
    engine = v4_engines[0]
    small = [f[..., :128, :192] for f in bunny_frames[:3]]
    img0, img1 = engine.to_model_input(small[0]), engine.to_model_input(small[2])
    frames = engine.interpolate(img0, img1, 3, (128, 192))
    with torch.inference_mode():
        for k, f in enumerate(frames, 1):
            assert torch.equal(f, engine.net(img0, img1, k / 4)[:, :, :128, :192])


def test_random_init_only_for_performance_mode(tmp_path, monkeypatch):
    monkeypatch.setattr("rife.loader.default_weights", lambda arch: tmp_path / "absent.pkl")
    with pytest.raises(CheckpointError, match="quality mode needs real weights; run ./get_model.sh"):
        load_model(ModelChoice())
    with pytest.warns(UserWarning, match="seeded random weights"):
        a = load_model(ModelChoice(allow_random_init=True, seed=3))
    with pytest.warns(UserWarning):
        b = load_model(ModelChoice(allow_random_init=True, seed=3))
    assert a.weights_label == "random-init" and a.variant.name == "paper"
    assert all(torch.equal(x, y) for x, y in zip(a.net.state_dict().values(), b.net.state_dict().values(), strict=True))


def test_upstream_v4_code_is_cached_beside_the_weights(v4_weights):
    code = v4_upstream_dir(v4_weights)
    assert {p.name for p in code.iterdir()} >= {"IFNet_HDv3.py", "warplayer.py", "refine.py", "LICENSE"}


@pytest.mark.parametrize("i", [0, 28])
def test_retry_decided_on_the_device_gives_the_same_frames(v4_weights, bikes_frames, i):
    """The graph-capturable retry (both candidates computed, then selected) equals the host decision, with the
    candidates computed in the other order: ``fast`` runs them at once on two CUDA streams, so neither may depend
    on the other."""
    host = load_model(ModelChoice(weights=v4_weights)).net
    device = load_model(ModelChoice(weights=v4_weights)).net
    forks = []

    def second_first(first, second):
        forks.append(None)
        later = second()
        return first(), later

    fp32 = resolve_precision(CPU, "fp32", False)
    on_device = Engine(device, device.variant, CPU, fp32)
    # After the engine, whose eager plan decides on the host.
    on_device.net = on_device.net.with_kernels(Kernels(retry_on_device=True, fork_join=second_first))
    a, _ = _triplet_psnr(Engine(host, host.variant, CPU, fp32), bikes_frames, i)
    b, _ = _triplet_psnr(on_device, bikes_frames, i)
    assert torch.equal(a, b) and len(forks) == 1


def test_paper_refinement_parts_are_independent():
    """The refinement's first level and the context network (which ``fast`` runs at once on two CUDA streams)
    give the same frame computed in the other order, one fork per frame."""
    with pytest.warns(UserWarning, match="seeded random weights"):
        net = load_model(ModelChoice(allow_random_init=True, seed=5)).net.eval()
    forks = []

    def second_first(first, second):
        forks.append(None)
        later = second()
        return first(), later

    torch.manual_seed(0)
    x0, x1 = torch.rand(1, 3, 64, 96), torch.rand(1, 3, 64, 96)
    with torch.inference_mode():
        a = net(x0, x1)
        b = net.with_kernels(Kernels(fork_join=second_first))(x0, x1)
    assert torch.equal(a, b) and len(forks) == 1


def _upstream_warp(img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """The upstream warp, term for term: an NCHW grid plus the normalised flow, permuted for grid_sample."""
    n, _, h, w = flow.shape
    xs = torch.linspace(-1.0, 1.0, w).view(1, 1, 1, w).expand(n, -1, h, -1)
    ys = torch.linspace(-1.0, 1.0, h).view(1, 1, h, 1).expand(n, -1, -1, w)
    flow = torch.cat([flow[:, 0:1] / ((w - 1.0) / 2.0), flow[:, 1:2] / ((h - 1.0) / 2.0)], 1)
    grid = (torch.cat([xs, ys], 1) + flow).permute(0, 2, 3, 1)
    return torch.nn.functional.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=True)


@pytest.mark.parametrize("channels_last", [False, True])
def test_warp_grid_in_grid_sample_layout_gives_upstreams_numbers(channels_last):
    from rife.layers import Warper

    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    img = torch.rand(2, 3, 24, 40).contiguous(memory_format=fmt)
    flow4 = (torch.randn(2, 4, 24, 40) * 8).contiguous(memory_format=fmt)
    warp = Warper()
    for flow in (flow4[:, 0:2], flow4[:, 2:4]):
        assert torch.equal(warp(img, flow), _upstream_warp(img, flow))
        assert torch.equal(warp(img, flow), _upstream_warp(img, flow))  # from the cached grid too


def test_cat_padded_appends_zero_channels_and_keeps_channels_last():
    from rife.layers import cat_padded

    a = torch.rand(1, 3, 4, 5).contiguous(memory_format=torch.channels_last)
    b = torch.rand(1, 2, 4, 5).contiguous(memory_format=torch.channels_last)
    out = cat_padded([a, b], 8)
    assert out.shape == (1, 8, 4, 5) and out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out[:, :5], torch.cat((a, b), 1)) and not out[:, 5:].any()
    assert cat_padded([a], 3) is a


def test_flow_step_warps_both_frames_as_separate_warps_would():
    from rife.ifnet import FlowState, FlowStep
    from rife.layers import Warper

    torch.manual_seed(0)
    warp = Warper()
    img0, img1 = torch.rand(1, 3, 16, 24), torch.rand(1, 3, 16, 24)
    prev = FlowState(torch.randn(1, 4, 16, 24) * 3, torch.randn(1, 1, 16, 24), img0, img1)
    state, peaks = FlowStep(warp)(torch.randn(1, 5, 4, 6), 2.0, prev, img0, img1, measure=True)
    assert torch.equal(state.warped0, warp(img0, state.flow[:, 0:2]))
    assert torch.equal(state.warped1, warp(img1, state.flow[:, 2:4]))
    change = state.flow - prev.flow
    assert torch.allclose(peaks[0], torch.stack((change[:, 0:2].abs().max(), change[:, 2:4].abs().max())), atol=1e-5)


@pytest.mark.parametrize("clip,i,retries", [("bunny crop", 0, False), ("bikes", 28, True),
                                            pytest.param("bunny", 0, False, marks=AT_720P)])
def test_retry_on_host_gives_forward_output(v4_engines, clips, clip, i, retries):
    """``head`` + ``tail`` is the pass of a frame that wants no retry; a frame that wants it gets the whole pass
    with both candidates: either way the output of ``forward`` (retry decided on the host and on the device)."""
    frames = clips[clip]
    engine = v4_engines[0]
    net = engine.net
    img0, img1 = engine.to_model_input(frames[i]), engine.to_model_input(frames[i + 2])
    with torch.inference_mode():
        host = net(img0, img1, 0.5)
        assert bool(net.head(img0, img1, 0.5)[1].any()) == retries
        on_device = net.with_kernels(dataclasses.replace(net.kernels, retry_on_device=True))
        device = on_device(img0, img1, 0.5)
        state, wants_retry = on_device.head(img0, img1, 0.5)
        # What fast's graphs do (rife.execution.GraphedRetryOnHost): the whole pass only when a sample wants it.
        split = on_device(img0, img1, 0.5) if bool(wants_retry.any()) else on_device.tail(img0, img1, state, 0.5)
    assert torch.equal(split, device)
    assert (split - host).abs().max().item() <= 1e-6
