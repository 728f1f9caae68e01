"""One experiment, end to end: load the layer from code, build the model, train, evaluate.

This is what the sandbox child runs (the generated code executes only here):

    python -m lab.training.runner job.json result.json

Progress goes to stdout as JSON lines {"progress": {...}}. The result file holds the
TrainResult as JSON on success (exit 0); on failure it holds {"error": {...}} and the exit
status is 2 when the monitor stopped the run (kind: too_slow | diverged | suspected_leak)
and 1 for any other exception (the traceback is what the debugger needs).
"""
from __future__ import annotations

import dataclasses
import json
import os
import random
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import torch

from lab.program import load_layer_class
from lab.training import data
from lab.training.evaluate import evaluate
from lab.training.model import CausalLM
from lab.training.monitor import Monitor, TrainingStopped
from lab.training.profiles import Profile, get_profile
from lab.training.train import AUTOCAST_METRIC, AutocastModel, default_device, train


@dataclass
class TrainJob:
    code: str
    profile: str
    seed: int
    workdir: str
    checkpoint_dir: str | None = None
    resume: bool = False
    reference_step_s: float | None = None  # the baseline's median step time on this profile and machine
    reference_probe_s: float | None = None  # the baseline run's probe cost (the machine's load then; monitor.py)
    layer_class_name: str = "DeltaNet"
    profile_overrides: dict = dataclasses.field(default_factory=dict)  # e.g. {"task": "hf", "hf_dataset": ...}
    # False: train only and save the weights (WEIGHTS_NAME in workdir); the final loss and the benchmark are
    # then computed by trusted code outside this interpreter (lab/training/scoring.py)
    evaluate: bool = True
    checks: bool = False  # run the researcher's dynamic checks first (debugger revisions never met them)
    threads_file: str | None = None  # the engineer writes the threads this run may use now (its share of the cores)
    rungs: list[int] = dataclasses.field(default_factory=list)  # steps whose weights the engineer judges (issue 23)
    # a path with "{step}" that the engineer creates once it has judged that rung and the run may train on; the run
    # waits for it there (at most RUNG_WAIT_S), so the scorer has the run's core to itself and a run stopped at the
    # rung trains no step past it. None: train on at once (a baseline: nothing to decide)
    rung_go: str | None = None


@dataclass
class TrainResult:
    loss_curve: list[list[float]]
    final_loss: float
    metrics: dict[str, float]
    benchmark: float
    params: int
    tokens: int
    train_s: float
    eval_s: float
    tokens_per_s: float
    device: str
    peak_mem_mb: float
    steps: int
    resumed_from_step: int | None
    profile: str = ""
    seed: int = 0
    step_cost_s: float = 0.0   # a step as the monitor measures it (CPU seconds on a CPU): the next reference
    autocast: str = "fp32"     # what the run trained under: "fp32" or "bf16" (autocast; Profile.autocast)
    probe_s: float | None = None  # the monitor's median probe cost in this run (a baseline's: the load reference)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


class ParamBudgetExceeded(ValueError):
    pass


def build_model(layer_cls: type[torch.nn.Module], profile: Profile) -> CausalLM:
    return CausalLM(layer_cls, profile.vocab_size, profile.hidden_size, profile.num_layers, profile.num_heads,
                    layer_kwargs=profile.layer_kwargs, max_len=profile.seq_len)


def make_batch_fn(profile: Profile, seed: int) -> data.BatchFn:
    if profile.task == "mqar":
        return data.mqar_batch_fn(seed, profile.batch_size, profile.seq_len, profile.mqar_num_kv, profile.vocab_size)
    if profile.task == "battery":
        from lab.training.battery import battery_batch_fn
        return battery_batch_fn(profile.battery_tasks, seed, profile.batch_size, profile.seq_len)
    if profile.task == "bytes":
        return data.window_batch_fn(data.load_byte_corpus().train, seed, profile.batch_size, profile.seq_len)
    from lab.training import datastage
    stage = os.environ.get(datastage.STAGE_ENV)   # the sandbox: staged tokens, bound read-only (datastage.py)
    if not stage and os.environ.get("ARCHLAB_SANDBOX") != "1":   # trusted side (held-out loss): the data dir's
        stage = datastage.staged(profile, datastage.default_data_dir())
    if stage:
        tokens = datastage.load_staged_tokens(profile, stage)
    elif os.environ.get("ARCHLAB_SANDBOX") == "1":   # offline: the hub is out of reach, say what prepares it
        raise datastage.DataNotStaged(f"profile {profile.name}: no staged training data in the sandbox; prepare "
                                      f"it with `{datastage.prepare_command(profile)}`")
    else:
        tokens = data.load_hf_tokens(profile.hf_dataset, profile.hf_config, profile.hf_tokenizer,
                                     profile.hf_tokens or profile.steps * profile.tokens_per_step)
    return data.window_batch_fn(tokens, seed, profile.batch_size, profile.seq_len)


def threads_reader(path: str | None) -> Callable[[], int] | None:
    """The threads the engineer gives this run now (a number in `path`); the current count while unreadable."""
    if not path:
        return None

    def threads() -> int:
        try:
            return max(1, min(64, int(Path(path).read_text())))
        except (OSError, ValueError):
            return torch.get_num_threads()
    return threads


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


WEIGHTS_NAME = "model.pt"  # the trained state_dict (tensors only), in the job's workdir


def rung_dir(workdir: str | Path, step: int) -> Path:
    """Where the weights at rung `step` go: a workdir of their own, so the scorer reads them as it reads a run's."""
    return Path(workdir) / f"rung-{step}"


RUNG_GO_NAME = "rung-{step}.go"   # in the run's scratch: the engineer's go-ahead at a rung (Job.rung_go)
RUNG_WAIT_S = 60.0   # the longest a run waits for the engineer's verdict at a rung (a rung scores in seconds)


def save_rung(model: torch.nn.Module, workdir: str | Path, step: int, autocast: str, go: str | None = None) -> None:
    """The weights at a rung, for the trusted scorer (lab/training/scoring.py), then a `{"rung": ...}` line
    that tells the engineer they are there; with `go` (Job.rung_go), wait for the engineer's go-ahead."""
    out = rung_dir(workdir, step)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out / (WEIGHTS_NAME + ".tmp"))
    os.replace(out / (WEIGHTS_NAME + ".tmp"), out / WEIGHTS_NAME)
    print(json.dumps({"rung": {"step": step, "workdir": str(out), "autocast": autocast}}), flush=True)
    if go:
        flag, deadline = Path(go.format(step=step)), time.monotonic() + RUNG_WAIT_S
        while not flag.exists() and time.monotonic() < deadline:
            time.sleep(0.05)


class ChecksFailed(Exception):
    """A revision failed the researcher's dynamic checks (build, shape, causality, complexity ...)."""

    def __init__(self, reason: str, feedback: str, evidence: dict):
        super().__init__(f"{reason}: {feedback}")
        self.reason, self.feedback, self.evidence = reason, feedback, evidence


def run_checks(code: str, profile: Profile) -> None:
    from lab.checks import profile_dims
    from lab.checks_child import check_program
    r = check_program(code, profile_dims(profile.name), (256, 1024), repeats=3)
    if not r["ok"]:
        raise ChecksFailed(r["reason"], r["feedback"], r.get("evidence") or {})


def run_job(job: TrainJob, on_progress: Callable[..., None] | None = None) -> TrainResult:
    profile = get_profile(job.profile, **job.profile_overrides)
    device = default_device()
    if job.checks:
        run_checks(job.code, profile)
    layer_cls = load_layer_class(job.code, job.layer_class_name)
    seed_everything(job.seed)
    model = build_model(layer_cls, profile)
    params = model.num_params()
    if params > profile.max_params:
        raise ParamBudgetExceeded(f"{params} parameters > budget {profile.max_params} of profile {profile.name}")
    monitor = Monitor(reference_step_s=job.reference_step_s, slow_factor=profile.slow_factor,
                      warmup_steps=profile.monitor_warmup_steps, leak_check_every=profile.leak_check_every,
                      reference_probe_s=job.reference_probe_s, probe_every=0 if device.startswith("cuda") else 10)
    outcome = train(model, profile, make_batch_fn(profile, job.seed), seed=job.seed, device=device,
                    checkpoint_dir=job.checkpoint_dir or str(Path(job.workdir) / "checkpoints"), resume=job.resume,
                    on_progress=on_progress, monitor=monitor, threads=threads_reader(job.threads_file),
                    rungs=tuple(job.rungs),
                    on_rung=lambda step, mode: save_rung(model, job.workdir, step, mode, job.rung_go))
    if not job.evaluate:
        Path(job.workdir).mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), Path(job.workdir) / WEIGHTS_NAME)
        scores = SimpleNamespace(metrics={}, benchmark=float("nan"), eval_s=0.0)
    else:
        scored = model if outcome.autocast == "fp32" else AutocastModel(model, outcome.autocast, device)
        scores = evaluate(scored, profile, Path(job.workdir) / "eval", device=device)
    metrics = {**scores.metrics, AUTOCAST_METRIC: float(outcome.autocast == "bf16")}
    return TrainResult(
        loss_curve=outcome.loss_curve, final_loss=outcome.final_loss, metrics=metrics,
        benchmark=scores.benchmark, params=params, tokens=outcome.tokens, train_s=outcome.train_s,
        eval_s=scores.eval_s, tokens_per_s=outcome.tokens_per_s, device=device, peak_mem_mb=outcome.peak_mem_mb,
        steps=outcome.steps, resumed_from_step=outcome.resumed_from_step, profile=profile.name, seed=job.seed,
        step_cost_s=outcome.step_cost_s, autocast=outcome.autocast, probe_s=monitor.probe_s)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m lab.training.runner JOB.json RESULT.json", file=sys.stderr)
        return 64
    job = TrainJob(**json.loads(Path(argv[0]).read_text()))
    result_path = Path(argv[1])

    def emit(**progress):
        print(json.dumps({"progress": progress}), flush=True)

    t0 = time.time()
    try:
        result = run_job(job, on_progress=emit)
    except TrainingStopped as e:
        error, status = {"type": "TrainingStopped", "kind": e.kind, "evidence": e.evidence, "message": str(e)}, 2
    except ChecksFailed as e:  # causality -> suspected_leak, complexity -> too_slow, the rest -> compile_error
        kind = {"causality": "suspected_leak", "complexity": "too_slow"}.get(e.reason, "compile_error")
        error = {"type": "ChecksFailed", "kind": kind, "evidence": {"check": e.reason, **e.evidence},
                 "message": str(e)[:2000]}
        status = 2
    except Exception as e:  # noqa: BLE001 - every failure of generated code is reported, not raised
        error = {"type": type(e).__name__, "message": str(e), "traceback": traceback.format_exc()}
        print(error["traceback"], file=sys.stderr)
        status = 1
    else:
        result_path.write_text(json.dumps(result.to_json()))
        return 0
    error["elapsed_s"] = round(time.time() - t0, 3)
    result_path.write_text(json.dumps({"error": error}))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
