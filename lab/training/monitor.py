"""Training monitor (ASI-Arch §3.3): stop a run that is too slow, diverges, or leaks the future.

Rules, each raising TrainingStopped(kind, evidence):
- too_slow: after `warmup_steps` steps, the median step time over the last `window` steps
  exceeds `slow_factor` x the reference step time. The reference is the baseline's step time
  measured on the same profile and machine; it is passed in, never hard-coded. No reference,
  no check.
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
    step_times: list[float] = field(default_factory=list)
    steps_seen: int = 0

    def on_step(self, step: int, loss: float, step_s: float) -> None:
        """Called after every optimizer step (step counts completed steps, from 1)."""
        if not math.isfinite(loss):
            raise TrainingStopped("diverged", {"step": step, "loss": str(loss)})
        self.steps_seen += 1
        if self.steps_seen <= self.warmup_steps or self.reference_step_s is None:
            return
        self.step_times.append(step_s)
        recent = self.step_times[-self.window:]
        if len(recent) == self.window:
            median = statistics.median(recent)
            if median > self.slow_factor * self.reference_step_s:
                raise TrainingStopped("too_slow", {
                    "step": step, "median_step_s": round(median, 5), "reference_step_s": self.reference_step_s,
                    "ratio": round(median / self.reference_step_s, 2), "limit_ratio": self.slow_factor})

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
