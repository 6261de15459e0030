"""GPU telemetry against a fake NVML module: sampling rate, power, energy, and failures that must not crash."""

from __future__ import annotations

import os
import statistics
import time
from types import SimpleNamespace

import pytest
import torch

from harness.results.records import Energy, Measurements, StreamRecord
from harness.system.telemetry import (
    TelemetrySampler,
    XpuSmiSampler,
    energy_metrics,
    nvml_index,
    telemetry_for,
    trapezoid,
)


class FakeNVML:
    """The part of pynvml the sampler uses. Power follows ``watts(t)``; the energy counter integrates it."""

    NVML_CLOCK_SM = 1
    NVML_TEMPERATURE_GPU = 0

    class NVMLError(Exception):
        pass

    def __init__(self, watts=lambda t: 150.0, energy_counter: bool = True, fail_init: bool = False,
                 unsupported: tuple[str, ...] = ()) -> None:
        self.watts, self.energy_counter, self.fail_init, self.unsupported = watts, energy_counter, fail_init, unsupported
        self.t0 = time.monotonic()
        self.shutdowns = 0

    def _now(self) -> float:
        return time.monotonic() - self.t0

    def _check(self, name: str) -> None:
        if name in self.unsupported:
            raise self.NVMLError("Not Supported")

    def nvmlInit(self) -> None:
        if self.fail_init:
            raise self.NVMLError("Driver Not Loaded")

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:
        return f"gpu{index}"

    def nvmlDeviceGetPowerUsage(self, handle: str) -> int:
        self._check("power")
        return int(self.watts(self._now()) * 1000)  # mW

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: str) -> int:
        if not self.energy_counter:
            raise self.NVMLError("Not Supported")
        return int(self.watts(0) * self._now() * 1000)  # mJ, constant power only

    def nvmlDeviceGetUtilizationRates(self, handle: str) -> SimpleNamespace:
        return SimpleNamespace(gpu=97, memory=40)

    def nvmlDeviceGetMemoryInfo(self, handle: str) -> SimpleNamespace:
        return SimpleNamespace(used=3 * 2**30, total=80 * 2**30, free=77 * 2**30)

    def nvmlDeviceGetClockInfo(self, handle: str, clock: int) -> int:
        assert clock == self.NVML_CLOCK_SM
        return 1980

    def nvmlDeviceGetTemperature(self, handle: str, sensor: int) -> int:
        self._check("temperature")
        assert sensor == self.NVML_TEMPERATURE_GPU
        return 61


def sample_for(nvml: FakeNVML, seconds: float, interval_s: float = 0.1) -> dict:
    sampler = TelemetrySampler(0, interval_s, nvml=nvml)
    sampler.start()
    time.sleep(seconds)
    return sampler.stop()


def test_samples_at_ten_hertz_with_every_reading():
    out = sample_for(FakeNVML(), 0.6)
    samples = out["samples"]
    assert out["available"] and out["interval_s"] == 0.1
    assert 0.6 <= out["duration_s"] < 1.0
    ticks = int(out["duration_s"] / 0.1)
    assert ticks + 1 <= len(samples) <= ticks + 2  # the start, one per tick, the closing sample
    gaps = [b["t_s"] - a["t_s"] for a, b in zip(samples[:-2], samples[1:-1], strict=True)]
    assert statistics.median(gaps) == pytest.approx(0.1, abs=0.02)
    first = samples[0]
    assert first == {**first, "power_w": 150.0, "gpu_util_pct": 97, "mem_util_pct": 40, "mem_used_mib": 3072.0,
                     "sm_clock_mhz": 1980, "temperature_c": 61}
    assert first["timestamp"] == pytest.approx(time.time(), abs=5)


def test_energy_from_the_nvml_counter():
    nvml = FakeNVML()
    out = sample_for(nvml, 0.4)
    assert out["energy_source"] == "nvml-energy-counter"
    assert out["energy_j"] == pytest.approx(150.0 * out["duration_s"], rel=0.1)
    assert out["mean_power_w"] == pytest.approx(150.0, rel=0.1)
    assert out["max_power_w"] == 150.0
    assert nvml.shutdowns == 1


def test_energy_from_power_samples_without_a_counter():
    out = sample_for(FakeNVML(watts=lambda t: 100.0 + 100.0 * t, energy_counter=False), 0.5)
    first, last = out["samples"][0]["t_s"], out["samples"][-1]["t_s"]
    exact = 100.0 * (last - first) + 50.0 * (last**2 - first**2)  # the integral of 100 + 100 t
    assert out["energy_source"] == "power-samples"
    assert out["energy_j"] == pytest.approx(exact, rel=0.02)
    assert out["mean_power_w"] == pytest.approx(out["energy_j"] / out["duration_s"], rel=1e-9)


def test_energy_per_frame_and_frames_per_joule():
    telemetry = {"available": True, "mean_power_w": 200.0, "energy_j": 50.0}
    assert energy_metrics(telemetry, 400) == {"mean_power_w": 200.0, "energy_per_frame_j": 0.125,
                                              "frames_per_joule": 8.0}
    none = {"mean_power_w": None, "energy_per_frame_j": None, "frames_per_joule": None}
    assert energy_metrics({"available": False, "reason": "no GPU telemetry on the CPU platform"}, 400) == none
    assert energy_metrics(telemetry, 0) == {**none, "mean_power_w": 200.0}
    measured = sample_for(FakeNVML(), 0.2)
    assert energy_metrics(measured, 60)["frames_per_joule"] == pytest.approx(60 / measured["energy_j"])


def test_unsupported_readings_are_none_and_sampling_goes_on():
    out = sample_for(FakeNVML(unsupported=("temperature", "power"), energy_counter=False), 0.3)
    assert len(out["samples"]) >= 3
    assert all(s["temperature_c"] is None and s["power_w"] is None for s in out["samples"])
    assert out["energy_j"] is None and out["mean_power_w"] is None and out["energy_source"] is None
    assert energy_metrics(out, 100)["frames_per_joule"] is None


def test_a_failing_reading_stops_sampling_without_breaking_the_run():
    nvml = FakeNVML()
    sampler = TelemetrySampler(0, 0.05, nvml=nvml)
    sampler.start()
    nvml.nvmlDeviceGetUtilizationRates = lambda handle: 1 / 0  # not an NVMLError: the thread must stop quietly
    time.sleep(0.2)
    nvml.nvmlDeviceGetUtilizationRates = FakeNVML.nvmlDeviceGetUtilizationRates.__get__(nvml)
    out = sampler.stop()
    assert out["available"] and "ZeroDivisionError" in out["error"]


def test_nvml_init_error_gives_no_telemetry():
    out = telemetry_for(torch.device("cuda", 0), nvml=FakeNVML(fail_init=True))
    out.start()
    assert out.stop() == {"available": False, "reason": "NVML unavailable: NVMLError: Driver Not Loaded"}


def test_cpu_and_an_xpu_without_xpu_smi_have_no_telemetry(tmp_path, monkeypatch):
    assert telemetry_for(torch.device("cpu")).stop() == {"available": False,
                                                          "reason": "no GPU telemetry on the CPU platform"}
    monkeypatch.setenv("PATH", str(tmp_path))  # no xpu-smi there
    reason = telemetry_for(torch.device("xpu")).stop()["reason"]
    assert "xpu-smi is not on the PATH" in reason and "--socket" in reason


# xpu-smi dump's CSV as Intel XPU Manager prints it (its user guide: `xpu-smi dump -d 0 -m 0,1,2 -i 1 -n 5`),
# with the core temperature and memory columns of -m 0,1,2,3,18; this GPU cannot read its temperature.
STAND_IN_XPU_SMI = """#!/usr/bin/env bash
echo "$*" > "$(dirname "$0")/args"
echo "Timestamp, DeviceId, GPU Utilization (%), GPU Power (W), GPU Frequency (MHz), \
GPU Core Temperature (Celsius Degree), GPU Memory Used (MiB)"
i=0
while true; do
  printf '06:14:%02d.000,    1, 97.50, %d.25, 1550, N/A, 2048.00\n' "$i" "$((100 + i))"
  i=$((i + 1))
  sleep 0.1
done
"""


def test_xpu_telemetry_from_xpu_smi_dump(tmp_path, monkeypatch):
    tool = tmp_path / "xpu-smi"
    tool.write_text(STAND_IN_XPU_SMI)
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    sampler = telemetry_for(torch.device("xpu", 1))
    assert isinstance(sampler, XpuSmiSampler)
    sampler.start()
    time.sleep(0.8)
    out = sampler.stop()
    assert (tmp_path / "args").read_text().split() == ["dump", "-d", "1", "-m", "0,1,2,3,18", "-i", "1"]
    samples = out["samples"]
    assert len(samples) >= 3 and out["available"] and out["source"] == "xpu-smi" and "error" not in out
    assert [s["power_w"] for s in samples[:3]] == [100.25, 101.25, 102.25]
    assert all(s["gpu_frequency_mhz"] == 1550 and s["gpu_util_pct"] == 97.5 and s["mem_used_mib"] == 2048 for s in samples)
    assert all(s["temperature_c"] is None for s in samples)  # N/A
    assert out["energy_source"] == "power-samples" and out["energy_j"] > 0 and 100 <= out["mean_power_w"] < 120
    assert energy_metrics(out, 10)["frames_per_joule"] == pytest.approx(10 / out["energy_j"])


def test_xpu_smi_that_fails_leaves_a_reason_not_an_error(tmp_path, monkeypatch):
    tool = tmp_path / "xpu-smi"
    tool.write_text("#!/bin/sh\necho 'Error: Level Zero initialization failed' >&2\nexit 1\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    sampler = telemetry_for(torch.device("xpu", 0))
    sampler.start()
    time.sleep(0.2)
    out = sampler.stop()
    assert out["samples"] == [] and out["mean_power_w"] is None and "Level Zero" in out["error"]


def test_cuda_device_through_the_fake_nvml():
    sampler = telemetry_for(torch.device("cuda", 0), interval_s=0.05, nvml=FakeNVML())
    assert isinstance(sampler, TelemetrySampler)
    sampler.start()
    time.sleep(0.15)
    assert sampler.stop()["mean_power_w"] == pytest.approx(150.0, rel=0.1)


def test_nvml_index_follows_cuda_visible_devices():
    assert nvml_index(1, "2,3") == 3
    assert nvml_index(0, "") == 0
    assert nvml_index(0, "GPU-8d6c2d1e-0000") == 0


def test_trapezoid():
    assert trapezoid([(0.0, 10.0), (1.0, 20.0), (3.0, 20.0)]) == 55.0
    assert trapezoid([(0.0, 10.0)]) is None


def test_streams_sharing_a_gpu_count_its_power_once():
    from harness.results.document import energy_of

    def stream(device: str, fps: float, watts: float | None) -> StreamRecord:
        energy = Energy(watts, watts / fps if watts else None, fps / watts if watts else None)
        m = Measurements(pairs=10, frames=10, calls=10, elapsed_s=1.0, window=(0.0, 1.0), clock_offset_s=0.0,
                         checkpoints=(), throughput_fps=fps, latency_wall_ms=None, latency_ms=None, shortfalls=(),
                         peak_memory_bytes=None, energy=energy, frame_size=(8, 8), padded_size=(32, 32), model=None,
                         pid=0)
        return StreamRecord(stream=1, host="h", device=device, measurements=m)

    shared = energy_of([stream("cuda:0", 100.0, 400.0), stream("cuda:0", 100.0, 420.0)])
    assert shared["power"].avg == pytest.approx(410.0)  # one GPU, read by both streams
    assert shared["energy-per-frame"].avg == pytest.approx(410.0 / 200.0)
    assert shared["frames-per-joule"].avg == pytest.approx(200.0 / 410.0)
    two = energy_of([stream("cuda:0", 100.0, 400.0), stream("cuda:1", 50.0, 300.0)])
    assert two["power"].avg == pytest.approx(700.0) and two["frames-per-joule"].avg == pytest.approx(150 / 700)
    assert energy_of([stream("cpu", 5.0, None)]) == {}


def test_gpu_processes_at_the_start_leave_out_the_mps_server():
    from types import SimpleNamespace

    class WithProcesses(FakeNVML):
        def nvmlDeviceGetComputeRunningProcesses(self, handle):
            return [SimpleNamespace(pid=p, usedGpuMemory=0) for p in (202, 101, 303)]

        def nvmlSystemGetProcessName(self, pid):
            return b"/usr/bin/nvidia-cuda-mps-server" if pid == 303 else b"python"

    sampler = TelemetrySampler(0, 0.05, WithProcesses())
    sampler.start()
    assert sampler.stop()["gpu_processes"] == [101, 202]
    plain = TelemetrySampler(0, 0.05, FakeNVML())  # a driver that cannot list them: unknown, not none
    plain.start()
    assert plain.stop()["gpu_processes"] is None
