"""How fast this machine trains a profile: a few steps of the zoo's DeltaNet, timed.

Wall-time limits of training runs follow this measured speed instead of a constant tuned on
another machine. The engineer runs it once per profile before its first claim of that profile
(trusted code, the zoo's program; its own child process so the engineer's event loop is free)
and records the figure in every TrainingStarted it publishes, together with the limit it set.

    python -m lab.training.calibrate cpu-tiny [--steps 6] [--threads 1]   # prints JSON
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

CALIBRATION_STEPS = 6
WARMUP_STEPS = 2
# A program may train up to the monitor's "too slow" threshold (3x the baseline) slower than the
# reference before the monitor stops it; the wall limit is only the backstop for hangs beyond that.
SLACK = 4.0
STARTUP_S = 90.0   # interpreter, imports, data, model build, checkpoints around the timed steps


def measure(profile_name: str, steps: int = CALIBRATION_STEPS, threads: int = 1) -> dict:
    """Seconds per training step of the zoo's DeltaNet on `profile_name` (in this process)."""
    import torch

    from lab.training.model import lm_loss
    from lab.training.profiles import get_profile
    from lab.program import load_layer_class
    from lab.training.runner import build_model, make_batch_fn
    from lab.zoo.registry import zoo_source

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    profile = get_profile(profile_name)
    model = build_model(load_layer_class(zoo_source("deltanet")), profile)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=profile.lr)
    batches = make_batch_fn(profile, seed=0)
    timed = 0.0
    for step in range(WARMUP_STEPS + steps):
        t0 = time.perf_counter()
        x, y = batches(step)
        loss, aux = lm_loss(model, x, y)
        opt.zero_grad(set_to_none=True)
        (loss + aux).backward()
        opt.step()
        loss.item()
        if step >= WARMUP_STEPS:
            timed += time.perf_counter() - t0
    step_s = timed / steps
    return {"profile": profile_name, "step_s": step_s, "tokens_per_s": profile.tokens_per_step / step_s,
            "steps": steps}


def train_wall_limit_s(step_s: float, total_steps: int) -> float:
    """The training part of a run's wall-time limit on a machine measured at `step_s` s/step."""
    return STARTUP_S + SLACK * step_s * total_steps


async def calibrate(profile_name: str, *, threads: int = 1, timeout_s: float = 600.0) -> dict:
    """Run `measure` in a child process (keeps the caller's event loop and memory free)."""
    env = dict(os.environ, TORCHDYNAMO_DISABLE="1", OMP_NUM_THREADS=str(threads))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lab.training.calibrate", profile_name, "--threads", str(threads),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"calibration of {profile_name} took longer than {timeout_s:.0f} s")
    if proc.returncode != 0:
        raise RuntimeError(f"calibration of {profile_name} failed: {err.decode(errors='replace')[-500:]}")
    return json.loads(out.decode().strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("profile")
    ap.add_argument("--steps", type=int, default=CALIBRATION_STEPS)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    print(json.dumps(measure(a.profile, a.steps, a.threads)))


if __name__ == "__main__":
    main()
