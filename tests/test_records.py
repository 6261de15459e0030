"""The typed records that cross processes and files: JSON round trips, the one results format, results.yaml."""

from __future__ import annotations

import json
import math
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.measure.latency import describe
from harness.results.document import (
    read_document,
    record_from_file,
    run_document,
    stream_document,
    write_json,
    yaml_text,
)
from harness.results.records import (
    BarrierState,
    DataSource,
    Energy,
    FrameScore,
    Measurements,
    ModelRun,
    Placement,
    QualityOutcome,
    RunConfig,
    RunDocument,
    RunStatus,
    Sheet,
    StreamRecord,
    StreamStatus,
    Warmup,
)

ROOT = Path(__file__).resolve().parent.parent


def full_record(stream: int = 1, passed: bool = True) -> StreamRecord:
    frames = (FrameScore("00001/0001", 34.5, 0.97, True), FrameScore("00001/0002", 20.0 if not passed else 31.0, 0.8,
                                                                      passed))
    data = DataSource("triplet", "/data/vimeo", "abc123", ("00002/0001",))
    measurements = Measurements(
        pairs=2, frames=2, calls=2, elapsed_s=0.5, window=(10.0, 10.5), clock_offset_s=1e9,
        checkpoints=((0.25, 1), (0.5, 2)), throughput_fps=4.0, latency_wall_ms=250.0,
        latency_ms=describe([239.0, 241.0]), shortfalls=(),
        peak_memory_bytes=None, energy=Energy(), frame_size=(64, 96), padded_size=(64, 128),
        model=ModelRun("v4.0", "ours", "train_log/v4.0/flownet.pkl", "f" * 64, "fp32", "fast", False), pid=123)
    return StreamRecord(
        stream=stream, status=StreamStatus.COMPLETED, host="h", device="cuda:0", rank=0,
        placement=Placement("0000:3b:00.0", 0, (0, 1, 2), None), device_name="GPU", data_preloaded=True,
        warmup=Warmup(1, 1, 0.1), start_barrier=BarrierState.PASSED, telemetry={"available": False, "reason": "x"},
        end_barrier=BarrierState.PASSED, measurements=measurements,
        quality=QualityOutcome.of(frames, 95.0, data), quality_frames=frames,
        sheets=() if passed else (Sheet("00001/0002", 20.0, 0.8, "out/sheets/00001_0002.png"),),
    )


def test_a_stream_record_survives_json_and_pickle():
    record = full_record(passed=False)
    entry = record.to_json()
    assert entry["status"] == "completed" and entry["pairs"] == 2 and entry["model"]["variant"] == "v4.0"
    assert "quality_frames" not in entry and "traceback" not in entry and "signal" not in entry
    again = StreamRecord.from_json(json.loads(json.dumps(entry)), [f.to_json() for f in record.quality_frames])
    assert again == record
    assert pickle.loads(pickle.dumps(record)) == record  # torchrun gathers records by pickle


def test_a_failed_stream_keeps_only_what_it_has():
    record = StreamRecord(stream=3, error="stream 3: RuntimeError: boom", device="cpu", traceback="Traceback ...")
    entry = record.to_json()
    assert entry == {"stream": 3, "status": "failed", "error": "stream 3: RuntimeError: boom", "host": None,
                     "device": "cpu", "placement": None, "traceback": "Traceback ..."}
    assert StreamRecord.from_json(entry) == record
    assert record.pairs == 0 and record.throughput_fps == 0.0


def test_the_run_document_round_trips_through_its_json(tmp_path):
    doc = run_document(RunConfig(seed=0), [full_record(1), full_record(2, passed=False)], 95.0, False)
    assert doc.results.status is RunStatus.FAILED and doc.quality is not None and doc.quality.test_count == 4
    text = json.loads(json.dumps(doc.to_json()))
    assert RunDocument.from_json(text).to_json() == text
    write_json(tmp_path / "results.json", doc.to_json())
    assert read_document(tmp_path / "results.json").to_json() == text


def test_a_stream_file_is_a_document_of_that_stream_alone(tmp_path):
    record = full_record(2, passed=False).replace(status=StreamStatus.INTERRUPTED)
    doc = stream_document(RunConfig(seed=0), record, 95.0)
    path = tmp_path / "results_2.json"
    write_json(path, doc.to_json())
    keys = set(json.loads(path.read_text()))
    assert keys == set(run_document(None, [full_record()], 95.0, False).to_json())  # results.json's keys
    assert doc.results.status is RunStatus.INTERRUPTED  # as the stream saw its run
    assert record_from_file(path) == record  # per-frame scores included


def test_quality_outcome_counts_and_decides():
    frames = [FrameScore(f"f{i}", 30.0 if i < 19 else 10.0, 0.9, i < 19) for i in range(20)]
    q = QualityOutcome.of(frames, 95.0)
    assert (q.test_count, q.test_pass, q.test_fail, q.test_pass_pct, q.decision_pass) == (20, 19, 1, 95.0, True)
    assert q.failed_frames == ("f19",) and q.psnr_min_db == 10.0
    empty = QualityOutcome.of([], 95.0)
    assert not empty.decision_pass and math.isnan(empty.psnr_mean_db)
    written = json.loads(json.dumps(empty.to_json(), allow_nan=True).replace("NaN", "null"))
    assert math.isnan(QualityOutcome.from_json(written).psnr_mean_db)


def test_results_yaml_is_the_reference_shape_written_by_pyyaml():
    doc = run_document(None, [full_record(1), full_record(2)], 95.0, False)
    text = yaml_text(doc)
    assert text == ("results:\n"
                    " - key: throughput\n   value: 8.0\n   unit: img/s\n"
                    " - key: latency\n   value: 250.0\n   unit: ms\n"
                    " - key: accuracy\n   value: 100.0\n   unit: percents\n")
    assert yaml.safe_load(text) == {"results": [{"key": "throughput", "value": 8.0, "unit": "img/s"},
                                                {"key": "latency", "value": 250.0, "unit": "ms"},
                                                {"key": "accuracy", "value": 100.0, "unit": "percents"}]}


@pytest.mark.slow
def test_the_brief_line_reads_a_results_file(tmp_path):
    write_json(tmp_path / "results.json", run_document(None, [full_record(1)], 95.0, False).to_json())
    out = subprocess.run([sys.executable, "-m", "harness.results.document", "run1", str(tmp_path / "results.json")],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.stdout.strip() == ("run1: fps 4.0, p50 240.00 ms, p99 240.98 ms, status passed, PSNR 32.750 dB over 2")


@pytest.mark.slow
@pytest.mark.parametrize("module", ["harness.results.records", "harness.results.document", "harness.results.summary", "arguments",
                                    "rife.vocabulary"])
def test_readers_of_results_and_options_need_no_torch(module):
    code = f"import sys, {module}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_the_vocabulary_is_what_the_model_code_knows():
    from rife.engine import DTYPES
    from rife.execution import EXECUTIONS
    from rife.registry import VARIANTS
    from rife.vocabulary import ARCHITECTURES, DTYPE_NAMES, PRECISIONS
    from rife.vocabulary import EXECUTIONS as WORDS

    assert tuple(VARIANTS) == ARCHITECTURES
    assert tuple(DTYPES) == PRECISIONS == tuple(DTYPE_NAMES)
    assert {str(dtype).removeprefix("torch.") for dtype in DTYPES.values()} == set(DTYPE_NAMES.values())
    assert EXECUTIONS == WORDS
