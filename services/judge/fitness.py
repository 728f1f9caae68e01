"""The fitness formula: pure functions, no I/O.

ASI-Arch scores a program with three components, each in [0, 1]:

    loss_score      = σ(6 · clip((baseline_loss − loss) / (0.1 · baseline_loss), −1, 1))
    benchmark_score = σ(6 · clip((benchmark − baseline_benchmark) / (0.1 · baseline_benchmark), −1, 1))
    qualitative     = the LLM judge's weighted (performance, innovation, complexity), rescaled to [0, 1]

    fitness = (loss_score + benchmark_score + qualitative) / 3          # the paper's formula

Signs: a lower loss and a higher benchmark are better, so both deltas are positive when the
program beats the baseline; the baseline itself scores σ(0) = 0.5 on each. Clipping at ±1 means
"10 % better than the baseline" already saturates at σ(6) ≈ 0.9975: the scale separates programs
near the baseline and stops one outlier from dominating the mean. (The original code forgot to
divide by 3; we do.)

Generalised: `fitness = Σ wᵢ·cᵢ / Σ wᵢ` over the components that exist, with PAPER_WEIGHTS
(1, 1, 1). Offline, the qualitative component is not invented: it is missing, and the fitness is
the mean of the two quantitative components.

Invalid input is an error, never a score: a missing, NaN or infinite metric, or a baseline whose
value makes the relative delta undefined (≤ 0), raises `FitnessError`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

PAPER_WEIGHTS = {"loss": 1.0, "benchmark": 1.0, "qualitative": 1.0}
STEEPNESS = 6.0        # σ(6·x): the paper's slope
RELATIVE_SCALE = 0.1   # a delta of 10 % of the baseline value maps to x = 1

# the judge's three qualitative criteria (each scored 1..10 by the LLM) and their weights
QUALITATIVE_WEIGHTS = {"performance": 0.5, "innovation": 0.3, "complexity": 0.2}
QUALITATIVE_RANGE = (1.0, 10.0)


class FitnessError(ValueError):
    """The inputs do not define a fitness (missing/NaN metric, unusable baseline)."""


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def clip(x: float, lo: float = -1.0, hi: float = 1.0) -> float:
    return max(lo, min(hi, x))


def finite(name: str, value: float | None) -> float:
    if value is None:
        raise FitnessError(f"{name} is missing")
    value = float(value)
    if math.isnan(value) or math.isinf(value):
        raise FitnessError(f"{name} is {value}")
    return value


def relative_score(delta: float, baseline_value: float, what: str) -> float:
    """σ(6·clip(delta / (0.1·baseline_value))): 0.5 at the baseline, → 1 better, → 0 worse."""
    if baseline_value <= 0:
        raise FitnessError(f"baseline {what} is {baseline_value}: the relative delta is undefined")
    return sigmoid(STEEPNESS * clip(delta / (RELATIVE_SCALE * baseline_value)))


def loss_score(loss: float | None, baseline_loss: float | None) -> float:
    loss, base = finite("final_loss", loss), finite("baseline final_loss", baseline_loss)
    return relative_score(base - loss, base, "loss")          # lower loss is better


def benchmark_score(benchmark: float | None, baseline_benchmark: float | None) -> float:
    bench, base = finite("benchmark", benchmark), finite("baseline benchmark", baseline_benchmark)
    return relative_score(bench - base, base, "benchmark")    # higher benchmark is better


def qualitative_score(criteria: dict[str, float], weights: dict[str, float] = QUALITATIVE_WEIGHTS) -> float:
    """Weighted mean of the judge's 1..10 criteria, rescaled to [0, 1]."""
    lo, hi = QUALITATIVE_RANGE
    total = sum(weights.values())
    mean = sum(w * clip(finite(k, criteria.get(k)), lo, hi) for k, w in weights.items()) / total
    return (mean - lo) / (hi - lo)


def combine(components: dict[str, float | None], weights: dict[str, float] = PAPER_WEIGHTS) -> tuple[float, dict[str, float]]:
    """Weighted mean over the components that exist. Returns (fitness, the weights actually used)."""
    used = {k: float(w) for k, w in weights.items() if w and components.get(k) is not None}
    if not used:
        raise FitnessError(f"no component to combine (components {sorted(k for k, v in components.items() if v is not None)}, "
                           f"weights {weights})")
    total = sum(used.values())
    return sum(w * components[k] for k, w in used.items()) / total, used


@dataclass(frozen=True)
class SeedNoise:
    """The spread of a metric between seeds of the same program (from the zoo validity benchmark)."""
    loss: float | None = None
    benchmark: float | None = None

    @classmethod
    def from_dict(cls, d: dict[str, float] | None) -> "SeedNoise | None":
        if not d:
            return None
        return cls(loss=d.get("loss"), benchmark=d.get("benchmark"))


def significant(delta_loss: float, delta_benchmark: float, noise: SeedNoise | None) -> bool | None:
    """True when a delta exceeds the seed noise of its metric (|Δ| > noise); None when no noise is known.

    Either metric suffices: a program that is clearly better (or worse) on one is a real difference.
    """
    if noise is None or (noise.loss is None and noise.benchmark is None):
        return None
    checks = []
    if noise.loss is not None:
        checks.append(abs(delta_loss) > noise.loss)
    if noise.benchmark is not None:
        checks.append(abs(delta_benchmark) > noise.benchmark)
    return any(checks)
