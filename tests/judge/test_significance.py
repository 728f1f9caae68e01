"""Welch's test with each side's own spread (lab/judging/significance.py): the t distribution against scipy, and
the false-positive rate of the replication verdict on DeltaNet against itself, simulated."""
from __future__ import annotations

import math
import random

import pytest

from lab.judging import significance as S

# cpu-tiny's DeltaNet (lab/training/profiles.py): final loss and benchmark, and their seed noise
LOSS, BENCH = 1.056, 0.805
NOISE = {"final_loss": 0.028, "benchmark": 0.010}


@pytest.mark.parametrize("t,df", [(0.3, 1), (1.7, 2), (2.5, 2.7), (-1.2, 5), (4.0, 30), (0.0, 3)])
def test_t_tail_matches_scipy(t, df):
    stats = pytest.importorskip("scipy.stats")
    assert S.t_sf(t, df) == pytest.approx(float(stats.t.sf(t, df)), rel=1e-9, abs=1e-12)


def test_welch_matches_scipy_on_two_samples():
    stats = pytest.importorskip("scipy.stats")
    a, b = [1.0, 1.3, 0.9, 1.2], [0.7, 0.8, 0.75]
    w = S.welch(S.from_runs(a), S.from_runs(b))
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert w.t == pytest.approx(float(ref.statistic)) and w.p == pytest.approx(float(ref.pvalue))


def test_sigma_from_the_mean_absolute_difference():
    rng = random.Random(1)
    diffs = [abs(rng.gauss(0, 2.0) - rng.gauss(0, 2.0)) for _ in range(200_000)]
    assert S.sigma_from_noise(sum(diffs) / len(diffs)) == pytest.approx(2.0, rel=0.01)


def _mean_abs_difference(values):
    pairs = [(a, b) for i, a in enumerate(values) for b in values[i + 1:]]
    return sum(abs(a - b) for a, b in pairs) / len(pairs)


def _trial(rng, shift_noises: float = 0.0, replicates: int = 2, seeds: int = S.NOISE_SEEDS) -> S.Verdict:
    """One campaign: the noise measured on `seeds` seeds of DeltaNet, its one baseline run, and a candidate
    (DeltaNet itself, or better by `shift_noises` noises on the loss) on `replicates` held-out seeds."""
    sd = {m: S.sigma_from_noise(n) for m, n in NOISE.items()}
    draw = {"final_loss": lambda: rng.gauss(LOSS, sd["final_loss"]), "benchmark": lambda: rng.gauss(BENCH, sd["benchmark"])}
    noise = {m: _mean_abs_difference([draw[m]() for _ in range(seeds)]) for m in NOISE}
    baseline = {m: draw[m]() for m in NOISE}
    shift = {"final_loss": -shift_noises * NOISE["final_loss"], "benchmark": 0.0}
    candidate = {m: [draw[m]() + shift[m] for _ in range(replicates)] for m in NOISE}
    return S.compare(candidate, baseline, noise, noise_seeds=seeds)


def test_deltanet_against_itself_is_not_significant_in_95_percent_of_trials():
    rng = random.Random(24)
    trials = [_trial(rng) for _ in range(4000)]
    confirmed = sum(v.confirmed for v in trials) / len(trials)
    significant = sum(v.significant for v in trials) / len(trials)
    assert 1 - confirmed >= 0.95, f"a copy of DeltaNet was confirmed better in {confirmed:.1%} of trials"
    assert 1 - significant >= 0.95, f"a copy of DeltaNet differed significantly in {significant:.1%} of trials"


def test_a_noise_measured_on_6_seeds_keeps_the_false_positives_and_gains_power():
    """cpu-tiny's noise is measured on 6 DeltaNet seeds (5 degrees of freedom, not 2): a copy of DeltaNet is still
    'not confirmed' in at least 95 % of trials, and a real improvement of 5 loss noises is confirmed far more often
    with K = 2 (measured: 40 % on 3 seeds, 75 % on 6, 2,000 trials each)."""
    rng = random.Random(26)
    copies = [_trial(rng, seeds=6) for _ in range(4000)]
    assert sum(not v.confirmed for v in copies) / len(copies) >= 0.95
    assert sum(not v.significant for v in copies) / len(copies) >= 0.95
    on3 = sum(_trial(rng, shift_noises=5.0, seeds=3).confirmed for _ in range(1000)) / 1000
    on6 = sum(_trial(rng, shift_noises=5.0, seeds=6).confirmed for _ in range(1000)) / 1000
    assert on6 > 0.65 and on6 > on3 + 0.2, (on3, on6)


def test_a_real_improvement_is_confirmed_in_most_trials():
    rng = random.Random(7)
    trials = [_trial(rng, shift_noises=6.0, replicates=3) for _ in range(1000)]
    assert sum(v.confirmed for v in trials) / len(trials) > 0.6


def test_a_lucky_first_run_of_a_noisy_family_is_not_confirmed():
    # a family three times noisier than DeltaNet: its replicates spread widely, so a small lead is not enough
    v = S.compare({"final_loss": [1.02, 1.09], "benchmark": [0.83, 0.78]}, {"final_loss": LOSS, "benchmark": BENCH},
                  NOISE)
    assert not v.confirmed and v.label == "not replicated" and "no metric significantly better" in v.reason


def test_a_clear_and_steady_improvement_is_confirmed():
    v = S.compare({"final_loss": [0.90, 0.905], "benchmark": [0.86, 0.862]}, {"final_loss": LOSS, "benchmark": BENCH},
                  NOISE)
    assert v.confirmed and v.label == "confirmed" and v.tests["final_loss"]["better"]


def test_better_on_one_metric_but_worse_on_the_other_is_not_confirmed():
    v = S.compare({"final_loss": [0.90, 0.905], "benchmark": [0.70, 0.702]}, {"final_loss": LOSS, "benchmark": BENCH},
                  NOISE)
    assert v.significant and not v.confirmed and "worse on benchmark" in v.reason


def test_one_replicate_borrows_the_noise_and_nothing_to_test_is_not_confirmed():
    v = S.compare({"final_loss": [1.0]}, {"final_loss": LOSS}, NOISE)
    assert v.tests["final_loss"]["df"] > 0 and math.isfinite(v.tests["final_loss"]["p"])
    assert S.compare({}, {"final_loss": LOSS}, NOISE).reason.startswith("nothing to test")


def test_the_bootstrap_interval_holds_the_mean_and_narrows_with_more_seeds():
    from lab.judging.significance import bootstrap_mean
    import random

    import pytest

    rng = random.Random(1)
    few = [rng.gauss(0.6, 0.1) for _ in range(6)]
    many = [rng.gauss(0.6, 0.1) for _ in range(60)]
    a, b = bootstrap_mean(few), bootstrap_mean(many)
    assert a.low < a.mean < a.high and b.low < b.mean < b.high
    assert (b.high - b.low) < (a.high - a.low) / 2     # ~1/sqrt(10) as wide with 10x the seeds
    assert bootstrap_mean(few) == a                    # deterministic
    same = bootstrap_mean([0.7, 0.7, 0.7])
    assert same.low == pytest.approx(0.7) and same.high == pytest.approx(0.7)


def test_the_bootstrap_interval_covers_the_true_mean_about_95_percent_of_the_time():
    """Coverage measured, not assumed: 200 samples of 20 from a known distribution."""
    from lab.judging.significance import bootstrap_mean
    import random

    rng = random.Random(7)
    covered = sum(iv.low <= 0.5 <= iv.high for iv in
                  (bootstrap_mean([rng.gauss(0.5, 0.2) for _ in range(20)], resamples=2000) for _ in range(200)))
    assert 0.88 <= covered / 200 <= 0.99


def test_the_bootstrap_refuses_no_values():
    from lab.judging.significance import bootstrap_mean
    import pytest

    with pytest.raises(ValueError):
        bootstrap_mean([])


def test_the_profiles_seed_count_reaches_the_replication_verdict():
    from lab.judging.fitness import SeedNoise, campaign_seed_noise
    from services.archive.replication import judge
    stored = campaign_seed_noise("cpu-tiny")
    assert stored == {"loss": 0.0236, "benchmark": 0.0097, "seeds": 6}
    assert SeedNoise.from_dict(stored).seeds == 6 and SeedNoise.from_dict({"loss": 0.03}).seeds is None
    held_out, base = [{"final_loss": 1.350, "benchmark": 0.796}, {"final_loss": 1.417, "benchmark": 0.774}], \
        {"final_loss": 1.528, "benchmark": 0.753}
    _, _, on6 = judge(held_out, base, SeedNoise.from_dict(stored), [])
    _, _, on3 = judge(held_out, base, SeedNoise(loss=0.0236, benchmark=0.0097), [])
    assert on6.tests["final_loss"]["df"] > on3.tests["final_loss"]["df"]
    assert on6.tests["final_loss"]["p"] < on3.tests["final_loss"]["p"]
