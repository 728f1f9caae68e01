"""The elite pool and parent sampling: distribution over 10k draws, small pools, cold start, determinism."""
from collections import Counter

import pytest

from schemas import events as ev
from services.archive.policies import POLICIES, Member, draw_references, rng_for, topk_uniform
from services.archive.pool import cold_start_pool, elite_pool, sample_parent
from services.archive.projection import apply
from services.archive.storage.sqlite import SQLiteStore
from tests.archive.events import CAMP, mk, snap

# chi-square critical values at p = 0.001 (a correct sampler fails 1 in 1000 seeds; the seeds are fixed)
CHI2_9DF, CHI2_39DF = 27.88, 72.05


def _pool(n: int) -> list[Member]:
    return [Member(f"e{r}", r, 1.0 - r / 100) for r in range(1, n + 1)]


def _chi2(counts: Counter, keys, total: int) -> float:
    expected = total / len(keys)
    return sum((counts[k] - expected) ** 2 / expected for k in keys)


def test_topk_uniform_distribution_over_10k_draws():
    pool = _pool(50)
    parents, refs = Counter(), Counter()
    for i in range(10_000):
        d = topk_uniform(pool, rng_for(7, i), {})
        ranks = [m.rank for m in d.references]
        assert 1 <= d.parent.rank <= 10
        assert len(ranks) == 4 and len(set(ranks)) == 4 and all(11 <= r <= 50 for r in ranks)
        parents[d.parent.rank] += 1
        refs.update(ranks)
    assert set(parents) == set(range(1, 11)) and set(refs) == set(range(11, 51))
    assert _chi2(parents, range(1, 11), 10_000) < CHI2_9DF
    assert _chi2(refs, range(11, 51), 40_000) < CHI2_39DF
    assert max(parents.values()) / min(parents.values()) < 1.2


# the parent comes from the top fifth of the pool (at least 1, at most top_k): the paper's 10 of 50
@pytest.mark.parametrize("n, parent_max, refs", [(1, 1, 0), (2, 1, 1), (5, 1, 4), (6, 2, 4), (12, 3, 4), (13, 3, 4),
                                                 (30, 6, 4), (50, 10, 4), (80, 10, 4)])
def test_small_pools(n, parent_max, refs):
    pool = _pool(n)
    parents = set()
    for i in range(300):
        d = topk_uniform(pool, rng_for(1, i), {})
        ranks = [m.rank for m in d.references]
        parents.add(d.parent.rank)
        assert d.info["parent_ranks"] == parent_max
        assert len(ranks) == refs and len(set(ranks)) == refs and d.parent.rank not in ranks
        if 12 <= n <= 14:   # fewer than 4 ranks beyond the top 10: all of them used before the top-10 fill
            assert set(range(11, n + 1)) <= set(ranks)
    assert parents == set(range(1, parent_max + 1))  # every allowed rank drawn, none beyond


def test_top_fraction_and_top_k_are_parameters():
    pool = _pool(20)
    assert {topk_uniform(pool, rng_for(2, i), {"top_fraction": 1.0}).parent.rank for i in range(400)} == set(range(1, 11))
    assert {topk_uniform(pool, rng_for(2, i), {"top_fraction": 1.0, "top_k": 20}).parent.rank
            for i in range(400)} == set(range(1, 21))
    assert {topk_uniform(pool, rng_for(2, i), {"top_fraction": 0.0}).parent.rank for i in range(50)} == {1}


def test_references_prefer_ranks_11_to_50():
    pool = _pool(30)
    refs = draw_references(pool, 0, rng_for(0, 0), 10, 4)
    assert all(m.rank > 10 for m in refs)


def test_determinism_given_the_seed():
    pool = _pool(50)
    for policy in POLICIES.values():
        a = [policy(pool, rng_for(3, i), {}) for i in range(50)]
        b = [policy(pool, rng_for(3, i), {}) for i in range(50)]
        c = [policy(pool, rng_for(4, i), {}) for i in range(50)]
        key = lambda draws: [(d.parent.rank, tuple(m.rank for m in d.references)) for d in draws]  # noqa: E731
        assert key(a) == key(b)
        assert key(a) != key(c)


def test_uct_explores_members_with_few_children():
    pool = [Member(f"e{r}", r, 1.0 - r / 100, children=0 if r == 7 else 20) for r in range(1, 51)]
    d = POLICIES["uct"](pool, rng_for(0, 0), {"c": 1.0})
    assert d.parent.rank == 7 and d.info["total_children"] == 49 * 20


def test_fitness_proportional_follows_fitness():
    pool = [Member("good", 1, 0.9), Member("mid", 2, 0.3)] + [Member(f"z{r}", r, 0.0) for r in range(3, 20)]
    picks = Counter(POLICIES["fitness-proportional"](pool, rng_for(0, i), {}).parent.experiment_id
                    for i in range(3000))
    assert picks["good"] > 2.2 * picks["mid"] > 0
    assert sum(v for k, v in picks.items() if k.startswith("z")) < 0.02 * 3000


# ---------------------------------------------------------------- against the read model
def _campaign_store(tmp_path, scored: int, cold_start: int = 3, policy: str = "topk-uniform", **policy_params):
    store = SQLiteStore(tmp_path / "pool.sqlite")
    apply(store, mk(ev.CampaignStarted, CAMP, 0, seed=11, cold_start=cold_start, roots=["root"], policy=policy,
                    budget=100, policy_params=policy_params))
    apply(store, mk(ev.ExperimentImported, "root", 0, campaign="asi-arch", name="root", code="r", fitness=2.0))
    apply(store, mk(ev.ParentSampled, "base", 1, mode="baseline", parent=snap("zoo:deltanet", "deltanet")))
    apply(store, mk(ev.ScoreAssigned, "base", 2, fitness=0.5))
    for i in range(scored):
        apply(store, mk(ev.ParentSampled, f"x{i:02d}", 3 + i, parent=snap("base")))
        apply(store, mk(ev.ScoreAssigned, f"x{i:02d}", 4 + i, fitness=round(0.01 * i, 3)))
    store.commit()
    return store


def test_elite_pool_is_top_50_with_unscored_roots_after(tmp_path):
    store = _campaign_store(tmp_path, scored=60)
    pool = elite_pool(store, CAMP)
    assert len(pool) == 50
    assert [m.rank for m in pool] == list(range(1, 51))
    assert pool[0].experiment_id == "x59" and pool[0].fitness == 0.59
    fits = [m.fitness for m in pool]
    assert fits == sorted(fits, reverse=True)
    small = _campaign_store(tmp_path / "s", scored=2)
    assert [m.experiment_id for m in elite_pool(small, CAMP)] == ["base", "x01", "x00", "root"]


def test_cold_start_samples_baselines_and_roots_only(tmp_path):
    store = _campaign_store(tmp_path, scored=30, cold_start=3)
    assert [m.experiment_id for m in cold_start_pool(store, CAMP)] == ["base", "root"]
    camp = store.get_campaign(CAMP)
    cold = [sample_parent(store, camp, k) for k in range(3)]
    assert all(d.parent.experiment_id in {"base", "root"} for d in cold)
    assert all(d.info["phase"] == "cold-start" for d in cold)
    assert {d.parent.experiment_id for d in (sample_parent(store, camp, k) for k in range(3, 40))} > {"base"}
    warm = sample_parent(store, camp, 3)
    assert warm.info["phase"] == "pool" and warm.info["pool_size"] == 32 and len(warm.references) == 4
    assert warm.info["seed"] == 11 and warm.info["ordinal"] == 3 and warm.info["policy"] == "topk-uniform"
    again = sample_parent(store, camp, 3)
    assert (again.parent, again.references) == (warm.parent, warm.references)


def test_unknown_policy_falls_back_and_says_so(tmp_path):
    store = _campaign_store(tmp_path, scored=5, cold_start=0, policy="mystery")
    d = sample_parent(store, store.get_campaign(CAMP), 0)
    assert d.info["policy"] == "topk-uniform" and d.info["requested_policy"] == "mystery"


def test_uct_policy_counts_children_in_the_store(tmp_path):
    greedy = _campaign_store(tmp_path / "g", scored=5, cold_start=0, policy="uct", c=0.1)
    d = sample_parent(greedy, greedy.get_campaign(CAMP), 0)
    assert d.info["policy"] == "uct" and d.info["total_children"] == 5
    assert d.parent.experiment_id == "base"   # the best fitness wins when exploration is cheap
    curious = _campaign_store(tmp_path / "c", scored=5, cold_start=0, policy="uct", c=3.0)
    d = sample_parent(curious, curious.get_campaign(CAMP), 0)
    assert d.parent.experiment_id != "base"   # base has 5 children, the others none
