"""The validity benchmark's statistics and cache, without training: Kendall tau-b, summaries over seeds,
seed noise in the judge's format, and the cache keyed by code hash + profile + seed."""
from __future__ import annotations

import itertools
import json
import math
import random

import pytest
from scipy.stats import kendalltau

from services.common.settings import Settings
from lab.tools.validity import (LITERATURE_RECALL_RANK, RECALL, RunRecord, ZooCache, build_report,
                                        kendall_tau_b, mean_abs_seed_difference, profile_key)
from lab.judging import fitness as F


@pytest.mark.parametrize("case", range(30))
def test_tau_b_matches_scipy_with_ties(case):
    rng = random.Random(case)
    n = rng.randint(3, 9)
    x = [rng.choice([0.0, 0.5, 1.0, 1.5]) for _ in range(n)]  # few distinct values: many ties
    y = [rng.choice([1, 2, 3, 4, 5]) for _ in range(n)]
    expected = kendalltau(x, y, variant="b").statistic
    got = kendall_tau_b(x, y)
    assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected, abs=1e-12)


def test_tau_b_extremes():
    assert kendall_tau_b([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert kendall_tau_b([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    assert math.isnan(kendall_tau_b([1, 1, 1], [1, 2, 3]))


def test_mean_abs_seed_difference():
    assert mean_abs_seed_difference([0.5]) is None
    assert mean_abs_seed_difference([0.2, 0.5]) == pytest.approx(0.3)
    assert mean_abs_seed_difference([0.0, 0.3, 0.6]) == pytest.approx((0.3 + 0.6 + 0.3) / 3)


def _rec(member, seed, recall, loss, prof="cpu-tiny"):
    return RunRecord(member, prof, seed, {RECALL: recall, "mqar_mc/acc": recall, "final_loss": loss,
                                          "benchmark": recall})


def test_report_ranks_correlates_and_measures_noise_in_the_judges_format():
    # the literature's order, exactly: tau = +1; linear's seeds disagree most
    recalls = {"softmax": (1.0, 0.98), "gated_deltanet": (0.97, 0.95), "deltanet": (0.95, 0.93),
               "gla": (0.6, 0.5), "retnet": (0.45, 0.41), "linear": (0.3, 0.1)}
    records = [_rec(m, s, r[s], 3.0 - r[s]) for m, r in recalls.items() for s in (0, 1)]
    records.append(RunRecord("mamba2", "cpu-tiny", 0, {}, error="RuntimeError: boom"))  # a failed run is left out
    report = build_report(records)
    assert report.rankings["cpu-tiny"] == {"metric": RECALL, "order": list(recalls)}
    assert report.tau["cpu-tiny"]["tau_b"] == pytest.approx(1.0)
    assert set(report.tau["cpu-tiny"]["members"]) == set(recalls)
    s = report.summary["cpu-tiny"]["linear"][RECALL]
    assert (s.mean, s.spread, s.seed_noise) == pytest.approx((0.2, 0.1, 0.2)) and s.seeds == [0.3, 0.1]
    noise = report.noise["cpu-tiny"]
    assert noise["per_member"]["linear"]["final_loss"] == pytest.approx(0.2)
    expected = sum(abs(a - b) for a, b in recalls.values()) / len(recalls)
    assert noise["pooled"]["benchmark"] == pytest.approx(expected)
    # the judge reads it as Settings.judge_seed_noise (env ARCHLAB_JUDGE_SEED_NOISE): by default the baseline's own
    assert report.judge_seed_noise == {"cpu-tiny": {"loss": pytest.approx(0.02), "benchmark": pytest.approx(0.02)}}
    report = build_report(records, noise_pool="mean")
    assert report.judge_seed_noise == {"cpu-tiny": {"loss": pytest.approx(expected),
                                                    "benchmark": pytest.approx(expected)}}
    settings = Settings(judge_seed_noise=json.loads(json.dumps(report.judge_seed_noise)))
    noise_obj = F.SeedNoise.from_dict(settings.judge_seed_noise["cpu-tiny"])
    assert F.significant(expected / 2, expected / 2, noise_obj) is False  # within the noise: no discovery
    assert F.significant(0.0, expected * 2, noise_obj) is True
    json.dumps(report.to_json())  # serialisable


def test_reversed_order_gives_negative_tau_and_overridden_profiles_stay_out_of_the_judge():
    members = [m for m in LITERATURE_RECALL_RANK if m != "mamba2"]
    records = [_rec(m, s, 0.1 * LITERATURE_RECALL_RANK[m] + 0.01 * s, 1.0, prof="cpu-tiny+steps=50")
               for m, s in itertools.product(members, (0, 1))]
    report = build_report(records)
    assert report.tau["cpu-tiny+steps=50"]["tau_b"] == pytest.approx(-1.0)
    assert report.judge_seed_noise == {}


def test_cache_is_keyed_by_code_hash_profile_and_seed(tmp_path):
    cache = ZooCache(tmp_path / "zoo-cache")
    code = "class DeltaNet:\n    pass\n"
    cache.put(code, "cpu-tiny", 0, {"final_loss": 1.0, "benchmark": 0.5})
    assert cache.get(code + "\n\n", "cpu-tiny", 0) == {"final_loss": 1.0, "benchmark": 0.5}  # blank lines: same hash
    assert cache.get(code, "cpu-tiny", 1) is None
    assert cache.get(code, "cpu-micro", 0) is None
    assert cache.get(code, "cpu-tiny", 0, {"steps": 10}) is None
    assert cache.get(code.replace("pass", "x = 1"), "cpu-tiny", 0) is None
    assert profile_key("cpu-tiny", {"steps": 10}) == "cpu-tiny+steps=10"


def test_median_pool_is_robust_to_one_bimodal_member():
    records = [_rec(m, s, r[s], 1.0 - r[s]) for m, r in {"deltanet": (1.0, 1.0), "gla": (0.94, 0.93),
                                                         "mamba2": (0.98, 0.05)}.items() for s in (0, 1)]
    mean = build_report(records, noise_pool="mean").judge_seed_noise["cpu-tiny"]["benchmark"]
    median = build_report(records, noise_pool="median").judge_seed_noise["cpu-tiny"]["benchmark"]
    assert mean == pytest.approx((0.0 + 0.01 + 0.93) / 3) and median == pytest.approx(0.01)
    assert build_report(records).to_json()["judge_seed_noise_by_pool"]["median"]["cpu-tiny"]["benchmark"] == \
        pytest.approx(0.01)


def test_battery_profiles_rank_by_benchmark_and_report_headroom():
    tasks = {"softmax": (0.92, 0.8), "gated_deltanet": (0.85, 0.6), "deltanet": (0.8, 0.55), "gla": (0.5, 0.5),
             "linear": (0.2, 0.45)}
    records = [RunRecord(m, "cpu-tiny", s, {"recall/acc": r + 0.01 * s, "bytes/acc": b, "final_loss": 2 - r,
                                            "benchmark": (r + 0.01 * s + b) / 2},
                         train_s=100.0, eval_s=2.0, result={"cpu_s": 90.0})
               for m, (r, b) in tasks.items() for s in (0, 1)]
    report = build_report(records)
    assert report.rankings["cpu-tiny"] == {"metric": "benchmark", "order": list(tasks)}
    assert report.tau["cpu-tiny"]["metric"] == "benchmark" and report.tau["cpu-tiny"]["tau_b"] == pytest.approx(1.0)
    room = report.headroom["cpu-tiny"]
    assert room["baseline_benchmark"] == pytest.approx((0.805 + 0.55) / 2)
    assert room["per_task"]["recall/acc"]["gap"] == pytest.approx(0.12) and room["per_task"]["recall/acc"][
        "best_member"] == "softmax"
    assert room["per_task"]["bytes/acc"]["gap"] == pytest.approx(0.25)
    assert room["tasks_with_gap"] == 2 and room["best_member"] == "softmax"
    assert room["best_margin_in_noise"] == pytest.approx((0.8625 - 0.6775) / 0.005)
    assert room["seconds_per_run"]["deltanet"] == pytest.approx(102.0) and room["cpu_seconds_per_run"]["linear"] == 90
    fit = room["fitness"]
    assert fit["deltanet"]["fitness"] == pytest.approx(0.5)  # the baseline scores sigma(0) on both components
    assert fit["softmax"]["fitness"] > 0.9 > 0.1 > fit["linear"]["fitness"]
    assert [m for m, _ in sorted(fit.items(), key=lambda kv: -kv[1]["fitness"])] == list(tasks)


def test_cache_key_follows_the_battery_sizes(tmp_path, monkeypatch):
    from lab.training import battery
    cache = ZooCache(tmp_path)
    cache.put("x = 1\n", "cpu-tiny", 0, {"final_loss": 1.0, "benchmark": 0.5})
    assert cache.get("x = 1\n", "cpu-tiny", 0) is not None
    monkeypatch.setitem(battery.SIZES, "copy", {"length": (4,), "n_values": 8})
    assert cache.get("x = 1\n", "cpu-tiny", 0) is None  # resized tasks: a new benchmark
