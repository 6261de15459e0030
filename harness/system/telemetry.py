"""GPU telemetry over a stream's timed loop: power, utilization, memory, SM clock, temperature, energy.

``telemetry_for(device)`` gives a sampler; the stream calls ``start()`` right before its timed loop and
``stop()`` right after, and keeps the dict ``stop()`` returns. On NVIDIA GPUs a background thread reads
NVML (the ``nvidia-ml-py`` package) every ``interval_s`` (0.1 s: 10 Hz; the reference sampled
``nvidia-smi`` at 1 Hz and gave no energy figure). Energy is the difference of NVML's total-energy counter
when the GPU has one (Volta and newer), else the trapezoid integral of the power samples over time.
NVML's power reading is itself averaged by the driver (over about 1 s on recent GPUs), so the energy
counter is the better figure for short runs.

On Intel XPUs, where ``xpu-smi`` is on the PATH, ``XpuSmiSampler`` reads ``xpu-smi dump`` the same way
(power, frequency, utilisation, temperature, memory; once a second). Elsewhere (CPU, no xpu-smi, NVML
missing or failing) ``telemetry_for`` returns ``NoTelemetry``, whose ``stop()`` says why; telemetry never
fails a run. ``--socket`` (``SOCKET``) stays the hook for an external capture, as in the reference: the
harness only records the socket path, and whatever listens there owns the capture and its files.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import threading
import time
from itertools import pairwise
from types import ModuleType
from typing import Any

import torch

from rife.vocabulary import PLATFORM_NAMES


class NoTelemetry:
    """Where nothing can be sampled: ``stop()`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def start(self) -> None:
        """Nothing to sample."""

    def stop(self) -> dict:
        return {"available": False, "reason": self.reason}


class TelemetrySampler:
    """Samples one GPU through NVML in a background thread, from ``start()`` to ``stop()``.

    ``device_index`` is NVML's index (the machine's numbering); ``uuid``, when given, finds the GPU
    instead (CUDA's numbering follows CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER, NVML's does not).
    ``nvml`` is the NVML module (default: ``pynvml`` from nvidia-ml-py); tests pass a fake one.
    """

    def __init__(self, device_index: int, interval_s: float = 0.1, nvml: ModuleType | Any = None,
                 uuid: str | None = None) -> None:
        if not interval_s > 0:
            raise ValueError(f"telemetry interval must be above 0 s, not {interval_s}")
        self.nvml = nvml if nvml is not None else _import_pynvml()
        self.device_index, self.interval_s = device_index, interval_s
        self.nvml.nvmlInit()
        try:
            self.handle = (self.nvml.nvmlDeviceGetHandleByUUID(uuid) if uuid
                           else self.nvml.nvmlDeviceGetHandleByIndex(device_index))
        except Exception:
            self._shutdown()
            raise
        self.samples: list[dict] = []
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"telemetry-gpu{device_index}", daemon=True)
        self._t0 = 0.0
        self._energy0_mj: float | None = None
        self._error: str | None = None
        self._processes: list[int] | None = None

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._energy0_mj = self._read(self.nvml.nvmlDeviceGetTotalEnergyConsumption, self.handle)
        self._processes = self._compute_processes()
        if self._take_sample():
            self._thread.start()

    def stop(self) -> dict:
        self._halt.set()
        if self._thread.is_alive():
            self._thread.join()
        if self._error is None:
            self._take_sample()  # the closing sample: the window ends here
        energy1_mj = self._read(self.nvml.nvmlDeviceGetTotalEnergyConsumption, self.handle)
        self._shutdown()
        counter_j = None
        if self._energy0_mj is not None and energy1_mj is not None and energy1_mj > self._energy0_mj:
            counter_j = (energy1_mj - self._energy0_mj) / 1000.0
        out = summarize(self.samples, counter_j)
        out.update(device_index=self.device_index, interval_s=self.interval_s, gpu_processes=self._processes)
        if self._error:
            out["error"] = self._error
        return out

    def _compute_processes(self) -> list[int] | None:
        """The ids of the processes computing on this GPU now (this run's streams among them; not the MPS server
        a run sharing the GPU starts), or None."""
        query = getattr(self.nvml, "nvmlDeviceGetComputeRunningProcesses", None)
        running = self._read(query, self.handle) if query is not None else None
        if running is None:
            return None
        return sorted({p.pid for p in running if not self._process_name(p.pid).endswith("nvidia-cuda-mps-server")})

    def _process_name(self, pid: int) -> str:
        query = getattr(self.nvml, "nvmlSystemGetProcessName", None)
        name = self._read(query, pid) if query is not None else None
        return (name.decode(errors="replace") if isinstance(name, bytes) else str(name or "")).strip()

    def _run(self) -> None:
        """Samples on a fixed grid (t0 + k * interval), skipping ticks missed while a read was slow."""
        tick = 1
        while not self._halt.wait(max(0.0, self._t0 + tick * self.interval_s - time.monotonic())):
            if not self._take_sample():
                return
            tick = max(tick + 1, math.floor((time.monotonic() - self._t0) / self.interval_s) + 1)

    def _take_sample(self) -> bool:
        """Adds a sample; on a failure other than NVML's own (which read as None) keeps why and says False:
        the sampler must never break the run it watches."""
        try:
            self.samples.append(self._sample())
            return True
        except Exception as e:
            self._error = f"sampling stopped: {type(e).__name__}: {e}"
            return False

    def _sample(self) -> dict:
        nv, h = self.nvml, self.handle
        t, stamp = time.monotonic() - self._t0, time.time()
        power_mw = self._read(nv.nvmlDeviceGetPowerUsage, h)
        util = self._read(nv.nvmlDeviceGetUtilizationRates, h)
        memory = self._read(nv.nvmlDeviceGetMemoryInfo, h)
        return {
            "t_s": t,
            "timestamp": stamp,
            "power_w": power_mw / 1000.0 if power_mw is not None else None,
            "gpu_util_pct": util.gpu if util is not None else None,
            "mem_util_pct": util.memory if util is not None else None,
            "mem_used_mib": memory.used / 2**20 if memory is not None else None,
            "sm_clock_mhz": self._read(nv.nvmlDeviceGetClockInfo, h, nv.NVML_CLOCK_SM),
            "temperature_c": self._read(nv.nvmlDeviceGetTemperature, h, nv.NVML_TEMPERATURE_GPU),
        }

    def _read(self, query, *args) -> Any:
        """One NVML reading, or None where this GPU does not support it."""
        try:
            return query(*args)
        except self.nvml.NVMLError:
            return None

    def _shutdown(self) -> None:
        try:
            self.nvml.nvmlShutdown()
        except self.nvml.NVMLError:
            pass


def summarize(samples: list[dict], counter_j: float | None) -> dict:
    """Power and energy over the sampled window; ``counter_j`` (NVML's counter) wins over the integral."""
    power = [(s["t_s"], s["power_w"]) for s in samples if s["power_w"] is not None]
    duration = samples[-1]["t_s"] - samples[0]["t_s"] if samples else 0.0
    energy = counter_j if counter_j is not None else trapezoid(power)
    mean: float | None
    if energy is not None and duration > 0:
        mean = energy / duration
    else:
        mean = sum(p for _, p in power) / len(power) if power else None
    return {
        "available": True,
        "duration_s": duration,
        "samples": samples,
        "mean_power_w": mean,
        "max_power_w": max((p for _, p in power), default=None),
        "energy_j": energy,
        "energy_source": "nvml-energy-counter" if counter_j is not None else ("power-samples" if energy is not None else None),
    }


def trapezoid(points: list[tuple[float, float]]) -> float | None:
    """The integral of (time s, power W) points: joules; None with fewer than two points."""
    if len(points) < 2:
        return None
    return sum((p0 + p1) / 2 * (t1 - t0) for (t0, p0), (t1, p1) in pairwise(points))


def energy_metrics(telemetry: dict, frames: int) -> dict:
    """Mean power (W), energy per frame (J) and frames per joule; None where they cannot be known."""
    energy = telemetry.get("energy_j") if telemetry.get("available") else None
    per_frame = per_joule = None
    if energy is not None and energy > 0 and frames > 0:
        per_frame, per_joule = energy / frames, frames / energy
    return {
        "mean_power_w": telemetry.get("mean_power_w") if telemetry.get("available") else None,
        "energy_per_frame_j": per_frame,
        "frames_per_joule": per_joule,
    }


class XpuSmiSampler:
    """Samples one Intel GPU through ``xpu-smi dump`` (Intel XPU Manager's command line), from ``start()`` to
    ``stop()``: power, GPU frequency, utilisation, core temperature and memory used, once a second (xpu-smi's
    interval). xpu-smi prints CSV, a header naming the metrics and then one line per reading::

        Timestamp, DeviceId, GPU Utilization (%), GPU Power (W), GPU Frequency (MHz), ...
        06:14:46.000,    0, 0.00, 14.61,    0

    Readings xpu-smi cannot take are ``N/A`` (None here). Energy is the trapezoid integral of the power
    readings. ``device_index`` is xpu-smi's device id, which follows PyTorch's XPU numbering unless
    ZE_AFFINITY_MASK remaps the devices."""

    METRICS = "0,1,2,3,18"  # utilisation, power, frequency, core temperature, memory used
    COLUMNS = {"GPU Utilization (%)": "gpu_util_pct", "GPU Power (W)": "power_w",
               "GPU Frequency (MHz)": "gpu_frequency_mhz", "GPU Core Temperature (Celsius Degree)": "temperature_c",
               "GPU Memory Used (MiB)": "mem_used_mib"}

    def __init__(self, device_index: int, command: str = "xpu-smi") -> None:
        self.device_index, self.command = device_index, command
        self.samples: list[dict] = []
        self._columns: list[str] | None = None
        self._proc: subprocess.Popen | None = None
        self._thread = threading.Thread(target=self._read, name=f"xpu-smi-{device_index}", daemon=True)
        self._t0 = 0.0
        self._error: str | None = None

    def start(self) -> None:
        self._t0 = time.monotonic()
        try:
            self._proc = subprocess.Popen([self.command, "dump", "-d", str(self.device_index), "-m", self.METRICS,
                                           "-i", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        except OSError as e:
            self._error = f"xpu-smi could not start: {e.strerror or e}"
            return
        self._thread.start()

    def stop(self) -> dict:
        if self._proc is not None:
            self._proc.terminate()
            try:
                _, err = self._proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                _, err = self._proc.communicate()
            self._thread.join(timeout=5)
            if not self.samples and self._error is None:
                self._error = f"xpu-smi gave no readings: {(err or '').strip().splitlines()[-1:] or 'no output'}"
        out = summarize(self.samples, None)
        out.update(device_index=self.device_index, interval_s=1.0, source="xpu-smi")
        if self._error:
            out["error"] = self._error
        return out

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                self._parse(line)
            except Exception as e:  # an odd line must never break the run it watches
                self._error = f"sampling stopped: {type(e).__name__}: {e}"

    def _parse(self, line: str) -> None:
        cells = [c.strip() for c in line.strip().split(",")]
        if not line.strip():
            return
        if cells[0] == "Timestamp":
            self._columns = [self.COLUMNS.get(c) for c in cells]  # type: ignore[misc]
            return
        if self._columns is None or len(cells) != len(self._columns):
            return
        sample: dict[str, Any] = {"t_s": time.monotonic() - self._t0, "timestamp": time.time()}
        sample.update({key: _number(cell) for key, cell in zip(self._columns, cells, strict=True) if key})
        self.samples.append(sample)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:  # N/A, empty
        return None


def telemetry_for(device: torch.device, interval_s: float = 0.1,
                  nvml: ModuleType | Any = None) -> TelemetrySampler | XpuSmiSampler | NoTelemetry:
    """A sampler for this device, or NoTelemetry saying why there is none (never an exception)."""
    if device.type == "xpu":
        if shutil.which("xpu-smi") is None:
            return NoTelemetry("no GPU telemetry on the XPU platform: xpu-smi is not on the PATH (install Intel XPU "
                               "Manager), or --socket names an external capture")
        return XpuSmiSampler(device.index if device.index is not None else 0)
    if device.type != "cuda":
        name = PLATFORM_NAMES.get(device.type, device.type)
        return NoTelemetry(f"no GPU telemetry on the {name} platform")
    try:
        module = nvml if nvml is not None else _import_pynvml()
        index = device.index if device.index is not None else torch.cuda.current_device()
        return TelemetrySampler(nvml_index(index), interval_s, module, uuid=_cuda_uuid(index))
    except Exception as e:  # no NVML library, no driver, no permission: the run goes on without telemetry
        return NoTelemetry(f"NVML unavailable: {type(e).__name__}: {e}")


def nvml_index(cuda_index: int, visible: str | None = None) -> int:
    """NVML's index of CUDA device ``cuda_index`` when CUDA_VISIBLE_DEVICES lists numbers (else unchanged)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "") if visible is None else visible
    entries = [e.strip() for e in visible.split(",") if e.strip()]
    if cuda_index < len(entries) and entries[cuda_index].isdigit():
        return int(entries[cuda_index])
    return cuda_index


def _cuda_uuid(index: int) -> str | None:
    """NVML's name for the CUDA device (``GPU-…``), which holds whatever the device numbering."""
    if not torch.cuda.is_available():
        return None
    uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
    return f"GPU-{uuid}" if uuid is not None else None


def _import_pynvml() -> ModuleType:
    import pynvml  # nvidia-ml-py

    return pynvml
