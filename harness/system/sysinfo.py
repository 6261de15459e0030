"""sysinfo.json: the machine a benchmark ran on: OS, CPU, memory, Python, PyTorch and the GPUs.

    python harness/system/sysinfo.py [OUTPUT]      (default sysinfo.json; "-" prints it)

NVIDIA GPUs come from NVML (nvidia-ml-py) when it works, else from nvidia-smi when it is on the PATH;
CUDA and Intel XPU devices as PyTorch sees them come from torch. Needs no root and never fails its caller:
what cannot be read is null, with the reason beside it.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

SMI_FIELDS = ("index", "name", "uuid", "driver_version", "memory.total", "power.limit", "clocks.max.sm", "pci.bus_id")


def collect() -> dict:
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "os": os_info(),
        "cpu": cpu_info(),
        "memory_total_gib": memory_total_gib(),
        "python": {"version": platform.python_version(), "executable": sys.executable},
        "torch": torch_info(),
        "gpus": nvidia_gpus(),
    }


def os_info() -> dict:
    release = _key_values(_read("/etc/os-release"), "=")
    return {"name": release.get("PRETTY_NAME", "").strip('"') or platform.system(), "kernel": platform.release(),
            "platform": platform.platform(), "in_container": Path("/.dockerenv").exists()}


def cpu_info() -> dict:
    cpuinfo = _read("/proc/cpuinfo")
    first = _key_values(cpuinfo, ":")
    sockets = {line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("physical id")}
    nodes = sorted(p.name for p in Path("/sys/devices/system/node").glob("node[0-9]*"))
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {"model": first.get("model name") or platform.processor() or platform.machine(),
            "architecture": platform.machine(), "logical_cores": os.cpu_count(), "usable_cores": usable,
            "sockets": len(sockets) or None, "numa_nodes": len(nodes) or None}


def memory_total_gib() -> float | None:
    total_kib = _key_values(_read("/proc/meminfo"), ":").get("MemTotal", "").split(" ")[0]
    return round(int(total_kib) / 2**20, 2) if total_kib.isdigit() else None


def torch_info() -> dict:
    try:
        import torch
    except Exception as e:  # a broken torch is a fact about the machine, not a reason to stop
        return {"version": None, "error": f"{type(e).__name__}: {e}"}
    out: dict[str, Any] = {"version": torch.__version__, "cuda": torch.version.cuda,
                           "xpu": getattr(torch.version, "xpu", None), "ipex": _package_version("intel-extension-for-pytorch")}
    if torch.cuda.is_available():
        out["cuda_devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    xpu = getattr(torch, "xpu", None)
    if xpu is not None and xpu.is_available():
        out["xpu_devices"] = [xpu.get_device_name(i) for i in range(xpu.device_count())]
    return out


def nvidia_gpus() -> dict:
    try:
        return {"source": "nvml", "devices": _nvml_devices()}
    except Exception as e:  # no library, no driver: try the command line tool
        nvml_error = f"NVML: {type(e).__name__}: {e}"
    if shutil.which("nvidia-smi") is None:
        return {"source": None, "devices": [], "note": f"{nvml_error}; no nvidia-smi on the PATH"}
    try:
        return {"source": "nvidia-smi", "devices": _smi_devices()}
    except (OSError, subprocess.SubprocessError) as e:
        return {"source": None, "devices": [], "note": f"{nvml_error}; nvidia-smi: {e}"}


def _nvml_devices() -> list[dict]:
    import pynvml  # nvidia-ml-py

    pynvml.nvmlInit()
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        devices = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            limit_mw = _optional(pynvml, pynvml.nvmlDeviceGetPowerManagementLimit, h)
            devices.append({
                "index": i, "name": _text(pynvml.nvmlDeviceGetName(h)), "uuid": _text(pynvml.nvmlDeviceGetUUID(h)),
                "driver_version": driver,
                "memory_total_mib": pynvml.nvmlDeviceGetMemoryInfo(h).total // 2**20,
                "power_limit_w": limit_mw / 1000 if limit_mw is not None else None,
                "max_sm_clock_mhz": _optional(pynvml, pynvml.nvmlDeviceGetMaxClockInfo, h, pynvml.NVML_CLOCK_SM),
                "pci_bus_id": _text(pynvml.nvmlDeviceGetPciInfo(h).busId),
            })
        return devices
    finally:
        pynvml.nvmlShutdown()


def _optional(pynvml, query, *args) -> Any:
    """A reading some GPUs do not support: None there."""
    try:
        return query(*args)
    except pynvml.NVMLError:
        return None


def _smi_devices() -> list[dict]:
    text = subprocess.run(["nvidia-smi", f"--query-gpu={','.join(SMI_FIELDS)}", "--format=csv,noheader,nounits"],
                          capture_output=True, text=True, timeout=30, check=True).stdout
    return [dict(zip(SMI_FIELDS, (cell.strip() for cell in line.split(",")), strict=False))
            for line in text.splitlines() if line.strip()]


def _package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def _key_values(text: str, sep: str) -> dict[str, str]:
    """``key<sep>value`` lines; the first occurrence of a key wins (/proc/cpuinfo repeats per core)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, found, value = line.partition(sep)
        if found:
            out.setdefault(key.strip(), value.strip())
    return out


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    if len(argv) > 1:
        print("error: give at most one output path (see --help)", file=sys.stderr)
        return 2
    text = json.dumps(collect(), indent=2) + "\n"
    target = argv[0] if argv else "sysinfo.json"
    if target == "-":
        sys.stdout.write(text)
    else:
        Path(target).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
