"""The training loop: AdamW, warmup-stable-decay, grad clipping, checkpoints with exact resume.

Exact resume holds because every batch is a function of (seed, step) (see data.py), the
checkpoint holds model, optimizer and RNG state, and checkpoints fall on loss-curve
boundaries (no half-averaged window to carry over).
"""
from __future__ import annotations

import contextlib
import math
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from lab.training.data import BatchFn
from lab.training.model import CausalLM, lm_loss
from lab.training.monitor import Monitor
from lab.training.profiles import Profile

CHECKPOINT_NAME = "latest.pt"
ProgressFn = Callable[..., None]  # on_progress(step=, total_steps=, loss=, tokens_per_s=, lr=, elapsed_s=)


@dataclass
class TrainOutcome:
    loss_curve: list[list[float]]  # [[step, mean loss of the log_every steps ending there], ...]
    final_loss: float  # the last point of the curve
    steps: int
    tokens: int
    train_s: float  # wall time in the loop, summed over resumed segments
    tokens_per_s: float
    peak_mem_mb: float
    resumed_from_step: int | None
    step_cost_s: float = 0.0  # mean cost of a step as the monitor measures it (see `step_cost` in train)


def lr_at(step: int, total_steps: int, lr: float, warmup_frac: float, decay_frac: float,
          min_lr_frac: float) -> float:
    """Warmup-stable-decay: linear warmup to lr, flat, then linear decay to min_lr_frac * lr
    reached at the last step. `step` counts from 0."""
    warmup = max(1, round(warmup_frac * total_steps))
    decay = max(1, round(decay_frac * total_steps))
    if step < warmup:
        return lr * (step + 1) / warmup
    decay_start = total_steps - decay
    if step < decay_start:
        return lr
    progress = (step - decay_start + 1) / decay
    return lr * (1.0 - (1.0 - min_lr_frac) * progress)


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def make_optimizer(model: torch.nn.Module, profile: Profile) -> torch.optim.AdamW:
    """Weight decay on matrices only (not on norms, biases, gates' scalars)."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": profile.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=profile.lr, betas=(0.9, 0.95))


def save_checkpoint(path: Path, state: dict) -> None:
    """Atomic: a crash mid-write leaves the previous checkpoint intact."""
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def peak_memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB; the process peak RSS


def train(model: CausalLM, profile: Profile, batch_fn: BatchFn, *, seed: int, device: str | None = None,
          checkpoint_dir: str | Path | None = None, resume: bool = False, on_progress: ProgressFn | None = None,
          monitor: Monitor | None = None) -> TrainOutcome:
    device = device or default_device()
    model.to(device).train()
    opt = make_optimizer(model, profile)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") and profile.dtype == "auto"
                else contextlib.nullcontext())
    torch.manual_seed(seed)
    start_step, loss_curve, train_s, cost_s, resumed_from = 0, [], 0.0, 0.0, None
    ckpt_path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir else None
    if ckpt_path and resume and ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        torch.set_rng_state(ckpt["rng_cpu"])
        if ckpt.get("rng_cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ckpt["rng_cuda"])
        start_step, loss_curve, train_s = ckpt["step"], ckpt["loss_curve"], ckpt["train_s"]
        cost_s = ckpt.get("cost_s", train_s)
        resumed_from = start_step
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()

    window_losses: list[float] = []
    for step in range(start_step, profile.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        lr = lr_at(step, profile.steps, profile.lr, profile.warmup_frac, profile.decay_frac, profile.min_lr_frac)
        for group in opt.param_groups:
            group["lr"] = lr
        x, y = (t.to(device, non_blocking=True) for t in batch_fn(step))
        with autocast:
            loss, aux = lm_loss(model, x, y)
        opt.zero_grad(set_to_none=True)
        (loss + aux).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), profile.grad_clip)
        opt.step()
        loss_value = loss.item()  # syncs, so the step time below is real
        step_s = time.perf_counter() - t0
        train_s += step_s
        # On a CPU the process's own CPU seconds, not wall time: a machine busy with other work
        # (another engineer, the researcher's checks) must not make a program look slow. On a GPU
        # the wall time (the CPU waits on the device).
        step_cost = step_s if device.startswith("cuda") else time.process_time() - c0
        cost_s += step_cost
        done = step + 1

        if monitor is not None:
            monitor.on_step(done, loss_value, step_cost)
            if monitor.wants_model_check(done):
                monitor.check_model(done, model, x)
        window_losses.append(loss_value)
        if done % profile.log_every == 0 or done == profile.steps:
            loss_curve.append([done, sum(window_losses) / len(window_losses)])
            window_losses = []
            if ckpt_path and (done % profile.checkpoint_every == 0 or done == profile.steps):
                ckpt_path.parent.mkdir(parents=True, exist_ok=True)
                save_checkpoint(ckpt_path, {
                    "model": model.state_dict(), "optimizer": opt.state_dict(), "step": done,
                    "rng_cpu": torch.get_rng_state(),
                    "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                    "loss_curve": loss_curve, "train_s": train_s, "cost_s": cost_s})
            if on_progress is not None:
                tokens = done * profile.tokens_per_step
                on_progress(step=done, total_steps=profile.steps, loss=loss_curve[-1][1],
                            tokens_per_s=tokens / train_s if train_s else 0.0, lr=lr, elapsed_s=train_s)

    tokens = profile.steps * profile.tokens_per_step
    final = loss_curve[-1][1] if loss_curve else math.nan
    return TrainOutcome(loss_curve=loss_curve, final_loss=final, steps=profile.steps, tokens=tokens,
                        train_s=train_s, step_cost_s=cost_s / profile.steps if profile.steps else 0.0,
                        tokens_per_s=tokens / train_s if train_s else 0.0,
                        peak_mem_mb=peak_memory_mb(device), resumed_from_step=resumed_from)
