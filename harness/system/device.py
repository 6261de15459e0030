"""Devices: which platform runs, how to synchronize, time and describe it."""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import Any

import torch

from rife.vocabulary import PLATFORMS


class PlatformError(Exception):
    pass


def _xpu_available() -> bool:
    return hasattr(torch, "xpu") and torch.xpu.is_available()


def resolve_device(platform: str) -> torch.device:
    """``auto`` prefers XPU, then CUDA, then the CPU; an explicit platform must be present."""
    if platform == "auto":
        if _xpu_available():
            return torch.device("xpu")
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    wanted = PLATFORMS[platform]
    if wanted == "xpu" and not _xpu_available():
        raise PlatformError(f"--platform {platform}: no Intel XPU is visible to PyTorch {torch.__version__}; "
                            "install the XPU build of PyTorch, or use --platform CUDA/CPU/auto")
    if wanted == "cuda" and not torch.cuda.is_available():
        raise PlatformError(f"--platform CUDA: no CUDA GPU is visible to PyTorch {torch.__version__}; "
                            "check the driver and CUDA_VISIBLE_DEVICES, or use --platform CPU/auto")
    return torch.device(wanted)


def cpu_has_bf16() -> bool:
    """AVX512-BF16 or AMX-BF16: bf16 matrix work in hardware (Linux: read from /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def default_precision(device: torch.device) -> str:
    """fp16 on GPUs and XPUs; on the CPU bf16 mixed precision where the CPU computes bf16 natively, else fp32."""
    if device.type != "cpu":
        return "fp16"
    return "bf16" if cpu_has_bf16() else "fp32"


def device_module(device: torch.device):
    return getattr(torch, device.type)


def synchronize(device: torch.device) -> None:
    if device.type != "cpu":
        device_module(device).synchronize()


def side_stream(device: torch.device):
    """A second stream for copies on CUDA and XPU; None where work runs in order on the host (the CPU)."""
    return device_module(device).Stream(device) if device.type in ("cuda", "xpu") else None


def current_stream(device: torch.device):
    return device_module(device).current_stream(device)


def on_stream(device: torch.device, stream):
    return device_module(device).stream(stream)


def record_event(device: torch.device, stream):
    event = device_module(device).Event()
    event.record(stream)
    return event


def wait_for(device: torch.device, event, *made_there: torch.Tensor) -> None:
    """The current stream waits for ``event``; tensors allocated on the other stream are marked as used
    here, so the caching allocator does not hand their memory out before this stream is done."""
    stream = current_stream(device)
    stream.wait_event(event)
    for t in made_there:
        t.record_stream(stream)


def device_name(device: torch.device) -> str:
    if device.type == "cpu":
        return cpu_model()
    return device_module(device).get_device_name(device)


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's model name ("Intel(R) Xeon(R) Platinum 8480+"), from /proc/cpuinfo where there is one."""
    import platform

    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            return value.strip()
    return platform.processor() or platform.machine()


def driver_version(device: torch.device) -> str | None:
    """The GPU driver's version (NVML's on NVIDIA GPUs, the Level Zero driver's on Intel XPUs); None on the CPU
    or where it cannot be read."""
    try:
        if device.type == "cuda":
            import pynvml  # nvidia-ml-py

            pynvml.nvmlInit()
            try:
                version = pynvml.nvmlSystemGetDriverVersion()
            finally:
                pynvml.nvmlShutdown()
            return version.decode() if isinstance(version, bytes) else str(version)
        if device.type == "xpu":
            return str(torch.xpu.get_device_properties(device).driver_version)
    except Exception:  # no NVML, no driver, an old PyTorch: the results say null
        return None
    return None


def reset_peak_memory(device: torch.device) -> None:
    if device.type != "cpu":
        device_module(device).reset_peak_memory_stats(device)


def peak_memory_bytes(device: torch.device) -> int | None:
    return None if device.type == "cpu" else int(device_module(device).max_memory_allocated(device))


class LatencyClock:
    """Per-call latency without adding synchronizations: device events on GPUs/XPUs
    (read once they have completed), ``perf_counter`` on the CPU (which runs synchronously)."""

    # Pending event pairs kept before the oldest is read. Reading it waits for that call, so this also
    # bounds how far the host runs ahead of the device (and the copies' buffers held meanwhile) to a
    # queue deep enough that the device never starves.
    RESOLVE_AFTER = 16

    def __init__(self, device: torch.device) -> None:
        self._events = device.type != "cpu"
        self._module: Any = device_module(device) if self._events else None
        self._pending: deque = deque()
        self.latencies_ms: list[float] = []
        self._t0 = 0.0

    def start(self) -> None:
        if self._events:
            event = self._module.Event(enable_timing=True)
            event.record()
            self._pending.append([event, None])
        else:
            self._t0 = time.perf_counter()

    def stop(self) -> None:
        if self._events:
            event = self._module.Event(enable_timing=True)
            event.record()
            self._pending[-1][1] = event
            while len(self._pending) > self.RESOLVE_AFTER:
                self._resolve_oldest()
        else:
            self.latencies_ms.append((time.perf_counter() - self._t0) * 1e3)

    def _resolve_oldest(self) -> None:
        begin, end = self._pending.popleft()
        end.synchronize()
        self.latencies_ms.append(begin.elapsed_time(end))

    def finish(self) -> list[float]:
        """Call after the device is synchronized: reads every pending pair."""
        while self._pending and self._pending[0][1] is not None:
            self._resolve_oldest()
        self._pending.clear()
        return self.latencies_ms
