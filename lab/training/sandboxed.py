"""One training run of a program in the sandbox, outside any campaign: the engineer's runner
(lab.training.runner) in a contained child, with the limits the worker uses.

    res = run_training_sandboxed(code, "cpu-tiny", seed=0, scratch=tmp, on_progress=print)
    res.ok, res.kind, res.result   # result: the runner's TrainResult as a dict, or {"error": {...}}

`archlab evaluate` and the zoo's comparisons call this; the worker (worker.py) builds the same
job and limits inside its claim/heartbeat loop (`training_limits` is the one definition of them).
"""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Callable

from lab.sandbox import RESULT_NAME, Limits, SandboxResult, trusted_executables
from lab.training.calibrate import train_wall_limit_s
from lab.training.datastage import STAGE_ENV, require
from lab.training.profiles import Profile, get_profile
from lab.training.scoring import run_and_score

RUNNER_MODULE = "lab.training.runner"
# trusted modules imported by the training child before the sandbox's audit hook is armed (they
# probe the network, ctypes and subprocesses at import time)
RUNNER_PREIMPORT = ("torch", "lab.training.evaluate", "lab.training.train", "lm_eval", "lm_eval.tasks",
                    "lm_eval.evaluator", "datasets")
GPU_TOOLS = ("gcc", "cc", "clang", "ld", "ldconfig", "ptxas", "nvcc", "cuobjdump", "nvdisasm")  # triton's compiles


def training_limits(profile: Profile, *, device: str = "cpu", threads: int = 1, writable: tuple[str, ...] = (),
                    preimport: tuple[str, ...] = RUNNER_PREIMPORT, step_s: float | None = None,
                    data_stage: str | Path | None = None) -> Limits:
    """The sandbox limits of one training + evaluation run of `profile` (as the engineer worker sets them).

    `step_s`: this machine's measured seconds per step on the profile (lab/training/calibrate.py);
    the training time limit then follows it. Without it, the profile's constant applies.
    `data_stage`: the profile's staged data (datastage.require), bound read-only and named in the child's env.
    """
    cuda = device.startswith("cuda")
    train_s = profile.train_time_limit_s if step_s is None else train_wall_limit_s(step_s, profile.steps)
    return Limits(wall_s=train_s + profile.eval_time_limit_s + 120, mem_mb=profile.memory_limit_mb,
                  threads=threads, writable=writable, preimport=preimport, strict=False, cuda=cuda,
                  compile=cuda, allow_exec=trusted_executables(GPU_TOOLS) if cuda else (),
                  readable=(str(data_stage),) if data_stage else (),
                  extra_env={STAGE_ENV: str(data_stage)} if data_stage else {})


def training_job(code: str, profile: str, seed: int, *, scratch: Path, checkpoint_dir: Path, resume: bool,
                 reference_step_s: float | None = None, reference_probe_s: float | None = None,
                 profile_overrides: dict | None = None,
                 evaluate: bool = False, checks: bool = False, threads_file: Path | None = None,
                 rungs: tuple[int, ...] = (), rung_go: Path | None = None) -> dict:
    """The runner's job (written to `scratch/job.json`). `evaluate=False`: the child only trains, and trusted
    code scores it (scoring.py); `checks`: the child runs the dynamic checks first (a debugger's revision)."""
    job = {"code": code, "profile": profile, "seed": seed, "workdir": str(scratch / "work"),
           "checkpoint_dir": str(checkpoint_dir), "resume": resume, "reference_step_s": reference_step_s,
           "reference_probe_s": reference_probe_s,
           "profile_overrides": dict(profile_overrides or {}), "evaluate": evaluate, "checks": checks,
           "threads_file": str(threads_file) if threads_file else None, "rungs": list(rungs),
           "rung_go": str(rung_go) if rung_go else None}
    (scratch / "job.json").write_text(json.dumps(job))
    return job


def _payload_of(line: str, key: str) -> dict | None:
    """The dict of a `{"<key>": {...}}` line the runner printed, or None for any other line."""
    if not line.startswith('{"%s"' % key):
        return None
    try:
        payload = json.loads(line)[key]
    except (ValueError, KeyError, TypeError):
        return None
    return payload if isinstance(payload, dict) else None


def progress_of(line: str) -> dict | None:
    """The progress dict of one line the runner printed (`{"progress": {...}}`), or None for any other line."""
    return _payload_of(line, "progress")


def rung_of(line: str) -> dict | None:
    """The rung dict of a `{"rung": {...}}` line the runner printed (weights saved at a rung), or None."""
    return _payload_of(line, "rung")


def run_training_sandboxed(code: str, profile: str, seed: int, *, scratch: str | Path,
                           profile_overrides: dict | None = None, checkpoint_dir: str | Path | None = None,
                           resume: bool = False, reference_step_s: float | None = None,
                           reference_probe_s: float | None = None, device: str = "cpu",
                           threads: int = 1, on_progress: Callable[[dict], None] | None = None,
                           stop: threading.Event | None = None, data_dir: str | Path | None = None,
                           rungs: tuple[int, ...] = (),
                           on_rung: Callable[[dict], None] | None = None) -> SandboxResult:
    """Train and evaluate `code` on `profile` in a sandbox child; blocks until it ends. `rungs`: steps whose
    weights the runner also saves (runner.rung_dir under the scratch's workdir), for early stopping's measures;
    `on_rung` receives each rung dict the runner prints once those weights are saved (setting `stop` from it ends
    the run there).

    `on_progress` receives each progress dict the runner prints (step, total_steps, loss, ...), in the
    calling thread of the sandbox's reader. On success `res.result` is the TrainResult as a dict.
    A profile that trains on staged data (datastage.py) raises DataNotStaged, naming the command, while its
    data is missing under `data_dir` (default: the settings' data dir).
    """
    scratch = Path(scratch).resolve()
    scratch.mkdir(parents=True, exist_ok=True)
    overrides = dict(profile_overrides or {})
    prof = get_profile(profile, **overrides)
    ckpt = Path(checkpoint_dir).resolve() if checkpoint_dir else scratch / "work" / "checkpoints"
    ckpt.mkdir(parents=True, exist_ok=True)
    job = training_job(code, profile, seed, scratch=scratch, checkpoint_dir=ckpt, resume=resume,
                       reference_step_s=reference_step_s, reference_probe_s=reference_probe_s,
                       profile_overrides=overrides, rungs=rungs)

    def on_line(line: str) -> None:
        update = progress_of(line)
        if on_progress is not None and update is not None:
            on_progress(update)
        elif on_rung is not None and (rung := rung_of(line)) is not None:
            on_rung(rung)

    if data_dir is None and prof.task == "hf":
        from lab.training.datastage import default_data_dir
        data_dir = default_data_dir()
    stage = require(prof, data_dir) if data_dir is not None else None
    limits = training_limits(prof, device=device, threads=threads, writable=(str(ckpt),), data_stage=stage)
    return run_and_score(RUNNER_MODULE, [str(scratch / "job.json"), str(scratch / RESULT_NAME)], job=job,
                         scratch=scratch, limits=limits, on_line=on_line, stop=stop)
