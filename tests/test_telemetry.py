"""GPU telemetry against a fake NVML module: sampling rate, power, energy, and failures that must not crash."""

from __future__ import annotations

import statistics
import time
from types import SimpleNamespace

import pytest
import torch

from harness.telemetry import TelemetrySampler, energy_metrics, nvml_index, telemetry_for, trapezoid


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


def test_cpu_and_xpu_have_no_telemetry():
    assert telemetry_for(torch.device("cpu")).stop() == {"available": False,
                                                          "reason": "no GPU telemetry on the CPU platform"}
    assert "--socket" in telemetry_for(torch.device("xpu")).stop()["reason"]


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
    from harness.results import energy_of

    def stream(device: str, fps: float, watts: float) -> dict:
        return {"host": "h", "device": device, "throughput_fps": fps,
                "energy": {"mean_power_w": watts, "energy_per_frame_j": watts / fps, "frames_per_joule": fps / watts}}

    shared = energy_of([stream("cuda:0", 100.0, 400.0), stream("cuda:0", 100.0, 420.0)])
    assert shared["power"]["avg"] == pytest.approx(410.0)  # one GPU, read by both streams
    assert shared["energy-per-frame"]["avg"] == pytest.approx(410.0 / 200.0)
    assert shared["frames-per-joule"]["avg"] == pytest.approx(200.0 / 410.0)
    two = energy_of([stream("cuda:0", 100.0, 400.0), stream("cuda:1", 50.0, 300.0)])
    assert two["power"]["avg"] == pytest.approx(700.0) and two["frames-per-joule"]["avg"] == pytest.approx(150 / 700)
    assert energy_of([{"host": "h", "device": "cpu", "throughput_fps": 5.0, "energy": {"mean_power_w": None}}]) == {}
