"""Several GPUs and machines, as far as a CPU shows them: torchrun ranks, device ids, NUMA placement,
the throughput counted over the streams' common window, the store barriers and the stop flag."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

import arguments
import inference
from harness.results.document import frames_within, overlap_throughput, per_device, per_host, record_from_file
from harness.results.records import FrameScore, StreamRecord, StreamStatus
from harness.streams import placement
from harness.streams.distributed import DistBarrier, DistStop, Launch, launch_from_env
from harness.system.device import PlatformError

ROOT = Path(__file__).resolve().parent.parent
SMALL = {"PLATFORM": "CPU", "DATA_HEIGHT": "64", "DATA_WIDTH": "96", "WARMUP": "1"}
TORCHRUN = [str(Path(sys.executable).parent / "torchrun"), "--standalone", "--nproc-per-node", "2"]


def _env(out: Path) -> dict[str, str]:
    return {**os.environ, **SMALL, "OUTPUT_DIR": str(out)}


def load(path: Path) -> dict:
    return json.loads(path.read_text())


# --- torchrun end to end ------------------------------------------------------------------
@pytest.mark.slow
def test_torchrun_two_ranks_match_a_two_stream_run(tmp_path):
    ranks, spawned = tmp_path / "ranks", tmp_path / "spawned"
    args = ["inference.py", "--dummy", "--num-inputs", "3"]
    run = subprocess.run([*TORCHRUN, *args], env=_env(ranks), capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert run.returncode == 0, run.stderr + run.stdout
    spawn = subprocess.run([sys.executable, *args, "--streams", "2"], env=_env(spawned), capture_output=True, text=True,
                           timeout=180, cwd=ROOT)
    assert spawn.returncode == 0, spawn.stderr
    doc, ref = load(ranks / "results.json"), load(spawned / "results.json")
    assert doc.keys() == ref.keys() and doc["results"].keys() == ref["results"].keys()
    assert doc["results"]["metrics"].keys() == ref["results"]["metrics"].keys()
    assert doc["results"]["status"] == "passed" and len(doc["streams"]) == 2
    assert doc["config"]["workload"]["model"]["streams"] == 2
    m = doc["results"]["metrics"]
    for key in ("throughput", "throughput-overlap", "latency", "latency-per-call-p50"):
        assert m[key]["avg"] > 0, key
    assert m["total-images-tested"]["avg"] == 6
    assert [s["rank"] for s in doc["streams"]] == [0, 1] and [s["stream"] for s in doc["streams"]] == [1, 2]
    (host, entry), = doc["results"]["hosts"].items()
    assert entry["ranks"] == [0, 1] and entry["throughput"] == pytest.approx(m["throughput"]["avg"])
    assert doc["results"]["per_device"]["cpu"]["streams"] == [1, 2]
    for i in (1, 2):
        assert load(ranks / f"results_{i}.json")["streams"][0]["status"] == "completed"
    assert run.stdout.count("RIFE benchmark results") == 1  # rank 0 alone reports the run


def _rank_pids(torchrun_pid: int) -> dict[int, int]:
    """The workers torchrun started (its children), by their RANK."""
    pids = subprocess.run(["pgrep", "-P", str(torchrun_pid)], capture_output=True, text=True).stdout.split()
    ranks = {}
    for pid in pids:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        rank = next((e[5:] for e in env if e.startswith(b"RANK=")), None)
        if rank is not None:
            ranks[int(rank)] = int(pid)
    return ranks


def _start_long_run(out: Path) -> subprocess.Popen:
    """torchrun with two ranks, returned once both report progress in their timed loops."""
    proc = subprocess.Popen([*TORCHRUN, "inference.py", "--dummy", "--num-inputs", "100000"], env=_env(out),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    seen, deadline = set(), time.monotonic() + 120
    while seen != {1, 2} and time.monotonic() < deadline:
        line = proc.stdout.readline()
        seen |= {k for k in (1, 2) if f"[stream {k}] timed: " in line}
    assert seen == {1, 2}, "both ranks should report progress"
    return proc


@pytest.mark.slow
def test_killed_rank_is_named_and_the_others_results_are_kept(tmp_path):
    """torchrun's agent SIGTERMs rank 0 when rank 1 dies: rank 0 stops, its gather fails, and it writes
    results.json from its own record, naming rank 1 (this design's guarantee while rank 0 lives)."""
    proc = _start_long_run(tmp_path)
    ranks = _rank_pids(proc.pid)
    assert sorted(ranks) == [0, 1], ranks
    os.kill(ranks[1], signal.SIGKILL)
    rest, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0, rest
    assert "rank 1 (host " in rest and "died or stopped answering" in rest
    doc = load(tmp_path / "results.json")
    assert doc["results"]["status"] == "failed"
    assert any("died or stopped answering" in r for r in doc["results"]["invalid_reasons"])
    survivor, dead = doc["streams"]
    assert survivor["status"] == "interrupted" and survivor["pairs"] > 0 and survivor["throughput_fps"] > 0
    assert dead["status"] == "failed" and dead["rank"] == 1
    assert load(tmp_path / "results_1.json")["streams"][0]["pairs"] == survivor["pairs"]


@pytest.mark.slow
def test_sigterm_to_torchrun_stops_every_rank_and_keeps_their_results(tmp_path):
    proc = _start_long_run(tmp_path)
    proc.send_signal(signal.SIGTERM)  # the agent passes it on to every rank
    proc.communicate(timeout=120)
    assert proc.returncode != 0
    doc = load(tmp_path / "results.json")
    assert doc["results"]["status"] == "interrupted"
    assert [(s["status"], s["signal"]) for s in doc["streams"]] == [("interrupted", "SIGTERM")] * 2
    assert all(s["pairs"] > 0 for s in doc["streams"])


# --- device ids -------------------------------------------------------------------------------
@pytest.mark.parametrize("value,needle", [
    ("-1", "non-negative integers separated by commas"), ("0,x", "non-negative integers"), ("", "e.g. 0,2,3"),
    ("1,1", "each device id once"),
])
def test_device_ids_syntax(value, needle):
    with pytest.raises(arguments.OptionError, match=needle):
        arguments.parse([], {"DEVICE_IDS": value})
    assert arguments.parse(["--device-ids", "0, 2,3"], {}).device_ids == (0, 2, 3)


@pytest.mark.slow
def test_device_ids_are_refused_on_the_cpu_platform():
    result = subprocess.run([sys.executable, "inference.py", "--dummy", "--device-ids", "0"],
                            env={**os.environ, **SMALL}, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["error: --device-ids / DEVICE_IDS applies to GPUs (CUDA, XPU); leave it unset on the CPU platform"]


def test_device_ids_must_exist_and_streams_go_round_robin():
    assert placement.check_device_ids("cuda", None, 3) == (0, 1, 2)
    assert placement.check_device_ids("cpu", None, 0) == ()
    with pytest.raises(PlatformError, match=r"--device-ids 0,5: there is no CUDA device 5 \(2 visible"):
        placement.check_device_ids("cuda", (0, 5), 2)
    assert [placement.device_for("cuda", (0, 2, 3), k) for k in range(4)] == ["cuda:0", "cuda:2", "cuda:3", "cuda:0"]
    assert placement.device_for("cpu", (), 5) == "cpu"


def test_streams_under_torchrun_are_the_ranks():
    launch = Launch(rank=0, world_size=4, local_rank=0, local_world_size=2)
    assert inference._streams_under_torchrun(arguments.parse([], {}), launch).streams == 4
    with pytest.raises(inference.UsageError, match="WORLD_SIZE=4 streams; leave --streams unset"):
        inference._streams_under_torchrun(arguments.parse(["--streams", "2"], {}), launch)
    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "h", "LOCAL_WORLD_SIZE": "2"}
    assert launch_from_env(env) == Launch(3, 4, 1, 2) and launch_from_env(env).stream == 4
    assert launch_from_env({"RANK": "0"}) is None


# --- NUMA placement against a fake sysfs ---------------------------------------------------
def _fake_sysfs(root: Path, devices: dict[str, str], nodes: dict[int, str]) -> Path:
    for address, node in devices.items():
        (root / "bus/pci/devices" / address).mkdir(parents=True)
        (root / "bus/pci/devices" / address / "numa_node").write_text(node + "\n")
    for node, cpulist in nodes.items():
        (root / f"devices/system/node/node{node}").mkdir(parents=True)
        (root / f"devices/system/node/node{node}/cpulist").write_text(cpulist + "\n")
    return root


def test_placement_reads_the_topology(tmp_path):
    sysfs = _fake_sysfs(tmp_path, {"0000:3b:00.0": "1", "0000:17:00.0": "-1"}, {0: "0-3,8-11", 1: "4-7,12-15"})
    assert placement.pci_address(0, 0x3B, 0) == "0000:3b:00.0"
    assert placement.normalize_pci("00000000:3B:00.0") == "0000:3b:00.0"
    assert placement.parse_cpulist("0-2,5,7-8\n") == {0, 1, 2, 5, 7, 8}
    assert placement.cpus_near("0000:3b:00.0", sysfs) == (1, {4, 5, 6, 7, 12, 13, 14, 15})
    assert placement.cpus_near("0000:17:00.0", sysfs) == (None, set())  # -1: the machine has one node
    assert placement.cpus_near("0000:99:00.0", sysfs) == (None, set())
    assert placement.cpus_near(None, sysfs) == (None, set())


def test_pin_near_sets_the_affinity_of_the_gpus_node(tmp_path, monkeypatch):
    sysfs = _fake_sysfs(tmp_path, {"0000:3b:00.0": "1"}, {1: "4-5"})
    pinned = []
    monkeypatch.setattr(placement, "gpu_pci_address", lambda device: "0000:3b:00.0" if device.index == 1 else None)
    monkeypatch.setattr(placement.os, "sched_setaffinity", lambda pid, cpus: pinned.append((pid, set(cpus))))
    assert placement.pin_near(torch.device("cuda:1"), sysfs) == {"pci_address": "0000:3b:00.0", "numa_node": 1,
                                                                 "cpus": [4, 5]}
    assert pinned == [(0, {4, 5})]
    assert "affinity left as it was" in placement.pin_near(torch.device("cuda:0"), sysfs)["note"]
    assert placement.pin_near(torch.device("cpu"), sysfs) is None and len(pinned) == 1


# --- throughput over the common window --------------------------------------------------------
def _record(stream: int, window: list[float], checkpoints: list[list[float]], offset: float = 0.0,
            **extra) -> StreamRecord:
    frames = checkpoints[-1][1]
    return StreamRecord.from_json({"stream": stream, "pairs": frames, "frames": frames, "window": window,
                                   "clock_offset_s": offset, "checkpoints": checkpoints,
                                   "throughput_fps": frames / (window[1] - window[0]), **extra})


def _shares(shares: dict) -> dict:
    return {k: s.to_json() for k, s in shares.items()}


def test_overlap_throughput_counts_frames_inside_the_common_window():
    # stream 1 runs [0, 4] at 10 frames/s; stream 2 runs [2, 5] (its monotonic clock is 100 s behind) at 20/s
    a = _record(1, [0.0, 4.0], [[t / 10, t] for t in range(1, 41)])
    b = _record(2, [-98.0, -95.0], [[t / 20, t] for t in range(1, 61)], offset=100.0)
    assert frames_within(a, 2.0, 4.0) == 20 and frames_within(b, 2.0, 4.0) == 40
    m = overlap_throughput([a, b]).to_json()
    assert m["avg"] == pytest.approx(30.0) and m["min"] == pytest.approx(10.0) and m["max"] == pytest.approx(20.0)
    assert m["units"] == "frames/s"
    apart = _record(2, [5.0, 6.0], [[1.0, 10]])
    assert overlap_throughput([a, apart]).avg is None  # never ran together
    failed = StreamRecord(stream=3, status=StreamStatus.FAILED)
    assert overlap_throughput([a, failed]).avg == pytest.approx(10.0)


def test_results_per_device_and_per_host():
    recs = [_record(1, [0, 1], [[1, 10]], host="a", device="cuda:0", device_name="H200", rank=0),
            _record(2, [0, 1], [[1, 30]], host="a", device="cuda:1", device_name="H200", rank=1),
            _record(3, [0, 1], [[1, 5]], host="b", device="cuda:0", device_name="H100", rank=2),
            StreamRecord(stream=4, rank=3, host="b", status=StreamStatus.FAILED)]
    assert _shares(per_device(recs[:2])) == {"cuda:0": {"throughput": 10.0, "streams": [1], "device_name": "H200"},
                                    "cuda:1": {"throughput": 30.0, "streams": [2], "device_name": "H200"}}
    assert per_device(recs)["b/cuda:0"].to_json() == {"throughput": 5.0, "streams": [3], "device_name": "H100"}
    assert _shares(per_host(recs)) == {"a": {"throughput": 40.0, "streams": [1, 2], "ranks": [0, 1]},
                              "b": {"throughput": 5.0, "streams": [3, 4], "ranks": [2, 3]}}


def test_record_from_file_reads_a_stream_document_only(tmp_path):
    raw = {"stream": 2, "status": "completed"}
    frames = [{"name": "x", "psnr": 30.0, "ssim": 0.9, "passed": True}]
    (tmp_path / "raw.json").write_text(json.dumps(raw))
    (tmp_path / "doc.json").write_text(json.dumps({"streams": [raw], "quality_frames": frames}))
    assert record_from_file(tmp_path / "raw.json") is None  # not a results document
    record = record_from_file(tmp_path / "doc.json")
    assert record == StreamRecord(stream=2, status=StreamStatus.COMPLETED, quality_frames=(FrameScore("x", 30.0, 0.9, True),))
    assert record_from_file(tmp_path / "missing.json") is None


# --- store barrier and stop flag ----------------------------------------------------------------
def test_store_barrier_and_stop_flag():
    store = dist.HashStore()
    stops = [DistStop(store), DistStop(store)]
    try:
        passed = []
        threads = [threading.Thread(target=lambda k=k: passed.append(
            DistBarrier(store, "start", 2, stops[k]).wait(5.0) is None)) for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert passed == [True, True]
        with pytest.raises(threading.BrokenBarrierError):  # alone: times out
            DistBarrier(store, "end", 2, stops[0]).wait(0.1)
        stops[1].set()  # one rank stops: the other sees it, and no barrier holds it any more
        deadline = time.monotonic() + 5
        while not stops[0].is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stops[0].is_set()
        with pytest.raises(threading.BrokenBarrierError):
            DistBarrier(store, "late", 2, stops[0]).wait(5.0)
    finally:
        for s in stops:
            s.close()


def test_help_shows_every_option():
    text = arguments.build_parser().format_help()
    assert "--device-ids DEVICE_IDS" in text and "this % of frames" in text


def test_checkpoints_are_thinned_but_keep_the_end():
    from harness.streams.stream import thinned

    points = [(i * 0.001, i) for i in range(1, 5001)]
    kept = thinned(points)
    assert len(kept) <= 1001 and kept[0] == (0.001, 1) and kept[-1] == (5.0, 5000)
    assert thinned(points[:10]) == tuple((round(t, 6), f) for t, f in points[:10])
