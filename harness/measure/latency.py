"""Raw per-call latencies (latencies.csv), the run's percentiles from every stream's calls pooled, and the rules
that say how far to trust them.

Sample size, as MLPerf LoadGen's early stopping decides it: a percentile q is established by n calls when, at
99% confidence, at least one call lies above the true q-th percentile, that is when
P(Binomial(n, 1 - q) <= 1) = q^n + n (1 - q) q^(n - 1) <= 0.01. LoadGen asks for the smallest such n before
it reports a percentile ("Need to process at least ... queries": 64 for p90). It gives 11 calls for p50,
64 for p90, 130 for p95, 662 for p99 and 6,636 for p99.9. Fewer calls: the percentile is reported, marked
not established, with the count that would do.

Noise, as torch.utils.benchmark flags it: the interquartile range above 10% of the median suggests system
fluctuation, above 25% significant environmental influence. A loaded machine: other processes busy for more
than a tenth of the host's cores (at least half a core) during the timed loop, the 1-minute load average
above the core count when the loop began, or other processes on the GPU (NVML).
"""

from __future__ import annotations

import csv
import math
import os
import statistics
import time
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from harness.measure.metrics import percentile
from harness.results.records import CallLog, HostLoad, LatencyStats, Percentile, Repeats, StreamRecord

PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p99.9": 99.9}
CONFIDENCE = 0.99  # LoadGen's
IQR_WARN, IQR_GROSS_WARN = 0.10, 0.25  # torch.utils.benchmark's
OTHER_CPU_SHARE = 0.10
CSV_COLUMNS = ("stream", "call", "start_s", "latency_ms", "pairs")


@cache
def samples_needed(q: float, confidence: float = CONFIDENCE) -> int:
    """The fewest calls that establish percentile ``q`` (0-100): LoadGen's early-stopping minimum."""
    p = q / 100.0

    def odds(n: int) -> float:  # P(at most one of n calls lies above the q-th percentile)
        return p**n + n * (1 - p) * p ** (n - 1)

    hi = 2
    while odds(hi) > 1 - confidence:
        hi *= 2
    lo = hi // 2
    while lo < hi:  # odds falls as n grows
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if odds(mid) <= 1 - confidence else (mid + 1, hi)
    return lo


def describe(latencies_ms: Sequence[float]) -> LatencyStats | None:
    """The one summary of per-call latencies: percentiles (each with whether the calls establish it), mean,
    median, minimum, maximum, standard deviation and the interquartile range."""
    values = sorted(latencies_ms)
    if not values:
        return None
    n = len(values)
    q1, median, q3 = (percentile(values, q) for q in (25, 50, 75))
    return LatencyStats(
        samples=n,
        percentiles={name: Percentile(percentile(values, q), n >= samples_needed(q), samples_needed(q))
                     for name, q in PERCENTILES.items()},
        max_ms=values[-1], mean_ms=statistics.fmean(values), median_ms=median, iqr_ms=q3 - q1,
        iqr_over_median=(q3 - q1) / median if median > 0 else None,
        min_ms=values[0], stdev_ms=statistics.stdev(values) if n > 1 else 0.0,
    )


def pooled(records: Sequence[StreamRecord]) -> LatencyStats | None:
    """The run's latency statistics over every stream's calls together."""
    return describe([v for r in records if r.call_log for v in r.call_log.latency_ms])


MEDIAN_CONFIDENCE = 0.95
REPEAT_SPREAD_WARN = 0.10  # the repeats' range above a tenth of their median


def repeat_stats(throughputs: Sequence[float]) -> Repeats | None:
    """The run's throughput over its repeats: median, range, and the distribution-free interval for the median
    between the k-th smallest and k-th largest repeat, with the widest k whose confidence
    1 - 2 P(Binomial(n, 1/2) < k) is at least 95% (with fewer than six repeats: the range, at its own confidence)."""
    values = sorted(throughputs)
    n = len(values)
    if n < 2:
        return None
    k, confidence = 1, _median_interval_confidence(n, 1)
    while k + 1 <= n // 2 and _median_interval_confidence(n, k + 1) >= MEDIAN_CONFIDENCE:
        k += 1
        confidence = _median_interval_confidence(n, k)
    return Repeats(count=n, throughput_fps=tuple(throughputs), median_fps=statistics.median(values),
                   min_fps=values[0], max_fps=values[-1], interval_fps=(values[k - 1], values[n - k]),
                   confidence=confidence)


def _median_interval_confidence(n: int, k: int) -> float:
    """P(the k-th smallest of n values <= the median <= the k-th largest)."""
    below = sum(math.comb(n, i) for i in range(k)) / 2**n
    return 1 - 2 * below


def repeat_warnings(repeats: Repeats | None) -> list[str]:
    spread = repeats.spread if repeats is not None else None
    if repeats is None or spread is None or spread <= REPEAT_SPREAD_WARN:
        return []
    return [f"throughput spread: the {repeats.count} repeats ran {repeats.min_fps:.3g} to {repeats.max_fps:.3g} "
            f"frames/s, {100 * spread:.1f}% of their median {repeats.median_fps:.3g}"]


def sample_size_warnings(stats: LatencyStats | None) -> list[str]:
    if stats is None:
        return []
    short = {k: p for k, p in stats.percentiles.items() if not p.established}
    if not short:
        return []
    needs = ", ".join(f"{k} {p.samples_needed:,}" for k, p in short.items())
    return [f"latency {', '.join(short)} not established: {stats.samples:,} calls, and MLPerf LoadGen's rule needs "
            f"{needs} (raise --num-inputs or --min-test-duration)"]


def noise_warnings(stats: LatencyStats | None) -> list[str]:
    if stats is None or stats.iqr_over_median is None or stats.iqr_over_median <= IQR_WARN:
        return []
    what = ("significant environmental influence" if stats.iqr_over_median > IQR_GROSS_WARN
            else "system fluctuation")
    return [f"latency spread: the interquartile range is {100 * stats.iqr_over_median:.1f}% of the median "
            f"({stats.iqr_ms:.3f} of {stats.median_ms:.3f} ms), which suggests {what}"]


def load_warnings(records: Sequence[StreamRecord]) -> list[str]:
    """A busy host (per host: its busiest reading, less every stream's own CPU) and other GPU processes."""
    out = []
    by_host: dict[str | None, list[HostLoad]] = {}
    for r in records:
        if r.host_load is not None:
            by_host.setdefault(r.host, []).append(r.host_load)
    for host, loads in by_host.items():
        cores = loads[0].cores
        where = f" on {host}" if len(by_host) > 1 else ""
        busy = [x.busy_cores for x in loads if x.busy_cores is not None]
        if busy:
            others = max(busy) - sum(x.own_cores or 0.0 for x in loads)
            if others > max(0.5, OTHER_CPU_SHARE * cores):
                out.append(f"loaded machine{where}: other processes kept {others:.1f} of {cores} cores busy during the "
                           "timed loop")
        before = [x.load_avg_start for x in loads if x.load_avg_start is not None]
        if before and max(before) > cores:
            out.append(f"loaded machine{where}: the 1-minute load average was {max(before):.1f} on {cores} cores "
                       "when the timed loop began")
    out += gpu_process_warnings(records)
    return out


def gpu_process_warnings(records: Sequence[StreamRecord]) -> list[str]:
    """Other processes on a stream's GPU (NVML's compute processes, sampled as the timed loop began). Inside a
    container NVML may name the host's process ids: then the count beyond this run's streams is what tells."""
    ours = {r.measurements.pid for r in records if r.measurements is not None} | {os.getpid()}
    by_device: dict[tuple[str | None, str | None], tuple[set[int], int]] = {}
    for r in records:
        pids = (r.telemetry or {}).get("gpu_processes")
        if pids is None:
            continue
        seen, streams = by_device.get((r.host, r.device), (set(), 0))
        by_device[(r.host, r.device)] = (seen | set(pids), streams + 1)
    out = []
    for (_, device), (pids, streams) in by_device.items():
        others = len(pids - ours) if pids & ours else len(pids) - streams
        if others > 0:
            out.append(f"{others} other process{'es' if others > 1 else ''} on {device} during the timed loop (NVML)")
    return out


def write_csv(path: Path, records: Sequence[StreamRecord]) -> int:
    """latencies.csv: one line per timed call of every stream, ``start_s`` in seconds since the first stream's
    timed loop began (the wall clock of each host); the number of calls written."""
    logged = [(r, _loop_start(r)) for r in records if r.call_log is not None]
    origin = min((t for _, t in logged), default=0.0)
    rows = 0
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for r, start in logged:
            log = r.call_log
            assert log is not None
            for k, (t, latency, pairs) in enumerate(zip(log.start_s, log.latency_ms, log.pairs, strict=False)):
                writer.writerow((r.stream, k + 1, f"{start - origin + t:.6f}", f"{latency:.6f}", pairs))
                rows += 1
    os.replace(tmp, path)
    return rows


def read_csv(path: Path) -> list[dict]:
    """latencies.csv's lines, typed."""
    with path.open(newline="") as f:
        return [{"stream": int(r["stream"]), "call": int(r["call"]), "start_s": float(r["start_s"]),
                 "latency_ms": float(r["latency_ms"]), "pairs": int(r["pairs"])} for r in csv.DictReader(f)]


def _loop_start(record: StreamRecord) -> float:
    m = record.measurements
    return m.window[0] + m.clock_offset_s if m is not None else 0.0


def call_log(start_s: Sequence[float], latency_ms: Sequence[float], pairs: Sequence[int]) -> CallLog:
    """The calls that both started and finished (an interrupted last call has no latency)."""
    n = min(len(start_s), len(latency_ms), len(pairs))
    return CallLog(tuple(start_s[:n]), tuple(latency_ms[:n]), tuple(pairs[:n]))


class LoadProbe:
    """Reads the host's load at the start and the end of the timed loop (``HostLoad``)."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.cpu0 = time.process_time()
        self.stat0 = _busy_jiffies()
        self.load0 = _load_average()

    def finish(self) -> HostLoad:
        seconds = max(time.monotonic() - self.t0, 1e-9)
        stat1 = _busy_jiffies()
        busy = None
        if self.stat0 is not None and stat1 is not None:
            busy = (stat1 - self.stat0) / os.sysconf("SC_CLK_TCK") / seconds
        return HostLoad(cores=os.cpu_count() or 1, load_avg_start=self.load0, load_avg_end=_load_average(),
                        busy_cores=busy, own_cores=(time.process_time() - self.cpu0) / seconds)


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def _busy_jiffies(stat: str | None = None) -> int | None:
    """CPU time every core spent not idle, in clock ticks, from /proc/stat's first line."""
    try:
        stat = Path("/proc/stat").read_text() if stat is None else stat
        fields = [int(v) for v in stat.splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal (guest is inside user)


