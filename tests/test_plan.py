"""What the parent resolves once: the plan a stream receives, the seeds, the layout, and options checked
before torch loads."""

from __future__ import annotations

import pickle
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

import arguments
import inference
from harness.results.outputs import OutputLayout
from harness.results.records import RunConfig
from harness.streams.plan import Seeds

ROOT = Path(__file__).resolve().parent.parent


def setup_for(tmp_path: Path, *args: str) -> inference.Setup:
    options = arguments.parse(["--dummy", "--platform", "CPU", "--output-dir", str(tmp_path), *args], {})
    return inference.prepare(options)


def test_seeds_for_inputs_warmup_and_weights_are_separate_and_derived_from_seed():
    seeds = Seeds.derived(5)
    assert (seeds.inputs, seeds.warmup, seeds.weights) == (5, 1005, 5)
    assert seeds.stream_inputs(1) != seeds.stream_inputs(2) != seeds.warmup
    assert Seeds.derived(6) != seeds


def test_a_stream_gets_a_plan_of_resolved_objects_not_the_options(tmp_path):
    from rife.engine import Precision
    from rife.execution import ExecutionPlan

    setup = setup_for(tmp_path, "--seed", "7", "--streams", "2", "--data-height", "64", "--data-width", "96",
                      "--precision", "fp32", "--execution", "eager", "--async", "3", "--warmup", "4")
    plan = setup.stream_plan(2, 1, threads=1, config=RunConfig(seed=7))
    assert isinstance(plan.engine.precision, Precision) and plan.engine.precision.name == "fp32"
    assert isinstance(plan.engine.execution, ExecutionPlan) and plan.engine.execution.mode == "eager"
    assert plan.model.seed == plan.settings.seeds.weights == 7 and plan.settings.seeds.warmup == 1007
    assert (plan.settings.warmup_pairs, plan.settings.sync_every) == (4, 3)
    assert plan.workload.frame_size == (64, 96) and plan.device == "cpu" and plan.index == 2
    assert not any(isinstance(getattr(plan, f.name), arguments.Options) for f in fields(plan))
    assert pickle.loads(pickle.dumps(plan)) == plan  # streams start with spawn


@pytest.mark.parametrize("args,shown,autocast", [
    (["--amp", "--precision", "fp32"], "fp32", False),
    (["--precision", "bf16"], "bf16 (autocast)", True),  # the CPU runs bf16 as autocast, --amp or not
])
def test_the_printed_precision_is_the_one_recorded(tmp_path, capsys, args, shown, autocast):
    setup = setup_for(tmp_path, *args)
    inference.print_config(setup)
    assert f"  precision        {shown}\n" in capsys.readouterr().out
    assert setup.engine.precision.autocast is autocast


def test_output_file_names_come_from_the_layout():
    layout = OutputLayout(Path("out"))
    assert layout.stream_results(3) == Path("out/results_3.json") and layout.telemetry(2) == Path("out/telemetry_2.json")
    assert layout.sheet("00001/0002") == Path("out/sheets/00001_0002.png")
    assert layout.image("a/b", 0.25) == Path("out/images/a_b_t0.2500.png") and layout.image("a/b", None).name == "a_b.png"
    assert (layout.results_json.name, layout.results_yaml.name, layout.log.name) == ("results.json", "results.yaml",
                                                                                      "output.log")


def test_an_option_error_is_reported_before_torch_loads(capsys):
    assert inference.main(["--batch-size", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --batch-size '0' is not valid: expected an integer") and err.count("\n") == 1


def test_an_option_error_from_the_command_line_imports_no_torch():
    """The whole process, as a user runs it: one line, exit 2, and torch never imported (that is what made it slow)."""
    result = subprocess.run([sys.executable, "-X", "importtime", "inference.py", "--batch-size", "0"],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if not line.startswith("import time:")]
    assert len(errors) == 1 and errors[0].startswith("error: --batch-size '0' is not valid: expected an integer")
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert not {"torch", "numpy", "cv2"} & imported, sorted(imported & {"torch", "numpy", "cv2"})
