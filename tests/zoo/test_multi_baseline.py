"""Multi-architecture initialisation: a campaign started from any subset of the zoo measures each member
as a baseline (the zoo's own program, unchanged), and the measured baselines are the elite pool the first
candidates are drawn from. Driven through the archive's handler and scheduler with a SQLite store, no Kafka."""
from __future__ import annotations

from schemas import events as ev
from services.archive.handlers import on_event
from services.archive.pool import cold_start_pool, elite_pool
from services.archive.scheduler import baseline_id
from services.archive.storage.sqlite import SQLiteStore
from lab.zoo import zoo_names, zoo_source
from tests.archive.events import CAMP, mk

SUBSET = ["mamba2", "gla", "linear"]  # not the default baseline: any subset must work
FITNESS = {"mamba2": 0.61, "gla": 0.55, "linear": 0.40}


def _measure(sampled: ev.ParentSampled) -> list[ev.Event]:
    """What the researcher, engineer, judge and analyst answer to a baseline's ParentSampled."""
    name = sampled.parent.name
    proposal = sampled.caused(ev.ProposalCreated, producer="researcher", name=name, code=sampled.parent.code,
                              motivation=f"zoo baseline {name}", role="baseline")
    results = proposal.caused(ev.ResultsReady, producer="engineer", name=name, role="baseline",
                              final_loss=2.0 - FITNESS[name], benchmark=FITNESS[name])
    score = results.caused(ev.ScoreAssigned, producer="judge", fitness=FITNESS[name])
    insights = score.caused(ev.InsightsStored, producer="analyst", synthesis="baseline measured", experience=name)
    return [proposal, results, score, insights]


async def test_campaign_from_a_zoo_subset_measures_each_member_and_seeds_the_pool(tmp_path):
    assert set(SUBSET) < set(zoo_names())
    store = SQLiteStore(tmp_path / "archive.sqlite")
    started = mk(ev.CampaignStarted, CAMP, 0, budget=4, concurrency=2, seed=3, cold_start=2, baselines=SUBSET)

    # phase 1: one baseline ParentSampled per zoo member, carrying the zoo's program text unchanged
    sampled = await on_event(started, store=store)  # the scheduler's default source: the real zoo
    assert [(e.mode, e.experiment_id, e.parent.name) for e in sampled] == [
        ("baseline", baseline_id(CAMP, n), n) for n in SUBSET]
    assert all(e.parent.code == zoo_source(e.parent.name) for e in sampled)

    # the baselines are measured; no candidate is sampled before the last one ends
    follow: list[ev.Event] = []
    for i, e in enumerate(sampled):
        follow += await on_event(e, store=store)
        for reply in _measure(e):
            out = await on_event(reply, store=store)
            if i < len(SUBSET) - 1:
                assert out == [], f"a candidate was sampled before baseline {SUBSET[-1]} ended"
            follow += out
    assert follow, "no candidate sampled after every baseline ended"

    # the measured baselines are the elite pool, ranked by their fitness
    pool = elite_pool(store, CAMP)
    assert [m.experiment_id for m in pool] == [baseline_id(CAMP, n) for n in sorted(SUBSET, key=lambda n: -FITNESS[n])]
    assert [m.fitness for m in pool] == sorted(FITNESS.values(), reverse=True)
    assert all(m.doc["role"] == "baseline" and m.doc["zoo"] == n
               for m, n in zip(pool, sorted(SUBSET, key=lambda n: -FITNESS[n])))
    assert {m.experiment_id for m in cold_start_pool(store, CAMP)} == {baseline_id(CAMP, n) for n in SUBSET}

    # phase 2: `concurrency` candidates, their parents and references drawn from the measured baselines
    candidates = [e for e in follow if isinstance(e, ev.ParentSampled) and e.mode == "explore"]
    assert [e.experiment_id for e in candidates] == [f"{CAMP}-c0000", f"{CAMP}-c0001"]
    members = {baseline_id(CAMP, n) for n in SUBSET}
    for e in candidates:
        assert e.draw["phase"] == "cold-start" and e.draw["pool"]
        assert set(e.draw["pool"]) == members
        assert e.parent.experiment_id in members
        assert e.parent.code == zoo_source(e.parent.name) and e.parent.fitness == FITNESS[e.parent.name]
        assert {r.experiment_id for r in e.references} <= members
