"""Every option of the harness in one place: flag, environment variable, default, validation.

A flag wins over its variable, a variable over the default. An invalid value ends the
program with one line naming the option, the value and what is allowed (exit 2).
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NoReturn

from harness.loadgen.settings import DEFAULT_LATENCY_BOUND_MS, SCENARIOS
from rife import registry
from rife.vocabulary import (
    ARCHITECTURE_WORDS,
    EXECUTIONS,
    IMPLEMENTATIONS,
    MPS_MODES,
    PLATFORMS,
    PRECISIONS,
    USER_SCALES,
)

# What --data takes as a video (OpenCV's FFmpeg reads these); anything else is refused before a model loads.
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mkv", ".mov", ".avi", ".webm", ".mpg", ".mpeg", ".ts", ".m2ts",
                            ".wmv", ".flv", ".y4m", ".3gp", ".ogv"})
TRUE_WORDS, FALSE_WORDS = ("yes", "true", "1", "on", "y"), ("no", "false", "0", "off", "n", "")


class OptionError(Exception):
    """An invalid option value; the message is the one line shown to the user."""


def _integer(text: str, low: int, expected: str) -> int:
    """``text`` as an integer of at least ``low``; else ``expected`` says what was wanted."""
    try:
        value = int(text)
    except ValueError:
        raise ValueError(expected) from None
    if value < low:
        raise ValueError(expected)
    return value


def _int_at_least(low: int) -> Callable[[str], int]:
    return lambda text: _integer(text, low, f"expected an integer >= {low}")


def _int_in(low: int, high: int, why: str) -> Callable[[str], int]:
    """An integer from ``low`` to ``high``; ``why`` says what the upper bound stands for."""
    def convert(text: str) -> int:
        value = _integer(text, low, f"expected an integer from {low} to {high:,}")
        if value > high:
            raise ValueError(f"expected an integer from {low} to {high:,} ({why})")
        return value

    return convert


SEED_MAX = 2**63 - 1
WEEK_S = 7 * 24 * 3600


def _number(low: float, high: float = math.inf, why: str = "") -> Callable[[str], float]:
    allowed = f"expected a number from {low:g} to {high:g}" + (f" ({why})" if why else "")

    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(allowed) from None
        if not (low <= value <= high) or math.isnan(value):
            raise ValueError(allowed)
        return value

    return convert


def _choice(allowed: Sequence[str], fold: bool = False) -> Callable[[str], str]:
    def convert(text: str) -> str:
        key = text.lower() if fold else text
        if key not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return key

    return convert


def _release(text: str) -> str:
    """A release's name or alias, as --arch takes it; refused with each release once (its aliases beside it)."""
    if text not in ARCHITECTURE_WORDS:
        aliases: dict[str, list[str]] = {}
        for word in ARCHITECTURE_WORDS:
            aliases.setdefault(registry.canonical(word), []).append(word)
        named = [f"{name} (or {', '.join(w for w in words if w != name)})" if len(words) > 1 else name
                 for name, words in aliases.items()]
        raise ValueError(f"expected one of {', '.join(named)}")
    return text


def _any_case(allowed: Sequence[str]) -> Callable[[str], str]:
    """One of ``allowed`` written in any case, as ``allowed`` spells it."""
    spelled = {a.lower(): a for a in allowed}

    def convert(text: str) -> str:
        if text.lower() not in spelled:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return spelled[text.lower()]

    return convert


def _yes_no(text: str) -> bool:
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError("expected yes or no")


def _platform(text: str) -> str:
    key = text.lower()
    if key not in PLATFORMS:
        raise ValueError("expected Flex, Max, XPU, CUDA, CPU or auto")
    return key


def _device_ids(text: str) -> tuple[int, ...]:
    parts = [p.strip() for p in text.split(",")]
    if not all(p.isdecimal() for p in parts):
        raise ValueError("expected device ids: non-negative integers separated by commas, e.g. 0,2,3")
    ids = tuple(int(p) for p in parts)
    if len(set(ids)) != len(ids):
        raise ValueError("expected each device id once")
    return ids


def _scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if value not in USER_SCALES:
        raise ValueError(f"expected one of {', '.join(f'{s:g}' for s in USER_SCALES)}")
    return value


def _path(text: str) -> Path:
    if not text:
        raise ValueError("expected a path")
    return Path(text)


@dataclass(frozen=True)
class Option:
    dest: str
    flag: str
    env: tuple[str, ...]
    convert: Callable[[str], Any] | None  # None: a switch (the flag alone means yes)
    default: Any
    help: str


def option(flag: str, env: tuple[str, ...], convert: Callable[[str], Any] | None, default: Any, help: str) -> Any:
    """An Options field that is also a row of the option table (``OPTIONS``)."""
    return field(default=default, metadata={"flag": flag, "env": env, "convert": convert, "help": help})


@dataclass(frozen=True)
class Options:
    """Every option, each written once: its type, flag, variables, conversion, default and help."""

    dummy: bool = option("--dummy", ("DUMMY",), None, False, "performance mode on random frames")
    data: Path | None = option("--data", ("DATASET_DIR",), _path, None,
        "quality mode data: a Vimeo-90K folder (either layout) or a video file (default: the built-in set)")
    platform: str = option("--platform", ("PLATFORM",), _platform, "auto",
        "Flex | Max (Intel XPU) | CUDA | CPU | auto (XPU, else CUDA, else CPU)")
    ipex: bool = option("--ipex", ("IPEX",), _yes_no, True,
        "on XPU: yes = ipex.optimize, no = PyTorch's own XPU backend")
    precision: str | None = option("--precision", ("PRECISION",), _choice(PRECISIONS, fold=True), None,
        "fp16 | bf16 | fp32 (default: fp16 on GPUs and XPUs; on the CPU bf16 where it computes bf16 natively, "
        "AVX512-BF16 or AMX, else fp32)")
    amp: bool = option("--amp", ("AMP",), None, False, "autocast instead of casting the model")
    num_inputs: int = option("--num-inputs", ("NUM_INPUTS",),
        _int_in(1, 10**8, "a day at over 1,000 pairs/s; for longer runs give --min-test-duration"), 100,
        "frame pairs to run (quality mode: at most the data's size)")
    batch_size: int = option("--batch-size", ("BATCH_SIZE",),
        _int_in(1, 1024, "larger batches only exhaust device memory"), 1, "frame pairs per model call")
    streams: int = option("--streams", ("STREAMS",), _int_in(1, 1024, "each stream is a process"), 1,
        "parallel stream processes (at most one per CPU)")
    mps: str = option("--mps", ("MPS",), _choice(MPS_MODES, fold=True), "auto",
        "CUDA MPS when streams share a GPU: auto (start one for the run when needed and possible) | on | off")
    device_ids: tuple[int, ...] | None = option("--device-ids", ("DEVICE_IDS",), _device_ids, None,
        "GPUs the streams spread over, round-robin, e.g. 0,2,3 (default: every visible CUDA / XPU device)")
    interpolation: int = option("--interpolation", ("INTERPOLATION",),
        _int_in(1, 255, "256x slow motion; more is no real run"), 1,
        "frames generated per pair (paper, v3.x: 1, 3, 7, ...; 4.x: any)")
    warmup: int = option("--warmup", ("WARMUP",), _int_in(0, 10_000, "warming up settles within a few calls"), 10,
        "frame pairs run before timing")
    async_sync: int = option("--async", ("ASYNC",), _int_in(0, 10**8, "the most pairs a run takes"), 0,
        "synchronize every N calls; 0 = only at the end")
    repeat: int = option("--repeat", ("REPEAT",), _int_in(1, 1000, "a thousand measurements of one warm-up"), 1,
        "run the timed measurement N times after one warm-up and report the median throughput, its range and an "
        "interval; a spread across them makes the verdict noisy")
    min_duration: float | None = option("--min-test-duration", ("MIN_TEST_DURATION",), _number(0, WEEK_S, "seconds: a week"), None,
        "performance mode: run at least this many seconds (default: no minimum)")
    max_duration: float | None = option("--max-test-duration", ("MAX_TEST_DURATION",), _number(0, WEEK_S, "seconds: a week"), None,
        "performance mode: run at most this many seconds (default: no limit)")
    data_channels: int = option("--data-channels", ("DATA_CHANNELS",), _int_at_least(1), 3, "dummy frame channels (3)")
    data_height: int = option("--data-height", ("DATA_HEIGHT",), _int_in(1, 16384, "16K frames"), 720,
        "dummy frame height")
    data_width: int = option("--data-width", ("DATA_WIDTH",), _int_in(1, 16384, "16K frames"), 1280,
        "dummy frame width")
    input_pool: int = option("--input-pool", ("INPUT_POOL",), _int_in(1, 4096, "checked against memory too"), 8,
        "distinct random frame pairs cycled in performance mode (1 = the reference's single pair)")
    transfers: bool = option("--transfers", ("TRANSFERS",), None, False,
        "performance mode: upload uint8 inputs and download results every frame, as a video pipeline does")
    execution: str | None = option("--execution", ("EXECUTION",), _choice(EXECUTIONS), None,
        "eager (the reference's way) | graph (one CUDA graph) | compile (torch.compile) | fast (ours) "
        "(default: fast, or eager with --model-impl upstream)")
    arch: str | None = option("--arch", ("ARCH",), _release, None,
        "model release: paper, v3.1, v3.5, v3.6, v3.8, v4.0 (or 4.0), 4.1 ... 4.26, 4.26.heavy, 4.22.lite, ... "
        "(default: the release of --pretrained-weights; without them paper, or v4.0 where only its real weights are "
        "present)")
    scale: float = option("--scale", ("SCALE",), _scale, 1.0,
        "flow resolution, as vs-rife's scale: 0.25 | 0.5 | 1 | 2 | 4 (0.5 for 4K)")
    ensemble: bool | None = option("--ensemble", ("ENSEMBLE",), _yes_no, None,
        "yes | no: average each block over both directions (default: the release's; yes for v3.x)")
    model_impl: str = option("--model-impl", ("MODEL_IMPL",), _choice(IMPLEMENTATIONS), "ours",
        "ours | upstream (side-by-side runs)")
    weights: Path | None = option("--pretrained-weights", ("LOAD_PATH",), _path, None,
        "checkpoint (default: train_log/flownet.pkl for paper, train_log/RELEASE/flownet.pkl for the others, in "
        "RIFE_HOME: the repository for run_model.sh, else the current folder)")
    models_dir: Path | None = option("--modelsdir", ("MODELS_DIR",), _path, None,
        "upstream paper code, the model package (default: model/ in RIFE_HOME)")
    output_dir: Path = option("--output-dir", ("OUTPUT_DIR",), _path, Path("output-dir"), "where logs and results go")
    saveimages: bool = option("--saveimages", ("SAVEIMAGES", "SAVE_IMAGES"), None, False,
        "quality mode: write every interpolated frame as PNG")
    psnr_threshold: float = option("--psnr-threshold", ("MIN_PSNR_DB",), _number(0, 200), 25.0,
        "a frame passes at this PSNR (dB)")
    min_pass_pct: float = option("--min-pass-pct", ("MIN_PASS_PCT",), _number(0, 100), 95.0,
        "the run passes when this % of frames pass")
    preload_mb: int = option("--preload-mb", ("PRELOAD_MB",), _int_in(0, 2**20, "1 TiB"), 4096,
        "quality mode: decode a stream's frames before timing when they fit in this many MiB (else stream them)")
    skip_bad: bool = option("--skip-bad", ("SKIP_BAD",), None, False,
        "quality mode: skip unreadable or mis-sized files")
    seed: int = option("--seed", ("SEED",), _int_in(0, SEED_MAX, "the range of a 64-bit seed"), 0,
        "seed of the random inputs (stream n: SEED + n; warm-up: SEED + 1000) and random-init weights (SEED)")
    socket: str = option("--socket", ("SOCKET",), str, "", "socket of an external telemetry capture (default: none)")
    timing_lock: Path | None = option("--timing-lock", ("TIMING_LOCK",), _path, None,
        "hold an exclusive lock on FILE from the end of the first warm-up call to the end of the timed loop, so that "
        "runs sharing a machine time one at a time (default: none)")
    scenario: str = option("--scenario", ("SCENARIO",), _any_case(SCENARIOS), "streams",
        "streams (the reference's way) | SingleStream | MultiStream | Server | Offline (MLPerf LoadGen's)")
    target_qps: float | None = option("--target-qps", ("TARGET_QPS",), _number(0.001, 1e7), None,
        "Server: the Poisson arrival rate, queries/s (Offline: the expected rate) (default: none; --find-peak starts "
        "at half the rate of a few calls)")
    latency_bound_ms: float = option("--latency-bound-ms", ("LATENCY_BOUND_MS",), _number(0.001, 3.6e6),
        DEFAULT_LATENCY_BOUND_MS, "Server: the p99 latency bound in ms (default: one frame interval of 60 fps, 16.7)")
    find_peak: bool = option("--find-peak", ("FIND_PEAK",), None, False,
        "Server: search the highest target QPS that stays valid (LoadGen's FindPeakPerformance)")
    loadgen_conf: Path | None = option("--loadgen-conf", ("LOADGEN_CONF",), _path, None,
        "a LoadGen user.conf (its own format, model name rife) whose settings override the run's (default: none)")
    explicit: frozenset[str] = field(default=frozenset())  # options the user set (flag or variable)
    time_cap_s: float | None = None  # not an option: the run's own cap on a first CPU run (inference.quick_on_cpu)

    @property
    def mode(self) -> str:
        return "performance" if self.dummy else "quality"

    def as_dict(self) -> dict[str, Any]:
        out = {opt.dest: getattr(self, opt.dest) for opt in OPTIONS}
        return {k: str(v) if isinstance(v, Path) else v for k, v in out.items()}


OPTIONS: tuple[Option, ...] = tuple(Option(f.name, default=f.default, **f.metadata) for f in fields(Options) if f.metadata)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2 (argparse prints usage first)
        if message.startswith("unrecognized arguments"):
            message += " (flags are written in full; --help lists them)"
        raise OptionError(message)


INSTALLED_PROG = "rife-bench"  # the installed command (harness.cli)


def build_parser(prog: str = "run_model.sh") -> argparse.ArgumentParser:
    if prog == INSTALLED_PROG:
        description = ("RIFE frame interpolation benchmark. Weights, upstream code and the built-in set are read from "
                       "RIFE_HOME (default: the current folder): 'rife-bench get-model' fetches the weights there, "
                       "'rife-bench get-dataset' builds the built-in set (each with --help)")
    else:
        description = "RIFE frame interpolation benchmark (run_model.sh and python inference.py take the same options)"
    parser = _Parser(prog=prog, allow_abbrev=False, description=description,
                     epilog="Every option also reads the environment variable in its brackets (its placeholder "
                     "names it too); a flag wins over its variable, a variable over the default.")
    for opt in OPTIONS:
        text = f"{opt.help} [{'/'.join(opt.env)}{_default_text(opt)}]".replace("%", "%%")  # argparse formats with %
        if opt.convert is None:
            parser.add_argument(opt.flag, dest=opt.dest, action="store_const", const="yes", default=None, help=text)
        else:
            parser.add_argument(opt.flag, dest=opt.dest, default=None, metavar=opt.env[0], help=text)
    return parser


def _default_text(opt: Option) -> str:
    """``; default X`` as --help shows it; empty where the help text itself says what happens by default."""
    if opt.convert is None:
        return "; default off"
    if opt.default is None or opt.default == "":
        return ""
    if isinstance(opt.default, bool):
        return f"; default {'yes' if opt.default else 'no'}"
    return f"; default {opt.default}"


def _value(opt: Option, raw: str | None, env_name: str | None) -> Any:
    if raw is None:
        return opt.default
    try:
        return (opt.convert or _yes_no)(raw)
    except ValueError as e:
        given = f"{env_name}={raw!r} ({opt.flag})" if env_name else f"{opt.flag} {raw!r}"
        raise OptionError(f"{given} is not valid: {e}") from None


def parse(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None,
          prog: str = "run_model.sh") -> Options:
    """Flags, then variables, then defaults; then the rules between options (``prog``: the command --help names)."""
    environ = os.environ if environ is None else environ
    flags = vars(build_parser(prog).parse_args(argv))
    values: dict[str, Any] = {}
    explicit = set()
    for opt in OPTIONS:
        raw, env_name = flags[opt.dest], None
        if raw is None:
            env_name = next((name for name in opt.env if name in environ), None)
            raw = environ[env_name] if env_name else None
        if raw is not None:
            explicit.add(opt.dest)
        values[opt.dest] = _value(opt, raw, env_name)
    options = Options(**values, explicit=frozenset(explicit))
    check_rules(options)
    return options


def check_rules(o: Options) -> None:
    if o.dummy and o.data is not None:
        raise OptionError("--dummy and --data exclude each other: --dummy measures speed on random frames, "
                          "--data checks quality on real ones; give one")
    if o.data is not None and not o.data.exists():
        raise OptionError(f"--data {o.data}: no such file or folder")
    if o.data is not None and not (o.data.is_dir() or o.data.is_file()):
        raise OptionError(f"--data {o.data} is neither a folder nor a regular file (a FIFO, socket or device would "
                          f"block the checks or never end); give a Vimeo-90K folder or a video file")
    if o.data is not None and o.data.is_file() and o.data.suffix.lower() not in VIDEO_SUFFIXES:
        raise OptionError(f"--data {o.data} is neither a folder nor a video ({', '.join(sorted(VIDEO_SUFFIXES))}): "
                          f"give a Vimeo-90K triplet folder or a video file")
    if o.weights is not None and not o.weights.is_file():
        what = "is a folder" if o.weights.is_dir() else "does not exist"
        raise OptionError(f"--pretrained-weights {o.weights} {what}: give a checkpoint file (flownet.pkl), or leave "
                          f"the option out for the release's default weights")
    if o.data_channels != 3:
        raise OptionError(f"--data-channels {o.data_channels} is not supported: RIFE interpolates RGB frames (3)")
    if o.min_duration is not None and o.max_duration is not None and o.min_duration > o.max_duration:
        raise OptionError(f"--min-test-duration {o.min_duration:g} is above --max-test-duration {o.max_duration:g}")
    if not o.dummy and (o.min_duration is not None or o.max_duration is not None):
        raise OptionError("--min-test-duration / --max-test-duration apply to performance mode (--dummy) only")
    if o.timing_lock is not None:
        _check_timing_lock(o.timing_lock)
    _check_scenario(o)


def _check_scenario(o: Options) -> None:
    """A LoadGen scenario with an option it cannot honour: one line naming both."""
    only_server = [flag for flag, on in (("--find-peak", o.find_peak),
                                         ("--latency-bound-ms", "latency_bound_ms" in o.explicit)) if on]
    if o.scenario != "Server" and only_server:
        raise OptionError(f"{only_server[0]} applies to --scenario Server only (this run: {o.scenario})")
    if o.target_qps is not None and o.scenario not in ("Server", "Offline"):
        raise OptionError(f"--target-qps applies to --scenario Server or Offline only (this run: {o.scenario})")
    if o.scenario == "streams":
        if o.loadgen_conf is not None:
            raise OptionError("--loadgen-conf applies to LoadGen's scenarios: give --scenario SingleStream, "
                              "MultiStream, Server or Offline")
        return
    clashes = [(o.streams > 1, f"--streams {o.streams}: a LoadGen scenario runs one system under test; LoadGen "
                               "makes the load (use --scenario Server or MultiStream for concurrency)"),
               (o.repeat > 1, "--repeat: LoadGen's own rules decide how long a scenario runs; leave --repeat at 1"),
               (o.saveimages, "--saveimages is not honoured under a LoadGen scenario (LoadGen's accuracy log holds "
                              "the frames); leave it out"),
               (o.scenario == "Server" and o.target_qps is None and not o.find_peak,
                "--scenario Server needs --target-qps (queries/s), or --find-peak to search it")]
    for clash, line in clashes:
        if clash:
            raise OptionError(line)
    if o.loadgen_conf is not None and not o.loadgen_conf.is_file():
        raise OptionError(f"--loadgen-conf {o.loadgen_conf}: no such file; give a LoadGen user.conf")


def _check_timing_lock(path: Path) -> None:
    """The lock file can be opened for append (created if missing) by every stream: checked here, not made."""
    folder = path.parent
    if not folder.is_dir():
        raise OptionError(f"--timing-lock {path}: no folder {folder}; create it, or give a lock file in an "
                          f"existing folder")
    if path.is_dir():
        raise OptionError(f"--timing-lock {path} is a folder; give a file in it, e.g. {path / 'timing.lock'}")
    if not os.access(path if path.exists() else folder, os.W_OK):
        raise OptionError(f"--timing-lock {path}: {'the file' if path.exists() else f'the folder {folder}'} is not "
                          f"writable; give a lock file this user may open for writing")


def main(argv: Sequence[str] | None = None) -> int:
    """``python arguments.py ARGS``, for run_model.sh: the options checked as inference.py checks them, before
    anything is written; on success the paths the script itself needs, as quoted shell assignments. A refused
    command line that names an existing output folder (flag or variable) gets its error appended to that
    folder's output.log, under a header of its own; nothing else there is touched."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        o = parse(argv)
        preflight(o)
    except OptionError as e:
        print(f"error: {e}", file=sys.stderr)
        _log_refusal(_named_output_dir(argv, os.environ), argv, str(e))
        return 2
    paths = {"OUTPUT_DIR_EFF": o.output_dir, "MODELS_DIR_EFF": o.models_dir or "",
             "WEIGHTS_EFF": o.weights or "", "ARCH_EFF": o.arch or ""}
    print("".join(f"{name}={shlex.quote(str(value))}\n" for name, value in paths.items()), end="")
    return 0


def preflight(o: Options) -> None:
    """What this machine offers, checked before get_model and before anything is written (run_model.sh): the
    platform's devices and room for the streams. Needs torch, not the network or a model."""
    from harness.streams.limits import LimitError, check_streams
    from harness.system.device import PlatformError, resolve_device

    try:
        resolve_device(o.platform)
        check_streams(o.streams)
    except (PlatformError, LimitError) as e:
        raise OptionError(str(e)) from None


def _named_output_dir(argv: Sequence[str], environ: Mapping[str, str]) -> Path | None:
    """The output folder a command line names explicitly, read alone (the rest of it may be wrong)."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False, exit_on_error=False)
    parser.add_argument("--output-dir")
    try:
        text = parser.parse_known_args(argv)[0].output_dir
    except (argparse.ArgumentError, SystemExit):
        return None
    text = environ.get("OUTPUT_DIR") if text is None else text
    return Path(text) if text else None


def _log_refusal(out_dir: Path | None, argv: Sequence[str], error: str) -> None:
    if out_dir is None or not out_dir.is_dir():
        return
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        with (out_dir / "output.log").open("a") as log:
            log.write(f"===== {when} run_model.sh {shlex.join(argv)}\nerror: {error}\n")
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
