"""One stream's LoadGen test: the performance test (or Server's peak search), then in quality mode the accuracy
test, its frames scored, and the TEST01-style check; LoadGen's logs land in the run's output folder."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from harness.loadgen import audit
from harness.loadgen.logs import outcome
from harness.loadgen.settings import LoadGenPlan, test_settings
from harness.loadgen.sut import EngineSUT, SampleLibrary
from harness.measure.core import Meter, Timed
from harness.results.records import LoadGenOutcome


class LoadGenMissing(RuntimeError):
    """mlcommons-loadgen is not installed."""


def require_loadgen() -> None:
    try:
        import mlperf_loadgen  # noqa: F401
    except ImportError:
        raise LoadGenMissing("--scenario needs MLPerf LoadGen: pip install mlcommons-loadgen (it is in "
                             "requirements.txt), or use --scenario streams") from None


def run_test(meter: Meter, library: SampleLibrary, plan: LoadGenPlan, mode: str, folder: Path, batch_size: int,
             judged: int, seed: int = 0, complete: Callable | None = None) -> Timed:
    """One LoadGen test of ``mode``; its logs in ``folder``; the SUT's own timing of its model calls."""
    import mlperf_loadgen as lg

    folder.mkdir(parents=True, exist_ok=True)
    log = lg.LogSettings()
    log.log_output.outdir = str(folder)
    log.log_output.copy_summary_to_stdout = False
    log.enable_trace = False
    sut = EngineSUT(meter, library, batch_size, plan.scenario, judged, complete or lg.QuerySamplesComplete)
    sut_handle = lg.ConstructSUT(sut.issue_queries, sut.flush_queries)
    qsl_handle = lg.ConstructQSL(library.total, library.performance, library.load_samples, library.unload_samples)
    try:
        sut.start()
        # an audit.config in the working folder would change the test: LoadGen is pointed at one that is absent
        lg.StartTestWithLogSettings(sut_handle, qsl_handle, test_settings(plan, mode, seed), log,
                                    str(folder / "no-audit.config"))
    finally:
        lg.DestroyQSL(qsl_handle)
        lg.DestroySUT(sut_handle)
        trace = folder / "mlperf_log_trace.json"
        if trace.is_file() and trace.stat().st_size == 0:  # the trace is off: LoadGen leaves its file empty
            trace.unlink()
    return sut.stop()


def run_scenario(meter: Meter, library: SampleLibrary, plan: LoadGenPlan, root: Path, batch_size: int, judged: int,
                 truth: Callable[[int], torch.Tensor] | None = None, seed: int = 0,
                 complete: Callable | None = None) -> tuple[LoadGenOutcome, Timed, list[tuple[int, float, float]]]:
    """The scenario's test (``root``: the run's output folder, where LoadGen's logs go), and with ``truth`` (quality
    mode) the accuracy test in ``root/accuracy``, its frames scored (sample index, PSNR, SSIM), and the check of the
    performance outputs against it."""
    mode = "FindPeakPerformance" if plan.find_peak else "PerformanceOnly"
    timed = run_test(meter, library, plan, mode, root, batch_size, judged, seed, complete)
    result = outcome(root, root)
    if truth is None:
        return result, timed, []
    accuracy = root / "accuracy"
    run_test(meter, library, plan, "AccuracyOnly", accuracy, batch_size, judged, seed, complete)
    shape = (3, *meter.frame_size)
    frames = audit.logged_frames(accuracy / "mlperf_log_accuracy.json", shape)
    scores = audit.score(frames, truth)
    sampled = audit.logged_frames(root / "mlperf_log_accuracy.json", shape)
    n, mismatched = audit.compare(sampled, frames)
    logs = result.logs + outcome(accuracy, root).logs
    result = replace(result, accuracy_psnr_db=_mean([p for _, p, _ in scores]),
                     accuracy_ssim=_mean([q for _, _, q in scores]), accuracy_samples=len(scores), audit_checked=n,
                     audit_mismatched=mismatched, logs=logs)
    return result, timed, scores  # the accuracy test is not a measurement of speed


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None
