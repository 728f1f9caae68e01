"""Spending limits (--max-llm-cost, --max-device-hours): the scheduler stops sampling before a limit would be
passed, counting experiments still in flight at their estimate (services/archive/budget.py)."""
import pytest

from schemas import events as ev
from services.archive import budget, scheduler
from services.archive.handlers import on_event
from services.archive.storage.sqlite import SQLiteStore
from tests.archive.events import CAMP, mk
from tests.archive.test_scheduler import fake_lab, run_campaign, zoo

COST = 0.01     # every experiment's first LLM answer costs this much, nothing else costs anything


def priced_lab(e: ev.Event) -> list[ev.Event]:
    out = fake_lab(e)
    if isinstance(e, ev.ParentSampled) and out:   # the researcher's first answer carries the experiment's cost
        out[0] = out[0].model_copy(update={"usage": ev.Usage(calls=1, cost_usd=COST)})
    return [x.model_copy(update={"train_s": 100.0, "eval_s": 20.0}) if isinstance(x, ev.ResultsReady) else
            x.model_copy(update={"wall_s": 0.0}) if isinstance(x, ev.TrainingFailed) else x for x in out]


async def run(store, started):
    return await run_campaign(store, started, lab=priced_lab)


def _started(**limits):
    return mk(ev.CampaignStarted, CAMP, 0, budget=12, concurrency=3, seed=5, cold_start=3,
              baselines=["deltanet", "gla"], profile="cpu-micro", config={"budget": limits})


async def test_llm_budget_stops_sampling_before_the_limit_counting_in_flight(tmp_path):
    store = SQLiteStore(tmp_path / "a.sqlite")
    log = await run(store, _started(max_llm_cost_usd=0.075))
    done = [e for e in log if e.type == "CampaignCompleted"]
    assert len(done) == 1 and done[0].reason.startswith("LLM budget")
    candidates = [e for e in log if e.type == "ParentSampled" and e.mode == "explore"]
    # 2 baselines + 5 candidates = $0.07; a 6th would make $0.08 > $0.075
    assert len(candidates) == 5
    spent = sum(e.usage.cost_usd for e in log if getattr(e, "usage", None) is not None)
    assert spent == pytest.approx(0.07) and spent <= 0.075
    s = budget.spend(store, store.get_campaign(CAMP))
    assert s.llm_usd == pytest.approx(0.07) and s.in_flight == 0 and s.ended == 7
    # without the limit the same lab runs the whole budget
    free = SQLiteStore(tmp_path / "b.sqlite")
    log = await run(free, _started())
    assert sum(e.type == "ParentSampled" and e.mode == "explore" for e in log) == 12
    assert [e.reason for e in log if e.type == "CampaignCompleted"] == ["budget spent"]


async def test_in_flight_experiments_count_at_their_estimate(tmp_path):
    """Three candidates sampled at once: the third would already pass the limit while none has spent a cent."""
    store = SQLiteStore(tmp_path / "a.sqlite")
    started = _started(max_llm_cost_usd=0.045)       # baselines $0.02: room for two more, not three
    for e in await on_event(started, store=store, zoo_source=zoo):    # the baselines, read back
        await on_event(e, store=store, zoo_source=zoo)
    for name in ("deltanet", "gla"):
        exp = scheduler.baseline_id(CAMP, name)
        await on_event(mk(ev.ProposalCreated, exp, 1, name=name, code="x", motivation="m", role="baseline",
                          usage=ev.Usage(calls=1, cost_usd=COST)), store=store, zoo_source=zoo)
        await on_event(mk(ev.ResultsReady, exp, 1.2, name=name, role="baseline"), store=store, zoo_source=zoo)
        await on_event(mk(ev.ScoreAssigned, exp, 1.5, fitness=0.5), store=store, zoo_source=zoo)
    out = await on_event(mk(ev.InsightsStored, scheduler.baseline_id(CAMP, "deltanet"), 2), store=store,
                         zoo_source=zoo)
    assert out == []
    out = await on_event(mk(ev.InsightsStored, scheduler.baseline_id(CAMP, "gla"), 2), store=store, zoo_source=zoo)
    assert [e.experiment_id for e in out] == ["camp-c0000", "camp-c0001"]      # concurrency 3, budget allows 2
    for e in out:
        await on_event(e, store=store, zoo_source=zoo)
    s = budget.spend(store, store.get_campaign(CAMP))
    assert (s.in_flight, s.llm_usd, s.committed_llm_usd) == (2, pytest.approx(0.02), pytest.approx(0.04))
    assert s.would_exceed(1) and "LLM budget" in s.would_exceed(1)
    assert scheduler.schedule(store, CAMP, zoo_source=zoo) == []      # not over: two still in flight
    # each gives up after one paid answer: $0.04 spent, $0.01 per experiment, a third candidate does not fit
    last = [await on_event(mk(ev.ExperimentAbandoned, e.experiment_id, 5, reason="x",
                              usage=ev.Usage(calls=1, cost_usd=COST)), store=store, zoo_source=zoo) for e in out][-1]
    assert [e.type for e in last] == ["CampaignCompleted"]
    assert last[0].reason.startswith("LLM budget") and last[0].experiments == 4


async def test_device_budget_uses_elapsed_time_and_the_profile_bound(tmp_path):
    store = SQLiteStore(tmp_path / "a.sqlite")
    for e in await on_event(_started(max_device_hours=0.1), store=store, zoo_source=zoo):     # 360 s
        await on_event(e, store=store, zoo_source=zoo)
    camp = store.get_campaign(CAMP)
    base = scheduler.baseline_id(CAMP, "deltanet")
    # nothing ended yet: an experiment in flight counts at the profile's bound (cpu-micro: 300 + 240 s)
    await on_event(mk(ev.TrainingStarted, base, 1, engineer_id="e1"), store=store, zoo_source=zoo)
    await on_event(mk(ev.TrainingProgress, base, 2, engineer_id="e1", step=5, total_steps=200, elapsed_s=30.0),
                   store=store, zoo_source=zoo)
    s = budget.spend(store, store.get_campaign(CAMP))
    assert budget.profile_run_s("cpu-micro") == 540.0
    assert (s.device_s, s.est_device_s) == (30.0, 540.0)
    assert s.committed_device_s == 2 * 540.0 and "device budget" in s.would_exceed(0)
    # deltanet ends after 100 + 20 s; gla runs, 200 s so far: the estimate is now the measured mean (120 s)
    await on_event(mk(ev.ResultsReady, base, 3, name="deltanet", role="baseline", train_s=100.0, eval_s=20.0),
                   store=store, zoo_source=zoo)
    await on_event(mk(ev.ScoreAssigned, base, 3.5, fitness=0.5), store=store, zoo_source=zoo)
    await on_event(mk(ev.InsightsStored, base, 4), store=store, zoo_source=zoo)
    gla = scheduler.baseline_id(CAMP, "gla")
    await on_event(mk(ev.TrainingStarted, gla, 5, engineer_id="e1"), store=store, zoo_source=zoo)
    await on_event(mk(ev.TrainingProgress, gla, 6, engineer_id="e1", step=5, total_steps=200, elapsed_s=200.0),
                   store=store, zoo_source=zoo)
    s = budget.spend(store, camp)
    assert (s.ended, s.in_flight, s.est_device_s) == (1, 1, 120.0)
    assert s.committed_device_s == 120.0 + 200.0        # in flight counts its elapsed time when that is more
    assert "device budget" in s.would_exceed(1)         # 320 + 120 > 360
    assert budget.limits(camp["params"]) == {"max_device_hours": 0.1}
    # gla fails after 10 more seconds (wall_s 210) and is abandoned: 330 s used, nothing in flight -> completed
    await on_event(mk(ev.TrainingFailed, gla, 7, kind="runtime_error", error="boom", wall_s=210.0), store=store,
                   zoo_source=zoo)
    out = await on_event(mk(ev.ExperimentAbandoned, gla, 8, reason="x"), store=store, zoo_source=zoo)
    assert [e.type for e in out] == ["CampaignCompleted"] and out[0].reason.startswith("device budget")
    assert budget.spend(store, store.get_campaign(CAMP)).device_s == 330.0


def test_limits_ignore_unset_values():
    assert budget.limits({}) == {}
    assert budget.limits({"config": {"budget": {"max_llm_cost_usd": 0, "max_device_hours": None}}}) == {}
    assert budget.limits({"config": {"budget": {"max_llm_cost_usd": 2}}}) == {"max_llm_cost_usd": 2.0}


def test_cli_puts_the_limits_on_campaign_started():
    from services.cli.campaign import _budget_config

    assert _budget_config(None, None) == {}
    assert _budget_config(1.5, None) == {"budget": {"max_llm_cost_usd": 1.5}}
    assert _budget_config(2, 0.25) == {"budget": {"max_llm_cost_usd": 2.0, "max_device_hours": 0.25}}
