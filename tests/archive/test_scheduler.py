"""The scheduler and the archive handler, driving a simulated lab to the end of a campaign.

The simulated lab answers like the other services would (researcher, engineer, debugger, judge,
analyst), deterministically. The log it produces is then replayed in a shuffled order into a
fresh store: the live database and the replay must have equal digests.
"""
import hashlib

from schemas import events as ev
from services.archive import scheduler
from services.archive.handlers import on_event, pending_events
from services.archive.projection import digest
from services.archive.replay import interleave, replay_events
from services.archive.storage.sqlite import SQLiteStore
from tests.archive.events import CAMP, mk


def zoo(name: str) -> str:
    return f"# zoo program {name}\nclass DeltaNet: pass\n"


def _h(*parts) -> float:
    return int(hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def fake_lab(e: ev.Event) -> list[ev.Event]:
    """Deterministic stand-ins for the other services: each reacts to one event type."""
    if isinstance(e, ev.ParentSampled):
        out = []
        if e.mode == "explore" and _h(e.experiment_id, "rej") < 0.3:
            out.append(e.caused(ev.ProposalRejected, producer="researcher", attempt=1, reason="duplicate",
                                feedback="repeats the parent"))
        if e.mode == "explore" and _h(e.experiment_id, "give-up") < 0.1:
            return out + [e.caused(ev.ExperimentAbandoned, producer="researcher", reason="attempts_exhausted")]
        return out + [e.caused(ev.ProposalCreated, producer="researcher", name=f"n-{e.experiment_id}",
                               code=e.parent.code + "\n# child", motivation="m", parent_id=None if e.mode ==
                               "baseline" else e.parent.experiment_id,
                               reference_ids=[r.experiment_id for r in e.references],
                               role="baseline" if e.mode == "baseline" else "candidate")]
    if isinstance(e, ev.ProposalCreated):
        started = e.caused(ev.TrainingStarted, producer="engineer", engineer_id="e1", revision=e.revision)
        if e.revision == 0 and _h(e.experiment_id, "fail") < 0.25:
            return [started, e.caused(ev.TrainingFailed, producer="engineer", kind="runtime_error", error="boom",
                                      revision=0)]
        return [started, e.caused(ev.TrainingProgress, producer="engineer", engineer_id="e1", step=10,
                                  total_steps=20, revision=e.revision),
                e.caused(ev.ResultsReady, producer="engineer", name=e.name, role=e.role, revision=e.revision,
                         final_loss=1 + _h(e.experiment_id, "loss"), benchmark=_h(e.experiment_id, "b"))]
    if isinstance(e, ev.TrainingFailed):   # the debugger: fixes half, abandons the rest
        if _h(e.experiment_id, "fix") < 0.5:
            return [e.caused(ev.ProposalCreated, producer="debugger", name="fixed", code="fixed", motivation="m",
                             revision=1, origin="debugger")]
        return [e.caused(ev.ExperimentAbandoned, producer="debugger", reason="revisions_exhausted")]
    if isinstance(e, ev.ResultsReady):
        return [e.caused(ev.ScoreAssigned, producer="judge", fitness=round(_h(e.experiment_id, "fit"), 4))]
    if isinstance(e, ev.ScoreAssigned):
        return [e.caused(ev.InsightsStored, producer="analyst", synthesis="ok", experience=f"x{e.experiment_id}")]
    return []


async def run_campaign(store, started: ev.CampaignStarted, max_events: int = 5000, lab=fake_lab) -> list[ev.Event]:
    """Deliver every event (FIFO) to the archive handler and to the lab; returns the log."""
    log, queue = [], [started]
    while queue and len(log) < max_events:
        e = queue.pop(0)
        log.append(e)
        queue += await on_event(e, store=store, zoo_source=zoo) + lab(e)
    return log


def _started(**kw):
    fields = dict(budget=12, concurrency=3, seed=5, cold_start=3, baselines=["deltanet", "gla"])
    fields.update(kw)
    return mk(ev.CampaignStarted, CAMP, 0, **fields)


async def test_baselines_first_then_candidates_within_concurrency(tmp_path):
    store = SQLiteStore(tmp_path / "a.sqlite")
    out = await on_event(_started(), store=store, zoo_source=zoo)
    assert [(e.type, e.mode, e.experiment_id) for e in out] == [
        ("ParentSampled", "baseline", "camp-base-deltanet"), ("ParentSampled", "baseline", "camp-base-gla")]
    assert out[0].parent.code == zoo("deltanet") and out[0].causation_id is not None
    assert out[0].event_id == ev.derived_id(CAMP, "ParentSampled", "camp-base-deltanet")
    assert await on_event(out[0], store=store, zoo_source=zoo) == []      # read back: nothing new
    # the first baseline ends (insights read before the result and score they follow: it ends with the last of
    # the three): the other still runs, so no candidate yet
    insights = mk(ev.InsightsStored, "camp-base-deltanet", 5)
    assert await on_event(insights, store=store, zoo_source=zoo) == []
    assert await on_event(mk(ev.ScoreAssigned, "camp-base-deltanet", 4, fitness=0.5), store=store,
                          zoo_source=zoo) == []
    assert not scheduler.ended(store.get_experiment("camp-base-deltanet"))
    await on_event(mk(ev.ResultsReady, "camp-base-deltanet", 3, name="deltanet", role="baseline"), store=store,
                   zoo_source=zoo)
    assert scheduler.ended(store.get_experiment("camp-base-deltanet"))
    await on_event(mk(ev.ScoreAssigned, "camp-base-gla", 5, fitness=0.5), store=store, zoo_source=zoo)
    out = await on_event(mk(ev.ExperimentAbandoned, "camp-base-gla", 6, reason="x"), store=store, zoo_source=zoo)
    assert [e.experiment_id for e in out] == ["camp-c0000", "camp-c0001", "camp-c0002"]
    assert all(e.mode == "explore" and e.draw["phase"] == "cold-start" for e in out)
    assert all(e.parent.experiment_id in {"camp-base-deltanet", "camp-base-gla"} for e in out)
    # a redelivered input republishes the decisions not yet read back from the log; it samples nothing new
    pending = {e.event_id for e in pending_events(store)}
    assert pending == {e.event_id for e in out} | {ev.derived_id(CAMP, "ParentSampled", "camp-base-gla")}
    again = await on_event(insights, store=store, zoo_source=zoo)
    assert {e.event_id for e in again} == pending


async def test_campaign_runs_to_completion_and_replays_to_the_same_digest(tmp_path):
    live = SQLiteStore(tmp_path / "live.sqlite")
    log = await run_campaign(live, _started())
    types = [e.type for e in log]
    assert types.count("CampaignCompleted") == 1 and types[-1] != "ParentSampled"
    sampled = [e for e in log if e.type == "ParentSampled"]
    assert [e.experiment_id for e in sampled if e.mode == "explore"] == [f"camp-c{k:04d}" for k in range(12)]
    assert len({e.event_id for e in sampled}) == len(sampled) == 14
    assert live.pending_local() == []
    docs = {d["experiment_id"]: d for d in live.experiments(CAMP)}
    assert all(scheduler.ended(d) for d in docs.values())
    assert {d["status"] for d in docs.values()} <= {"done", "abandoned", "rejected-only"}
    # never more than `concurrency` candidates in flight: replay the log and count
    in_flight, peak = set(), 0
    for e in log:
        if e.type == "ParentSampled" and e.mode == "explore":
            in_flight.add(e.experiment_id)
        elif e.type in ("InsightsStored", "ExperimentAbandoned"):
            in_flight.discard(e.experiment_id)
        peak = max(peak, len(in_flight))
    assert peak == 3
    # snapshots carry code, results and analysis once the pool is open
    late = [e for e in sampled if e.draw.get("phase") == "pool"]
    assert late and all(e.parent.code and e.parent.fitness is not None for e in late)
    # a scored parent whose analysis is still on its way is drawn without it (the pool ranks by fitness)
    assert sum(bool(e.parent.analysis) for e in late) >= len(late) - 1
    assert all(len(e.references) <= 4 for e in late)
    # the database is the projection of the log
    fresh = SQLiteStore(tmp_path / "replay.sqlite")
    stats = replay_events(interleave(log, 3) + log[:50], fresh)
    assert stats.duplicates == 50
    assert digest(fresh) == digest(live)


async def test_restarted_archive_does_not_resample_a_slot(tmp_path):
    path = tmp_path / "a.sqlite"
    store = SQLiteStore(path)
    first = await on_event(_started(baselines=[], budget=4, concurrency=2, roots=["root"]), store=store, zoo_source=zoo)
    assert first == []    # no roots in the archive yet, no baselines: nothing to sample from, but not over
    root = mk(ev.ExperimentImported, "root", 1, campaign="asi-arch", name="root", code="r")
    first = await on_event(root, store=store, zoo_source=zoo)
    assert [e.experiment_id for e in first] == ["camp-c0000", "camp-c0001"]
    store.close()
    reopened = SQLiteStore(path)
    assert await on_event(first[0], store=reopened, zoo_source=zoo) == []
    assert scheduler.schedule(reopened, CAMP, zoo_source=zoo) == []
    assert [e.event_id for e in pending_events(reopened)] == sorted([first[1].event_id])


async def test_no_parent_available_completes_the_campaign(tmp_path):
    store = SQLiteStore(tmp_path / "a.sqlite")
    await on_event(_started(baselines=["deltanet"], budget=3), store=store, zoo_source=zoo)
    out = await on_event(mk(ev.ExperimentAbandoned, "camp-base-deltanet", 3, reason="crashed"), store=store,
                         zoo_source=zoo)
    assert [e.type for e in out] == ["CampaignCompleted"]
    assert "no parent" in out[0].reason
    assert store.get_campaign(CAMP)["completed"]["reason"] == out[0].reason
    assert await on_event(mk(ev.InsightsStored, "late", 9), store=store, zoo_source=zoo) == []


def test_ids_are_deterministic():
    assert scheduler.candidate_id("c", 7) == "c-c0007"
    assert scheduler.baseline_id("c", "gla") == "c-base-gla"
