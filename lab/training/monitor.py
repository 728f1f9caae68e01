"""Training monitor (ASI-Arch §3.3): stop a run that is too slow, diverges, or leaks the future.

Rules, each raising TrainingStopped(kind, evidence):
- too_slow: after `warmup_steps` steps, the median step time over the last `window` steps
  exceeds `slow_factor` x the reference step time at 2 x `window` steps in a row (a burst of
  other work on the machine, shorter than about two windows, passes). The reference is the baseline's
  step time measured on the same profile and machine; it is passed in, never hard-coded. No
  reference, no check. It is scaled by the machine's load now against the baseline's run: both
  runs time a fixed probe (a chain of small matrix products, `probe_cost`) every `probe_every`
  steps, and where the probe runs slower now (cores shared with other runs, a busy host) the
  reference grows by that ratio. It never shrinks: a quieter machine does not make the rule
  stricter than the baseline's own step.
- diverged: a non-finite training loss.
- suspected_leak, two checks on the model itself, every `leak_check_every` steps:
  1. future perturbation: change the tokens of the second half of a random sequence; a causal
     model's logits on the first half cannot change (beyond float noise).
  2. unpredictable tokens: on tokens drawn i.i.d. from the training batch's unigram
     distribution p, no causal predictor can reach a cross-entropy below the entropy H(p) in
     expectation (the same reason a causal model cannot predict the first occurrence of a
     key-value pair in MQAR). A loss below half of H(p) is implausibly low at any step of any
     training: only a model that sees the token it predicts gets there. (Uniform tokens would
     not do: a model never trained on some tokens cannot copy them even when it leaks.)
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


class TrainingStopped(Exception):
    KINDS = ("too_slow", "diverged", "suspected_leak")

    def __init__(self, kind: str, evidence: dict):
        assert kind in self.KINDS, kind
        super().__init__(f"{kind}: {evidence}")
        self.kind, self.evidence = kind, evidence


@dataclass
class Monitor:
    reference_step_s: float | None = None
    slow_factor: float = 2.5
    warmup_steps: int = 20
    window: int = 20
    leak_check_every: int = 100
    perturbation_tol: float = 1e-3  # relative to the logits' scale
    # the same rule for a model checked under bf16 autocast (a mixed-dtype program, train.py's autocast policy): bf16
    # rounds a logit to 8 significant bits, so one flipped rounding in a block moves a logit by up to 2^-7 of its
    # size. Measured on the published programs that count their forwards (`self._step += 1`, an annealing
    # schedule): the second forward's tiny change showed as 1 bf16 ulp, 0.2-0.4 % of the scale, against 1e-3.
    # 2^-5 is 4 such ulps; the unpredictable-tokens rule below does not depend on precision.
    perturbation_tol_bf16: float = 2 ** -5
    unpredictable_ce_frac: float = 0.5  # of the unigram entropy
    # the baseline run's median probe cost (its TrainingCompleted.probe_s); None: the load is taken as equal
    reference_probe_s: float | None = None
    probe_every: int = 10  # 0: no probe (a GPU run: its step cost is wall time, not this process's CPU)
    step_times: list[float] = field(default_factory=list)
    probe_times: list[float] = field(default_factory=list)
    steps_seen: int = 0
    steps_over: int = 0  # steps in a row whose window's median was over the limit

    def on_step(self, step: int, loss: float, step_s: float) -> None:
        """Called after every optimizer step (step counts completed steps, from 1)."""
        if not math.isfinite(loss):
            raise TrainingStopped("diverged", {"step": step, "loss": str(loss)})
        self.steps_seen += 1
        if self.probe_every and self.steps_seen % self.probe_every == 0:
            self.probe_times.append(probe_cost())
        if self.steps_seen <= self.warmup_steps or self.reference_step_s is None:
            return
        self.step_times.append(step_s)
        recent = self.step_times[-self.window:]
        if len(recent) < self.window:
            return
        median, load = statistics.median(recent), self.machine_load()
        if median <= self.slow_factor * self.reference_step_s * load:
            self.steps_over = 0
            return
        self.steps_over += 1
        if self.steps_over >= 2 * self.window:
            raise TrainingStopped("too_slow", {
                "step": step, "median_step_s": round(median, 5), "reference_step_s": self.reference_step_s,
                "ratio": round(median / self.reference_step_s, 2), "machine_load": round(load, 2),
                "limit_ratio": round(self.slow_factor * load, 2)})

    @property
    def probe_s(self) -> float | None:
        """The median probe cost of this run so far (recorded with a baseline's result as the load reference)."""
        return statistics.median(self.probe_times) if self.probe_times else None

    def machine_load(self) -> float:
        """How much slower the probe runs now (the last 5 probes) than in the baseline's run, at least 1."""
        if not self.reference_probe_s or not self.probe_times:
            return 1.0
        return max(1.0, statistics.median(self.probe_times[-5:]) / self.reference_probe_s)

    def wants_model_check(self, step: int) -> bool:
        return step == 1 or step % self.leak_check_every == 0

    @torch.no_grad()
    def check_model(self, step: int, model: torch.nn.Module, batch_inputs: torch.Tensor, bf16: bool = False) -> None:
        """Leak checks on probe sequences drawn i.i.d. from the tokens of `batch_inputs` [B, T], in eval mode
        and in training mode (a layer may leak only while training, e.g. through a mode-dependent path);
        the two forwards of a comparison share their RNG state, so dropout masks agree. `bf16`: the model runs
        under bf16 autocast (perturbation_tol_bf16 applies)."""
        was_training = model.training
        try:
            for training in (False, True):
                model.train(training)
                self._check(step, model, batch_inputs, "train" if training else "eval", bf16)
        finally:
            model.train(was_training)

    def _check(self, step: int, model: torch.nn.Module, batch_inputs: torch.Tensor, mode: str,
               bf16: bool = False) -> None:
        gen = torch.Generator().manual_seed(step)
        pool = batch_inputs.detach().flatten().cpu()
        seq_len = batch_inputs.shape[1]
        draw = lambda *shape: pool[torch.randint(len(pool), shape, generator=gen)].to(batch_inputs.device)  # noqa: E731

        def forward(x):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(step)
                return model(x)[0].float()

        x = draw(4, seq_len)
        logits = forward(x)
        # 1. future perturbation
        half = seq_len // 2
        x2 = torch.cat([x[:, :half], draw(4, seq_len - half)], 1)
        diff = (forward(x2)[:, :half] - logits[:, :half]).abs().max().item()
        scale = 1.0 + logits.abs().max().item()
        tol = (self.perturbation_tol_bf16 if bf16 else self.perturbation_tol) * scale
        if not diff <= tol:  # also catches NaN
            raise TrainingStopped("suspected_leak", {
                "step": step, "rule": "future_perturbation", "mode": mode,
                "max_logit_change_before_perturbation": diff, "tolerance": tol,
                **({"autocast": "bf16"} if bf16 else {})})
        # 2. unpredictable tokens
        counts = torch.bincount(pool).float()
        probs = counts[counts > 0] / counts.sum()
        entropy = -(probs * probs.log()).sum().item()
        ce = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1)).item()
        floor = self.unpredictable_ce_frac * entropy
        if ce < floor:
            raise TrainingStopped("suspected_leak", {
                "step": step, "rule": "unpredictable_tokens_ce", "mode": mode, "ce_nats": round(ce, 4),
                "unigram_entropy_nats": round(entropy, 4), "floor_nats": round(floor, 4)})


_PROBE_GEN = torch.Generator().manual_seed(0)  # its own generator: the probe never moves the training's RNG
_PROBE_X, _PROBE_W = torch.randn(32, 64, generator=_PROBE_GEN), torch.randn(64, 64, generator=_PROBE_GEN) / 8


@torch.no_grad()
def probe_cost() -> float:
    """CPU seconds of this thread for a fixed chain of small matrix products (about 0.1 ms alone). Products and
    multiplications this small run on the calling thread whatever torch's thread count (measured: the same cost
    at 1 and 2 threads; tanh and other unary ops were not), so the probe reads the load on the core, not the
    run's own threads. The same clock idea as a CPU step's cost: CPU time, so waiting for a core is not counted,
    only running slower on one."""
    start = time.thread_time()
    x = _PROBE_X
    for _ in range(32):
        x = (x @ _PROBE_W) * 0.5
    return time.thread_time() - start
