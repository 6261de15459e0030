"""What this machine can hold, checked once before any stream starts: streams against its CPUs and memory,
the input pool against the memory its frames go to. Each refusal is one line naming the option, what the
value needs, what the machine has, and what to lower."""

from __future__ import annotations

import os
from pathlib import Path

STREAM_HOST_MIB = 512  # what one stream process holds at least: Python, PyTorch, the model, its buffers
POOL_SHARE = 0.5  # the input pool may take at most this share of the memory it lives in (the model needs the rest)


class LimitError(Exception):
    """A value this machine cannot run; the message is one line."""


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def available_host_bytes(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """MemAvailable, where Linux says it; None elsewhere."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def check_streams(streams: int, cpus: int | None = None, host_bytes: int | None = None) -> None:
    cpus = usable_cpus() if cpus is None else cpus
    if streams > cpus:
        raise LimitError(f"--streams {streams} is more than the {cpus} CPUs this process may use: each stream is a "
                         f"process that needs a CPU to feed its device; use at most {cpus}")
    host_bytes = available_host_bytes() if host_bytes is None else host_bytes
    need = streams * STREAM_HOST_MIB * 2**20
    if host_bytes is not None and need > host_bytes:
        fit = max(1, host_bytes // (STREAM_HOST_MIB * 2**20))
        raise LimitError(f"--streams {streams} needs about {gib(need)} of memory ({STREAM_HOST_MIB} MiB per stream "
                         f"process) and {gib(host_bytes)} is available; use at most {fit}")


def pool_bytes(pool: int, batch: int, height: int, width: int, bytes_per_value: int) -> int:
    """The input pool of one stream: ``pool`` pairs of ``batch`` RGB frames."""
    return pool * 2 * batch * 3 * height * width * bytes_per_value


def check_input_pool(need: int, available: int | None, where: str, detail: str) -> None:
    """``need`` bytes of input pool (all streams that share the memory) against ``available`` bytes there."""
    if available is None or need <= POOL_SHARE * available:
        return
    raise LimitError(f"--input-pool needs {gib(need)} of {where} memory ({detail}), more than half of the "
                     f"{gib(available)} available; lower --input-pool (or --batch-size, the frame size, --streams)")
