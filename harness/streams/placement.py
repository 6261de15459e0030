"""Where a stream runs: its device (round-robin over --device-ids) and, on a GPU, the CPUs of that GPU's
NUMA node.

The topology is read from sysfs: the GPU's PCI address -> ``bus/pci/devices/<address>/numa_node`` ->
``devices/system/node/node<N>/cpulist``. Every reader takes the sysfs root as a parameter, so tests can
fake a topology in a folder.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from harness.system.device import PlatformError

SYSFS = Path("/sys")


def visible_count(kind: str) -> int:
    """Devices of this kind that PyTorch sees (0 for the CPU, which has no device ids)."""
    return 0 if kind == "cpu" else getattr(torch, kind).device_count()


def check_device_ids(kind: str, ids: tuple[int, ...] | None, visible: int) -> tuple[int, ...]:
    """The ids the streams use (default: every visible device); PlatformError (one line) when they cannot be."""
    if kind == "cpu":
        if ids is not None:
            raise PlatformError("--device-ids / DEVICE_IDS applies to GPUs (CUDA, XPU); "
                                "leave it unset on the CPU platform")
        return ()
    absent = [i for i in ids or () if i >= visible]
    if absent:
        raise PlatformError(f"--device-ids {','.join(map(str, ids or ()))}: there is no {kind.upper()} device {absent[0]} "
                            f"({visible} visible: ids 0 to {visible - 1}; see CUDA_VISIBLE_DEVICES / ZE_AFFINITY_MASK)")
    return ids or tuple(range(visible))


def device_for(kind: str, ids: Sequence[int], slot: int) -> str:
    """Slot k (stream - 1, or torchrun's LOCAL_RANK) runs on ids[k mod len(ids)]; the CPU is just ``cpu``."""
    return kind if not ids else f"{kind}:{ids[slot % len(ids)]}"


def pci_address(domain: int, bus: int, device: int) -> str:
    """sysfs's spelling of a PCI function 0 address: ``0000:3b:00.0``."""
    return f"{domain:04x}:{bus:02x}:{device:02x}.0"


def normalize_pci(text: str) -> str:
    """NVML's ``00000000:3B:00.0`` (8-digit domain, upper case) as sysfs spells it: ``0000:3b:00.0``."""
    domain, bus, rest = text.strip().lower().split(":")
    return f"{int(domain, 16):04x}:{bus}:{rest}"


def parse_cpulist(text: str) -> set[int]:
    """``0-3,8,10-11`` -> {0, 1, 2, 3, 8, 10, 11}."""
    cpus: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def numa_node(address: str, sysfs: Path = SYSFS) -> int | None:
    """The NUMA node of a PCI device, or None where sysfs does not say (missing, or -1: one node)."""
    try:
        node = int((sysfs / "bus/pci/devices" / address / "numa_node").read_text())
    except (OSError, ValueError):
        return None
    return node if node >= 0 else None


def node_cpus(node: int, sysfs: Path = SYSFS) -> set[int]:
    """The CPUs of a NUMA node (empty where sysfs does not list them)."""
    try:
        return parse_cpulist((sysfs / f"devices/system/node/node{node}/cpulist").read_text())
    except (OSError, ValueError):
        return set()


def gpu_pci_address(device: torch.device) -> str | None:
    """The GPU's PCI address from PyTorch's device properties, else (CUDA) from NVML, else None."""
    props = getattr(torch, device.type).get_device_properties(device)
    if hasattr(props, "pci_bus_id"):
        return pci_address(props.pci_domain_id, props.pci_bus_id, props.pci_device_id)
    return _nvml_pci_address(device.index or 0) if device.type == "cuda" else None


def _nvml_pci_address(cuda_index: int) -> str | None:
    try:
        import pynvml  # nvidia-ml-py

        from harness.system.telemetry import nvml_index

        pynvml.nvmlInit()
        try:
            bus_id = pynvml.nvmlDeviceGetPciInfo(pynvml.nvmlDeviceGetHandleByIndex(nvml_index(cuda_index))).busId
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no NVML, no driver: placement is skipped, never the run
        return None
    return normalize_pci(bus_id.decode() if isinstance(bus_id, bytes) else bus_id)


def cpus_near(address: str | None, sysfs: Path = SYSFS) -> tuple[int | None, set[int]]:
    """The NUMA node of a PCI address and its CPUs: (None, empty) where the topology does not tell."""
    node = numa_node(address, sysfs) if address else None
    return node, (node_cpus(node, sysfs) if node is not None else set())


def pin_near(device: torch.device, sysfs: Path = SYSFS) -> dict | None:
    """Pins this process to the CPUs of its GPU's NUMA node and says what it did (None on the CPU platform)."""
    if device.type == "cpu":
        return None
    address = gpu_pci_address(device)
    node, cpus = cpus_near(address, sysfs)
    out = {"pci_address": address, "numa_node": node, "cpus": sorted(cpus) or None}
    if not cpus:
        return {**out, "note": "the GPU's NUMA node is unknown: CPU affinity left as it was"}
    try:
        os.sched_setaffinity(0, cpus)
    except OSError as e:
        return {**out, "note": f"CPU affinity not set: {e.strerror}"}
    return out
