"""The system under test: a loaded IFNet on a device, in a precision, with padding and timesteps.

``Engine.interpolate`` is the only call the scenario runner makes per frame pair.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rife.execution import ExecutionPlan, for_network, plan_for, rebuilt, settings_for, wrapped
from rife.ifnet import IFNet
from rife.variants import Variant
from rife.vocabulary import PRECISIONS

DTYPES = dict(zip(PRECISIONS, (torch.float16, torch.bfloat16, torch.float32), strict=True))


class EngineError(Exception):
    """A configuration the model cannot run; the message says what to change."""


def check_frame_count(variant: Variant, count: int) -> None:
    """``paper`` only knows t = 0.5, so it makes 1, 3, 7, ... frames by recursive midpoints."""
    if count < 1:
        raise EngineError(f"--interpolation must be at least 1, got {count}")
    if not variant.has_timestep and count & (count + 1):
        raise EngineError(
            f"--interpolation {count} is not possible with the {variant.name} model, which only interpolates "
            f"midpoints: use 1, 3, 7, 15 ... (2^k - 1), or a release with a timestep (v4.0, 4.x) for any count"
        )


def timesteps(variant: Variant, count: int) -> list[float]:
    check_frame_count(variant, count)
    return [k / (count + 1) for k in range(1, count + 1)]


def padding_multiple(variant: Variant, scale: float = 1.0) -> int:
    """Frames are padded to this multiple: the variant's, larger where ``scale`` < 1 makes the flow coarser
    (as vs-rife pads: ``max(m, int(m / scale))``)."""
    return max(variant.pad_multiple, int(variant.pad_multiple / scale))


@dataclass(frozen=True)
class Precision:
    """How a precision is run: ``cast`` converts the model and inputs (the reference's way);
    otherwise the model stays fp32 under autocast, which keeps warps and resizes in fp32."""

    name: str
    autocast: bool

    @property
    def dtype(self) -> torch.dtype:
        return DTYPES[self.name]

    @property
    def input_dtype(self) -> torch.dtype:
        return torch.float32 if self.autocast else self.dtype


def resolve_precision(device: torch.device, name: str, amp: bool) -> Precision:
    if name not in DTYPES:
        raise EngineError(f"--precision {name!r} is not one of {', '.join(DTYPES)}")
    if device.type == "cpu":
        if name == "fp16":
            raise EngineError(
                "--precision fp16 is refused on the CPU: PyTorch's fp16 CPU kernels return NaN for this model; "
                "use bf16 (mixed precision) or fp32"
            )
        # Cast-to-bf16 on the CPU is far off (max error ~0.95); bf16 there always means autocast.
        return Precision(name, autocast=name == "bf16")
    return Precision(name, autocast=amp and name != "fp32")


class Engine:
    """A model (ours or upstream) plus how it is run on one device."""

    def __init__(self, net: nn.Module, variant: Variant, device: torch.device, precision: Precision,
                 scale: float = 1.0, pad_multiple: int | None = None, execution: ExecutionPlan | str = "eager",
                 ipex: bool = False) -> None:
        """``execution``: a plan resolved for this device (``plan_for``), or a mode's name to resolve here, with
        ``ipex`` (on an XPU, through ipex.optimize)."""
        self.variant = variant
        self.device = device
        self.precision = precision
        self.scale = scale
        self.pad_multiple = pad_multiple or padding_multiple(variant, scale)
        if not isinstance(execution, ExecutionPlan):
            execution = plan_for(execution, device, ours=isinstance(net, IFNet), ipex=ipex)
        self.plan = for_network(execution, net)
        net = net.eval().to(device)
        net = rebuilt(net if precision.autocast else net.to(precision.dtype), self.plan,
                      autocast_dtype=precision.dtype if precision.autocast else None)
        # Whether a call can follow the last (``IFNet.forward``'s ``follows``): a release with an encoder, ours.
        self.encodes_once = isinstance(net, IFNet) and variant.encoder is not None
        self.net = wrapped(net, self.plan, precision.dtype)
        # Process-wide settings, made around each call (``running``) and restored after it.
        self.settings = settings_for(self.plan)

    def padded_size(self, height: int, width: int) -> tuple[int, int]:
        m = self.pad_multiple
        return -(-height // m) * m, -(-width // m) * m

    def to_model_input(self, frames: Tensor) -> Tensor:
        """uint8 (N, 3, H, W) already on the device -> zero-padded floats in [0, 1]."""
        h, w = frames.shape[-2:]
        ph, pw = self.padded_size(h, w)
        x = frames.to(self.precision.input_dtype) / 255.0
        x = F.pad(x, (0, pw - w, 0, ph - h)) if (ph, pw) != (h, w) else x
        return x.contiguous(memory_format=torch.channels_last if self.plan.channels_last else torch.contiguous_format)

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """What a call of ``net`` runs under: the plan's torch settings and, in mixed precision, autocast."""
        with self.settings.applied(), self._autocast():
            yield

    def _autocast(self) -> contextlib.AbstractContextManager:
        if not self.precision.autocast:
            return contextlib.nullcontext()
        # Autocast's weight cache does not survive CUDA graph capture.
        return torch.autocast(self.device.type, dtype=self.precision.dtype, cache_enabled=not self.plan.graph)

    @torch.inference_mode()
    def interpolate(self, img0: Tensor, img1: Tensor, count: int, size: tuple[int, int],
                    between: Callable[[], None] | None = None, follows: bool = False) -> list[Tensor]:
        """``count`` frames between padded inputs ``img0`` and ``img1``, in time order,
        cropped to ``size`` (H, W); float in [0, 1], in the model's dtype. ``between`` is called before every
        model call after the first (a caller's chance to stop a long call: it may raise). ``follows``: sample k's
        ``img0`` is sample k - 1's ``img1``, and sample 0's the last call's last ``img1`` (consecutive pairs of a
        video): a release with an encoder encodes each frame once; the frames are the same."""
        h, w = size
        calls = 0

        def net(a: Tensor, b: Tensor, t: float) -> Tensor:
            nonlocal calls
            if calls and between is not None:
                between()
            calls += 1
            if self.encodes_once:  # the first call follows the last; the others read this pair's frames again
                return self.net(a, b, t, self.scale, follows=follows and calls == 1)
            return self.net(a, b, t, self.scale)

        with self.running():
            if self.variant.has_timestep:
                frames = [net(img0, img1, t) for t in timesteps(self.variant, count)]
            else:
                check_frame_count(self.variant, count)
                frames = self._midpoints(net, img0, img1, (count + 1).bit_length() - 1)
        return [f[:, :, :h, :w] for f in frames]

    def _midpoints(self, net: Callable[[Tensor, Tensor, float], Tensor], img0: Tensor, img1: Tensor,
                   depth: int) -> list[Tensor]:
        if depth == 0:
            return []
        mid = net(img0, img1, 0.5)
        return self._midpoints(net, img0, mid, depth - 1) + [mid] + self._midpoints(net, mid, img1, depth - 1)
