"""The training loop: AdamW, warmup-stable-decay, grad clipping, checkpoints with exact resume.

Exact resume holds because every batch is a function of (seed, step) (see data.py), the
checkpoint holds model, optimizer and RNG state, and checkpoints fall on loss-curve
boundaries (no half-averaged window to carry over).
"""
from __future__ import annotations

import contextlib
import copy
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
    autocast: str = "fp32"  # the mode the run trained under, "fp32" or "bf16" (Profile.autocast)


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


# ---------------- the autocast policy (Profile.autocast) ----------------
# The published ASI-Arch programs were trained on GPUs under bf16 autocast, and some of them rely on it: they cast
# an intermediate to bfloat16 (`att_inv = att_inv.to(torch.bfloat16)`, then `att_inv @ v` with a float32 v), which
# only autocast reconciles. "auto" trains under bf16 autocast on CUDA, as the paper did. On a CPU it trains in fp32
# (every CPU figure of the zoo was measured so, and bf16 would move them all); a program whose first step fails in
# fp32 with a dtype error is put back as it was built and trains from step 0 under bf16 autocast. The trusted
# scorer's forward child then runs the trained model under the same mode (the result's `autocast`).
AUTOCAST_MODES = ("fp32", "bf16")  # what a run trains (and is scored) under; "auto" resolves to one of them
AUTOCAST_METRIC = "train/autocast_bf16"  # 1.0: the run trained (and was scored) under bf16 autocast; 0.0: fp32
_DTYPE_ERROR_WORDS = ("bfloat16", "scalar type", "same dtype", "dtype mismatch", "found dtype", "half")


def autocast_context(mode: str, device: str):
    """The context a forward of a run in `mode` ("fp32" or "bf16") runs in on `device`."""
    if mode == "bf16":
        return torch.autocast("cuda" if device.startswith("cuda") else "cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class AutocastModel(torch.nn.Module):
    """`model` whose forward runs under `mode`'s autocast and returns float32 logits: what evaluation, the leak
    checks and the scorer's forward child call, so they see the model as it was trained."""

    def __init__(self, model: torch.nn.Module, mode: str, device: str):
        super().__init__()
        self.inner, self.mode, self.device = model, mode, device

    def forward(self, input_ids):
        with autocast_context(self.mode, self.device):
            logits, aux = self.inner(input_ids)
        return logits.float(), aux


def is_dtype_error(err: BaseException) -> bool:
    """A dtype mix (bf16 meets fp32 in a matmul, an index_put, a conv ...), as PyTorch words it."""
    text = str(err).lower()
    return isinstance(err, (RuntimeError, TypeError)) and any(w in text for w in _DTYPE_ERROR_WORDS)


def fixed_autocast(profile: Profile, device: str) -> str | None:
    """The mode the profile's policy fixes on `device`, or None where the program's first step decides ("auto" on
    a CPU: fp32, or bf16 after a dtype error in fp32)."""
    if profile.autocast in AUTOCAST_MODES:
        return profile.autocast
    return "bf16" if device.startswith("cuda") else None


def leak_check(monitor: Monitor, step: int, model: CausalLM, x: torch.Tensor, mode: str, device: str) -> None:
    """The monitor's leak checks at fp32's strict tolerance wherever the program runs in fp32 (every fp32 run; on
    CUDA also a bf16 run whose program allows it, as before the policy), else under its autocast at bf16's."""
    if mode == "fp32":
        return monitor.check_model(step, model, x)
    if device.startswith("cuda"):
        try:
            return monitor.check_model(step, model, x)
        except RuntimeError as e:
            if not is_dtype_error(e):
                raise
    monitor.check_model(step, AutocastModel(model, mode, device), x, bf16=True)


def make_optimizer(model: torch.nn.Module, profile: Profile, foreach: bool = False) -> torch.optim.AdamW:
    """Weight decay on matrices only (not on norms, biases, gates' scalars). `foreach`: multi-tensor kernels instead
    of AdamW's Python loop over parameters; not the default: it did not measure faster per candidate (bench/train.py,
    docs/engineer.md, issue 23)."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": profile.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=profile.lr, betas=(0.9, 0.95), foreach=foreach)


def save_checkpoint(path: Path, state: dict) -> None:
    """Atomic: a crash mid-write leaves the previous checkpoint intact."""
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def peak_memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB; the process peak RSS


def _grads(model: CausalLM, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, mode: str,
           device: str) -> torch.Tensor:
    """Forward (under `mode`) and backward of one batch; returns the loss."""
    with autocast_context(mode, device):
        loss, aux = lm_loss(model, x, y)
    opt.zero_grad(set_to_none=True)
    (loss + aux).backward()
    return loss


def train(model: CausalLM, profile: Profile, batch_fn: BatchFn, *, seed: int, device: str | None = None,
          checkpoint_dir: str | Path | None = None, resume: bool = False, on_progress: ProgressFn | None = None,
          monitor: Monitor | None = None, threads: Callable[[], int] | None = None, rungs: tuple[int, ...] = (),
          on_rung: Callable[[int, str], None] | None = None) -> TrainOutcome:
    """The autocast mode follows `profile.autocast` (fixed_autocast; a resumed run keeps its checkpoint's). Where
    the first step decides (auto on a CPU), a copy of the model as built is kept until step 0 has run in fp32; a
    dtype error there puts the copy back and step 0 runs again under bf16 autocast. Any other error, or a second
    failure under bf16, is raised as it was (the fp32 one).

    `threads`: asked before every step how many CPU threads the run may use now (the engineer's share of
    the cores, services/engineer/concurrency.py): a lone run trains on the free cores and gives them back
    when the next run starts.

    `on_rung(step, autocast)` is called after each step in `rungs` (early stopping, issue 23): the runner saves
    the weights there for the trusted scorer, and training goes on while they are judged."""
    device = device or default_device()
    model.to(device).train()
    opt = make_optimizer(model, profile)
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
    autocast = fixed_autocast(profile, device)
    if resumed_from is not None:  # the mode it started in (a checkpoint from before the policy: fp32 on a CPU)
        autocast = ckpt.get("autocast") or autocast or "fp32"
    initial = None
    if autocast is None and start_step == 0:
        try:
            initial = copy.deepcopy(model)
        except Exception:  # noqa: BLE001 - a model that cannot be copied trains in fp32, as before the policy
            initial = None
        autocast = "fp32"
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()

    window_losses: list[float] = []
    for step in range(start_step, profile.steps):
        n_threads = torch.get_num_threads()
        if threads is not None and (wanted := threads()) != n_threads:
            torch.set_num_threads(wanted)
            n_threads = wanted
        t0, c0 = time.perf_counter(), time.process_time()
        lr = lr_at(step, profile.steps, profile.lr, profile.warmup_frac, profile.decay_frac, profile.min_lr_frac)
        for group in opt.param_groups:
            group["lr"] = lr
        x, y = (t.to(device, non_blocking=True) for t in batch_fn(step))
        try:
            loss = _grads(model, opt, x, y, autocast, device)
        except Exception as err:
            if initial is None or not is_dtype_error(err):
                raise
            model.__dict__.update(initial.__dict__)  # the model as built (parameters, buffers, counters ...)
            initial, autocast = None, "bf16"
            opt = make_optimizer(model, profile)
            for group in opt.param_groups:
                group["lr"] = lr
            torch.manual_seed(seed)
            try:
                loss = _grads(model, opt, x, y, autocast, device)
            except Exception:  # noqa: BLE001 - bf16 does not help either: the program's own (fp32) error stands
                raise err from None
        initial = None
        torch.nn.utils.clip_grad_norm_(model.parameters(), profile.grad_clip)
        opt.step()
        loss_value = loss.item()  # syncs, so the step time below is real
        step_s = time.perf_counter() - t0
        train_s += step_s
        # On a CPU the process's own CPU seconds, not wall time: a machine busy with other work
        # (another engineer, the researcher's checks) must not make a program look slow. On a GPU
        # the wall time (the CPU waits on the device). Not divided by the threads: a step's work is the
        # same on one or two, and two burn only a little more (about 1.2x on cpu-tiny, 2 vCPUs: by the
        # calibration two threads train 1.68x as fast as one). Divided, a baseline that trained alone on
        # two threads looked 1.68x faster than a candidate beside another run on one thread, and a Gated
        # DeltaNet child was stopped as too_slow at 2.84x.
        step_cost = step_s if device.startswith("cuda") else time.process_time() - c0
        cost_s += step_cost
        done = step + 1

        if monitor is not None:
            monitor.on_step(done, loss_value, step_cost)
            if monitor.wants_model_check(done):
                leak_check(monitor, done, model, x, autocast, device)
        window_losses.append(loss_value)
        if on_rung is not None and done in rungs:
            on_rung(done, autocast)
        if done % profile.log_every == 0 or done == profile.steps:
            loss_curve.append([done, sum(window_losses) / len(window_losses)])
            window_losses = []
            if ckpt_path and (done % profile.checkpoint_every == 0 or done == profile.steps):
                ckpt_path.parent.mkdir(parents=True, exist_ok=True)
                save_checkpoint(ckpt_path, {
                    "model": model.state_dict(), "optimizer": opt.state_dict(), "step": done,
                    "rng_cpu": torch.get_rng_state(),
                    "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                    "loss_curve": loss_curve, "train_s": train_s, "cost_s": cost_s, "autocast": autocast})
            if on_progress is not None:
                tokens = done * profile.tokens_per_step
                on_progress(step=done, total_steps=profile.steps, loss=loss_curve[-1][1],
                            tokens_per_s=tokens / train_s if train_s else 0.0, lr=lr, elapsed_s=train_s)

    tokens = profile.steps * profile.tokens_per_step
    final = loss_curve[-1][1] if loss_curve else math.nan
    return TrainOutcome(loss_curve=loss_curve, final_loss=final, steps=profile.steps, tokens=tokens,
                        train_s=train_s, step_cost_s=cost_s / profile.steps if profile.steps else 0.0,
                        tokens_per_s=tokens / train_s if train_s else 0.0,
                        peak_mem_mb=peak_memory_mb(device), resumed_from_step=resumed_from, autocast=autocast)
