"""Every Triton kernel form that ``fast`` launches on CUDA, compiled for an NVIDIA architecture on a machine without a
GPU. Each release's ``fast`` pass runs on the meta device (shapes, strides and dtypes, no data); each launch's kernel
and arguments are collected instead of launched; each distinct form (kernel, argument types, constexpr values) goes
through Triton's compiler down to a cubin, with the ptxas that Triton ships. A form that does not compile fails here,
before a GPU runs it; Triton's interpreter (the kernels' CPU tests) accepts code that the compiler rejects.

    python -m tools.kernel_compile [--releases paper,v4.0,4.25] [--sizes 1280x720] [--batches 1,8] [--arch 90]

The Triton here compiles: a GPU's own (the one its PyTorch brings) may be another version.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import sys
import time
import warnings
from collections.abc import Iterator
from typing import Any
from unittest import mock

import torch
from torch import Tensor

from rife import registry
from rife.engine import Engine, Precision
from rife.execution import plan_for
from rife.ifnet import IFNet
from rife.loader import ModelChoice, load_model

META = torch.device("meta")
CUDA = torch.device("cuda")
POINTER_TYPES = {torch.float16: "*fp16", torch.bfloat16: "*bf16", torch.float32: "*fp32", torch.bool: "*i1",
                 torch.uint8: "*u8", torch.int32: "*i32", torch.int64: "*i64"}


@dataclasses.dataclass(frozen=True)
class KernelForm:
    """What Triton compiles a launch into: the kernel, its arguments' types and its constexpr values."""

    name: str
    signature: tuple[tuple[str, str], ...]
    constexprs: tuple[tuple[str, Any], ...]


def argument_type(name: str, value: Any) -> str:
    if isinstance(value, Tensor):
        return POINTER_TYPES[value.dtype]
    if isinstance(value, bool):
        return "i1"
    if isinstance(value, int):
        return "i32" if -2 ** 31 <= value < 2 ** 31 else "i64"
    if isinstance(value, float):
        return "fp32"
    raise TypeError(f"argument {name}: a {type(value).__name__}, which the kernels do not take")


def form_of(fn: Any, args: dict[str, Any]) -> KernelForm:
    signature, constexprs = [], []
    for param in fn.params:
        value = args[param.name]
        if param.is_constexpr:
            signature.append((param.name, "constexpr"))
            constexprs.append((param.name, value))
        else:
            signature.append((param.name, argument_type(param.name, value)))
    return KernelForm(fn.__name__, tuple(signature), tuple(constexprs))


def fast_engine_on_meta(arch: str) -> Engine:
    """The release's network as ``fast`` runs it on CUDA (widened, subpixel deconvolutions with unshuffled heads, the
    Triton kernels, each stage compiled), on the meta device: all but the CUDA graph and the cuDNN frontend's fused
    convolutions, which need a GPU. Random weights where none are found: only shapes count."""
    plan = dataclasses.replace(plan_for("fast", CUDA), graph=False, fused_convs=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = load_model(ModelChoice(arch=arch, allow_random_init=True))
    return Engine(loaded.net, loaded.variant, META, Precision("fp16", autocast=False), execution=plan)


@contextlib.contextmanager
def traced_without_inductor() -> Iterator[None]:
    """torch.compile tracing with dynamo and running the graph as traced (no generated code): on meta tensors."""
    with mock.patch.object(torch, "compile", functools.partial(torch.compile, backend="eager")):
        yield


def collected_forms(arch: str, size: tuple[int, int], batch: int) -> dict[KernelForm, Any]:
    """The kernel forms one ``fast`` call launches for ``arch`` on ``batch`` frames of ``size`` (height, width), each
    with its ``triton.jit`` function."""
    from rife import triton_warp

    forms: dict[KernelForm, Any] = {}

    def record(kernel: Any, grid: tuple[int, int, int], *groups: Any, **scalars: Any) -> None:
        fn = triton_warp.jit_function(kernel)
        forms.setdefault(form_of(fn, triton_warp.arguments(kernel, *groups, **scalars)), fn)

    torch._dynamo.reset()  # each release's graphs afresh: dynamo's recompile limit counts across engines
    with traced_without_inductor(), mock.patch.object(triton_warp, "_run", record):
        engine = fast_engine_on_meta(arch)
        h, w = size
        frames = engine.to_model_input(torch.empty(batch, 3, h, w, dtype=torch.uint8, device=META))
        engine.interpolate(frames, frames, 1, (h, w))
        net = engine.net
        if isinstance(net, IFNet) and net.decides_on_host:  # the parts fast's CUDA graphs hold when the host decides
            state, _ = net.head(frames, frames)
            net.tail(frames, frames, state)
    return forms


def compiled_size(form: KernelForm, fn: Any, arch: int) -> int:
    """Compiles ``form`` for CUDA compute capability ``arch`` (90: Hopper); returns the cubin's size in bytes."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    source = ASTSource(fn, dict(form.signature), dict(form.constexprs))
    return len(triton.compile(source, target=GPUTarget("cuda", arch, 32)).asm["cubin"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--releases", default=",".join(registry.FAMILIES), help="comma-separated (default: the families)")
    p.add_argument("--sizes", default="1280x720", help="WxH, comma-separated")
    p.add_argument("--batches", default="1", help="comma-separated")
    p.add_argument("--arch", type=int, default=90, help="CUDA compute capability times ten (default 90: Hopper)")
    a = p.parse_args(argv)
    forms: dict[KernelForm, Any] = {}
    for release in a.releases.split(","):
        for size in a.sizes.split(","):
            w, h = (int(v) for v in size.split("x"))
            for batch in (int(b) for b in a.batches.split(",")):
                found = collected_forms(release, (h, w), batch)
                print(f"{release} {size} batch {batch}: {len(found)} kernel forms", flush=True)
                forms.update(found)
    failed = 0
    for form, fn in forms.items():
        t0 = time.perf_counter()
        try:
            size = compiled_size(form, fn, a.arch)
        except Exception as error:  # noqa: BLE001  # every failing form is reported, not just the first
            failed += 1
            print(f"FAILED {form.name} {dict(form.constexprs)}: {str(error).splitlines()[0]}", flush=True)
            continue
        print(f"ok {form.name} ({size:,} bytes, {time.perf_counter() - t0:.1f} s)", flush=True)
    print(f"{len(forms) - failed} of {len(forms)} kernel forms compiled for sm_{a.arch}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
