"""Counterfactual replay from the log alone: the same weighting and policy reproduce every recorded
decision; another weighting or policy changes the leaderboard and the parents that would be drawn."""
from services.archive.counterfactual import counterfactual
from services.archive.storage.sqlite import SQLiteStore
from tests.archive.test_scheduler import _started, run_campaign


async def _campaign_log(tmp_path):
    with SQLiteStore(tmp_path / "live.sqlite") as store:
        return await run_campaign(store, _started(budget=14, concurrency=2, cold_start=2))


async def test_unchanged_settings_reproduce_every_decision(tmp_path):
    log = await _campaign_log(tmp_path)
    cf = counterfactual(log, log[0].campaign_id)
    assert len(cf.decisions) >= 10
    assert cf.agreement == 1.0, [d for d in cf.decisions if d.actual_parent != d.counterfactual_parent]
    assert cf.kendall_tau() == 1.0 and cf.original == cf.counterfactual


async def test_new_weighting_and_policy_change_leaderboard_and_parents(tmp_path):
    log = await _campaign_log(tmp_path)
    campaign = log[0].campaign_id
    bench_only = counterfactual(log, campaign, weights={"loss": 0.0, "benchmark": 1.0})
    assert bench_only.scheme == "counterfactual"
    assert {e for e, _ in bench_only.counterfactual} == {e for e, _ in bench_only.original}
    assert bench_only.kendall_tau() < 1.0
    # Ranked by benchmark alone now: the order follows the stored benchmark values.
    fitness = [f for _, f in bench_only.counterfactual]
    assert fitness == sorted(fitness, reverse=True)
    assert bench_only.agreement < 1.0
    uct = counterfactual(log, campaign, policy="uct")
    assert uct.policy == "uct" and uct.original == uct.counterfactual
    assert uct.agreement < 1.0


async def test_uct_and_fitness_proportional_campaigns_are_reproduced(tmp_path):
    for policy in ("uct", "fitness-proportional"):
        with SQLiteStore(tmp_path / f"{policy}.sqlite") as store:
            log = await run_campaign(store, _started(budget=12, concurrency=2, cold_start=1, policy=policy))
        cf = counterfactual(log, log[0].campaign_id)
        assert cf.policy == policy and len(cf.decisions) >= 8
        assert cf.agreement == 1.0, policy
