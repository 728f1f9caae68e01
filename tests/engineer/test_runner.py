import json
import subprocess
import sys
from pathlib import Path

from lab.training import runner
from tests.engineer.helpers import BROKEN_SOURCE, LEAKY_SOURCE, source

REPO = Path(__file__).resolve().parents[2]


def _job(tmp_path, code, **overrides):
    job = {"code": code, "profile": "cpu-micro", "seed": 0, "workdir": str(tmp_path / "work"),
           "profile_overrides": overrides}
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))
    return path


def test_runner_cli_trains_evaluates_and_streams_progress(tmp_path):
    job = _job(tmp_path, source("deltanet"), steps=30, eval_examples=32)
    out = tmp_path / "result.json"
    proc = subprocess.run([sys.executable, "-m", "lab.training.runner", str(job), str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    progress = [json.loads(line)["progress"] for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [p["step"] for p in progress] == [10, 20, 30]
    assert all(p["total_steps"] == 30 and p["tokens_per_s"] > 0 for p in progress)
    result = json.loads(out.read_text())
    assert result["steps"] == 30 and result["tokens"] == 30 * 32 * 64 and result["device"] == "cpu"
    assert [s for s, _ in result["loss_curve"]] == [10, 20, 30]
    assert result["final_loss"] == result["loss_curve"][-1][1]
    assert set(result["metrics"]) == {"mqar_recall/acc", "mqar_mc/acc", "train/autocast_bf16"}
    assert result["autocast"] == "fp32" and result["metrics"]["train/autocast_bf16"] == 0.0  # DeltaNet: fp32 on CPU
    assert 0 <= result["benchmark"] <= 1 and result["params"] > 10_000
    assert result["resumed_from_step"] is None and result["train_s"] > 0 and result["eval_s"] > 0
    assert (tmp_path / "work" / "checkpoints" / "latest.pt").exists()


def test_runner_reports_a_crashing_program_with_its_traceback(tmp_path, capsys):
    out = tmp_path / "result.json"
    assert runner.main([str(_job(tmp_path, BROKEN_SOURCE)), str(out)]) == 1
    error = json.loads(out.read_text())["error"]
    assert error["type"] == "RuntimeError" and "shape mismatch" in error["message"]
    assert "Traceback" in error["traceback"]


def test_runner_reports_a_monitor_stop(tmp_path, capsys):
    out = tmp_path / "result.json"
    assert runner.main([str(_job(tmp_path, LEAKY_SOURCE)), str(out)]) == 2
    error = json.loads(out.read_text())["error"]
    assert error["type"] == "TrainingStopped" and error["kind"] == "suspected_leak"
    assert error["evidence"]["rule"] == "future_perturbation"


def test_runner_refuses_a_model_over_the_parameter_budget(tmp_path, capsys):
    out = tmp_path / "result.json"
    assert runner.main([str(_job(tmp_path, source("linear"), max_params=1000)), str(out)]) == 1
    assert json.loads(out.read_text())["error"]["type"] == "ParamBudgetExceeded"
