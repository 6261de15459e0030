"""A video's frames encoded once (``IFNet.forward``'s ``follows``, ``Engine.interpolate``'s): the same frames as
pair by pair, bit for bit on the CPU, with half the encoder's calls."""

from __future__ import annotations

from typing import cast

import pytest
import torch
from torch import Tensor

from rife import registry
from rife.engine import Engine, Precision
from rife.ifnet import IFNet


def video(frames: int, h: int = 64, w: int = 128) -> list[Tensor]:
    """A smooth frame moving a few pixels per frame, as a video's (1, 3, H, W) frames."""
    torch.manual_seed(3)
    base = torch.nn.functional.interpolate(torch.rand(1, 3, h // 8, w // 8), scale_factor=8.0, mode="bilinear")
    return [base.roll((k, 2 * k), (2, 3)) for k in range(frames)]


def encoded_frames(net: torch.nn.Module) -> list[int]:
    """A counter of the frames the encoder is given, updated as it runs."""
    seen = [0]
    cast(torch.nn.Module, net.encode).register_forward_hook(lambda module, args, out: seen.__setitem__(0, seen[0] + args[0].shape[0]))
    return seen


@pytest.mark.parametrize("release", ["4.25", "4.7"])
@pytest.mark.parametrize("batch", [1, 2])
def test_following_pairs_give_the_pairwise_frames(release: str, batch: int) -> None:
    torch.manual_seed(0)
    engine = Engine(IFNet(registry.get_variant(release)), registry.get_variant(release), torch.device("cpu"),
                    Precision("fp32", autocast=False), execution="eager")
    frames = video(2 * 3 * batch + 1)
    # Video triplets' pairs (frame 2k, frame 2k + 2), ``batch`` to a call, in order.
    pairs = [(frames[2 * k], frames[2 * k + 2]) for k in range(3 * batch)]
    calls = [pairs[i:i + batch] for i in range(0, len(pairs), batch)]
    seen = encoded_frames(engine.net)
    outputs: dict[bool, list[Tensor]] = {}
    for follows in (False, True):
        seen[0] = 0
        outputs[follows] = []
        for k, call in enumerate(calls):
            img0 = engine.to_model_input(torch.cat([a for a, _ in call]).mul(255).to(torch.uint8))
            img1 = engine.to_model_input(torch.cat([b for _, b in call]).mul(255).to(torch.uint8))
            outputs[follows] += engine.interpolate(img0, img1, 1, (64, 128), follows=follows and k > 0)
        encoded = seen[0]
        assert encoded == (2 * len(pairs) if not follows else 2 * batch + (len(calls) - 1) * batch)
    for got, want in zip(outputs[True], outputs[False], strict=True):
        assert torch.equal(got, want)


def test_a_call_that_follows_nothing_encodes_both_frames() -> None:
    net = IFNet(registry.get_variant("4.25")).eval()
    a, b = video(2)
    with torch.no_grad():
        assert torch.equal(net(a, b, 0.5, follows=True), net(a, b, 0.5))


def test_a_video_s_batches_in_order_follow_each_other() -> None:
    from harness.samples.dataset import Prefetcher, VideoTriplets

    frames = [f[0].permute(1, 2, 0).mul(255).to(torch.uint8).numpy() for f in video(13)]
    tset = VideoTriplets("clip", [f"clip/{2 * k:06d}" for k in range(6)], (64, 128), "0", frames)
    with Prefetcher(tset, list(range(6)), 2) as batches:
        got = list(batches)
    assert [b.follows for b in got] == [False, True, True]
    for before, after in zip(got, got[1:], strict=False):  # what following means: the shared frame
        assert torch.equal(after.first[0], before.last[-1]) and torch.equal(after.first[1:], after.last[:-1])
    with Prefetcher(tset, [0, 1, 3, 4], 2) as batches:  # a gap: the second batch does not follow
        assert [b.follows for b in batches] == [False, False]
