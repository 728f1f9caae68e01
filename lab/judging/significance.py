"""Significance with each side's own spread: Welch's t-test on seeds. Pure functions, no I/O.

The judge's first test (`fitness.significant`) compares one run of a candidate with the baseline's seed noise:
a candidate from a noisier family crosses that line by luck. Once a candidate has been trained on several
seeds (replication, services/archive/replication.py), its own spread is measured, and the comparison is
Welch's t-test between

- the candidate: its runs on the held-out seeds (the run it was selected on is left out: it was chosen for
  being good, so it would bias the test towards "confirmed"); their mean and sample variance;
- the baseline: its one run in the campaign, with the variance of one run taken from the profile's measured
  seed noise. The noise is the mean absolute difference between seeds (lab/tools/validity.py) measured on
  the profile's `seed_noise["seeds"]` seeds (NOISE_SEEDS when it does not say: cpu-tiny's is measured on 6);
  for a normal metric E|X1 - X2| = 2σ/√π, so σ = noise·√π/2, with seeds - 1 degrees of freedom.

A side with one run and no own spread (one replicate) borrows the profile's noise, like the baseline.

The statistic is t = (mean_a - mean_b) / sqrt(var_a/n_a + var_b/n_b), with the Welch–Satterthwaite degrees of
freedom from each variance's own degrees of freedom. Two metrics are tested (loss, lower is better; benchmark,
higher is better), so each uses ALPHA / 2 (Bonferroni): a difference is significant when its two-sided p-value is
below ALPHA / 2 on either metric. The verdict "confirmed" needs a metric significantly better and none
significantly worse. Measured on simulated DeltaNet-vs-itself trials (tests/judge/test_significance.py):
docs/archive.md, "Replication".
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

ALPHA = 0.05          # family-wise, over the two metrics
NOISE_SEEDS = 3       # a profile's seed noise measured on DeltaNet seeds 0, 1, 2 unless it says (docs/zoo.md)
LOWER_IS_BETTER = {"final_loss": True, "benchmark": False}


@dataclass(frozen=True)
class Side:
    """One side of the comparison: the mean of `n` runs, the variance of one run, and its degrees of freedom."""
    mean: float
    var: float
    n: int
    df: float


def sigma_from_noise(noise: float) -> float:
    """The standard deviation of one run from a mean absolute difference between seeds (normal metric)."""
    return noise * math.sqrt(math.pi) / 2


def from_noise(value: float, noise: float, noise_seeds: int = NOISE_SEEDS) -> Side:
    """One run whose spread is the profile's measured seed noise."""
    return Side(value, sigma_from_noise(noise) ** 2, 1, noise_seeds - 1)


def from_runs(values: list[float], noise: float | None = None, noise_seeds: int = NOISE_SEEDS) -> Side:
    """Several runs: their own mean and sample variance. One run borrows the noise (None without one)."""
    if len(values) >= 2:
        return Side(statistics.fmean(values), statistics.variance(values), len(values), len(values) - 1)
    if len(values) == 1 and noise:
        return from_noise(values[0], noise, noise_seeds)
    raise ValueError("one run and no seed noise: no spread to test against")


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-12:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with `df` degrees of freedom."""
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return tail if t > 0 else 1.0 - tail


@dataclass(frozen=True)
class Welch:
    diff: float        # mean_a - mean_b
    t: float
    df: float
    p: float           # two-sided


def welch(a: Side, b: Side) -> Welch:
    """Welch's t-test of a against b."""
    diff = a.mean - b.mean
    terms = [(s.var / s.n, s.df) for s in (a, b) if s.var > 0]
    se2 = sum(v for v, _ in terms)
    if se2 == 0:   # no spread at all: any difference is certain, none is nothing
        return Welch(diff, math.copysign(math.inf, diff) if diff else 0.0, math.inf, 0.0 if diff else 1.0)
    df = se2 ** 2 / sum(v * v / d for v, d in terms)
    t = diff / math.sqrt(se2)
    return Welch(diff, t, df, min(1.0, 2.0 * t_sf(abs(t), df)))


@dataclass(frozen=True)
class Verdict:
    confirmed: bool
    significant: bool            # a difference on either metric, better or worse
    tests: dict[str, dict]       # metric -> {"improvement", "t", "df", "p", "better", "worse"}
    reason: str

    @property
    def label(self) -> str:
        return "confirmed" if self.confirmed else "not replicated"


def compare(candidate: dict[str, list[float]], baseline: dict[str, float], noise: dict[str, float | None],
            alpha: float = ALPHA, noise_seeds: int | None = None) -> Verdict:
    """The candidate's runs (metric -> values on its held-out seeds) against the baseline's one run per metric,
    each metric with its seed noise, measured on `noise_seeds` seeds (None: NOISE_SEEDS). Metrics without a noise,
    a baseline value or candidate runs are skipped."""
    seeds = noise_seeds or NOISE_SEEDS
    tests: dict[str, dict] = {}
    level = alpha / 2   # Bonferroni over the two metrics
    for metric, lower in LOWER_IS_BETTER.items():
        values, base, n = candidate.get(metric) or [], baseline.get(metric), noise.get(metric)
        if not values or base is None or not n:
            continue
        w = welch(from_runs(values, n, seeds), from_noise(base, n, seeds))
        improvement = -w.diff if lower else w.diff
        tests[metric] = {"improvement": improvement, "t": w.t, "df": w.df, "p": w.p, "runs": len(values),
                         "better": w.p < level and improvement > 0, "worse": w.p < level and improvement < 0}
    better = [m for m, r in tests.items() if r["better"]]
    worse = [m for m, r in tests.items() if r["worse"]]
    if not tests:
        return Verdict(False, False, tests, "nothing to test: no replicate result, or no seed noise")
    text = "; ".join(f"{m} {'+' if r['improvement'] >= 0 else ''}{r['improvement']:.4g} over {r['runs']} held-out "
                     f"seed(s), p={r['p']:.3g}" for m, r in tests.items())
    confirmed = bool(better) and not worse
    why = (f"significantly better on {', '.join(better)}" if confirmed
           else f"significantly worse on {', '.join(worse)}" if worse
           else "no metric significantly better")
    return Verdict(confirmed, bool(better or worse), tests,
                   f"{why} (Welch, each metric at p < {level:g}): {text}")


# ---------------- comparing policies over campaign seeds (bench/discovery.py) ----------------
BOOTSTRAP_RESAMPLES = 10_000


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int

    def text(self, digits: int = 3) -> str:
        return f"{self.mean:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def bootstrap_mean(values: list[float], level: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES,
                   seed: int = 0) -> Interval:
    """The mean of `values` with a percentile bootstrap interval: the values (one per campaign seed, or one paired
    difference per seed) resampled with replacement `resamples` times; the interval holds the middle `level` of the
    resampled means. Deterministic in `seed`. With few values the interval is narrower than the truth (the
    percentile bootstrap's known bias): read an interval over 6 seeds as a lower bound on the uncertainty."""
    import random

    if not values:
        raise ValueError("no values to bootstrap")
    rng, n = random.Random(seed), len(values)
    means = sorted(statistics.fmean(rng.choices(values, k=n)) for _ in range(resamples))
    tail = (1.0 - level) / 2
    lo, hi = means[int(tail * resamples)], means[min(resamples - 1, int((1.0 - tail) * resamples))]
    return Interval(statistics.fmean(values), lo, hi, n)
