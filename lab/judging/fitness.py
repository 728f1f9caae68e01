"""The fitness formula: pure functions, no I/O.

ASI-Arch scores a program with three components, each in [0, 1]:

    loss_score      = σ(6 · clip((baseline_loss − loss) / scale_loss, −1, 1))
    benchmark_score = σ(6 · clip((benchmark − baseline_benchmark) / scale_benchmark, −1, 1))
    qualitative     = the LLM judge's weighted (performance, innovation, complexity), rescaled to [0, 1]

    fitness = (loss_score + benchmark_score + qualitative) / 3          # the paper's formula

The paper's scales are 10 % of the baseline's value. Here, when the profile's seed noise is known
(measured on the baseline over seeds, stored with the campaign; see `resolve_noise`), each scale is
NOISE_MULTIPLE (10) × that metric's seed noise: a difference the same program shows between seeds moves a
component only a little (0.5 → 0.65), a real improvement (several noises) moves it far. Without a noise
the paper's 10 % scale is used.

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
RELATIVE_SCALE = 0.1   # a delta of 10 % of the baseline value maps to x = 1 (when no seed noise is known)
NOISE_MULTIPLE = 10.0  # with a measured seed noise: a delta of 10 seed noises maps to x = 1

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


def relative_score(delta: float, baseline_value: float, what: str, noise: float | None = None) -> float:
    """σ(6·clip(delta / scale)): 0.5 at the baseline, → 1 better, → 0 worse.

    scale = NOISE_MULTIPLE · noise when the metric's seed noise is known (a delta of one seed noise moves
    the score from 0.5 to σ(0.6) ≈ 0.65, three to ≈ 0.86, ten saturate), else the paper's 0.1 · baseline."""
    if noise is not None and noise > 0:
        return sigmoid(STEEPNESS * clip(delta / (NOISE_MULTIPLE * noise)))
    if baseline_value <= 0:
        raise FitnessError(f"baseline {what} is {baseline_value}: the relative delta is undefined")
    return sigmoid(STEEPNESS * clip(delta / (RELATIVE_SCALE * baseline_value)))


def loss_score(loss: float | None, baseline_loss: float | None, noise: float | None = None) -> float:
    loss, base = finite("final_loss", loss), finite("baseline final_loss", baseline_loss)
    return relative_score(base - loss, base, "loss", noise)          # lower loss is better


def benchmark_score(benchmark: float | None, baseline_benchmark: float | None, noise: float | None = None) -> float:
    bench, base = finite("benchmark", benchmark), finite("baseline benchmark", baseline_benchmark)
    return relative_score(bench - base, base, "benchmark", noise)    # higher benchmark is better


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
    """The spread of a metric between seeds of the same program (from the zoo validity benchmark), and how many
    seeds it was measured on (None: significance.NOISE_SEEDS); the replication test's degrees of freedom."""
    loss: float | None = None
    benchmark: float | None = None
    seeds: int | None = None

    @classmethod
    def from_dict(cls, d: dict[str, float] | None) -> "SeedNoise | None":
        if not d:
            return None
        seeds = d.get("seeds")
        return cls(loss=d.get("loss"), benchmark=d.get("benchmark"), seeds=int(seeds) if seeds else None)


def resolve_noise(profile: str, *sources: dict | None) -> SeedNoise | None:
    """The seed noise that scores a result of `profile`: the first source that has one. Each source is
    either {"loss": .., "benchmark": ..} (a campaign's stored noise) or {profile: {...}} (the judge's setting);
    the last resort is the profile's own measured default (profiles.Profile.seed_noise)."""
    for src in sources:
        if not src:
            continue
        entry = src.get(profile) if profile in src else src
        noise = SeedNoise.from_dict(entry if isinstance(entry, dict) and ("loss" in entry or "benchmark" in entry)
                                    else None)
        if noise is not None:
            return noise
    try:
        from lab.training.profiles import get_profile
        return SeedNoise.from_dict(dict(get_profile(profile.split("+")[0]).seed_noise))
    except KeyError:
        return None


def campaign_seed_noise(profile: str, setting: dict | None = None) -> dict[str, float]:
    """What a new campaign stores (CampaignStarted.seed_noise): the operator's setting for the profile, else the
    profile's measured default; {} when neither is known."""
    noise = resolve_noise(profile, setting)
    return {k: v for k, v in (("loss", noise.loss), ("benchmark", noise.benchmark), ("seeds", noise.seeds))
            if v is not None} if noise else {}


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
