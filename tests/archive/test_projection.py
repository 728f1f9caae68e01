"""The projection: every event type, idempotency, and order independence across topics."""
import itertools
import random

import pytest

from schemas import events as ev
from schemas.topics import topic_for
from services.archive.projection import APPLY, apply, digest, status_of
from services.archive.storage.sqlite import SQLiteStore
from tests.archive.events import CAMP, experiment_life, mk, snap
from tests.common.samples import sample_event


def _build(tmp_path, events, name):
    store = SQLiteStore(tmp_path / f"{name}.sqlite")
    for e in events:
        apply(store, e)
    store.commit()
    return store


def test_every_event_type_has_a_projection(tmp_path):
    assert set(APPLY) == set(ev.EVENT_TYPES)
    store = SQLiteStore(tmp_path / "a.sqlite")
    for cls in ev.EVENT_TYPES.values():
        e = sample_event(cls)
        assert apply(store, e) is True
        assert apply(store, e) is False
    store.commit()
    assert len(store.dump()["processed"]) == len(ev.EVENT_TYPES)
    assert store.get_campaign("camp")["completed"]["reason"] == "budget spent"
    assert store.get_cognition("c1") is not None


def test_failed_rejected_and_abandoned_are_stored_with_reasons(tmp_path):
    events = [
        mk(ev.ParentSampled, "rej", 0, parent=snap("p")),
        mk(ev.ProposalRejected, "rej", 1, attempt=1, reason="causality", feedback="sees the future"),
        mk(ev.ProposalRejected, "rej", 2, attempt=2, reason="duplicate", feedback="same as p"),
        mk(ev.ExperimentAbandoned, "rej", 3, reason="attempts_exhausted", attempts=2),
        mk(ev.ParentSampled, "fail", 0, parent=snap("p")),
        mk(ev.ProposalCreated, "fail", 1, name="f", code="c", motivation="m"),
        mk(ev.TrainingFailed, "fail", 2, kind="diverged", error="loss is NaN at step 40"),
        mk(ev.ParentSampled, "aban", 0, parent=snap("p")),
        mk(ev.ProposalCreated, "aban", 1, name="a", code="c", motivation="m"),
        mk(ev.TrainingFailed, "aban", 2, kind="memory", error="OOM"),
        mk(ev.ExperimentAbandoned, "aban", 3, reason="revisions_exhausted", revisions=3),
    ]
    store = _build(tmp_path, events, "s")
    rej, fail, aban = (store.get_experiment(x) for x in ("rej", "fail", "aban"))
    assert rej["status"] == "rejected-only" and rej["abandoned"]["reason"] == "attempts_exhausted"
    assert [(a["reason"], a["feedback"]) for a in store.attempts("rej")] == [
        ("causality", "sees the future"), ("duplicate", "same as p")]
    assert fail["status"] == "failed" and fail["failure"] == {**fail["failure"], "kind": "diverged",
                                                              "error": "loss is NaN at step 40"}
    assert aban["status"] == "abandoned" and aban["abandoned"]["reason"] == "revisions_exhausted"
    assert store.attempts("aban")[-1]["failure_kind"] == "memory"


def test_status_lattice_examples():
    base = {"facts": {}, "revisions": {"proposed": -1, "started": -1, "failed": -1, "results": -1}}
    assert status_of(base) == "sampled"
    assert status_of({**base, "facts": {"rejected": True}}) == "proposing"
    fixed = {"facts": {"proposed": True, "failed": True},
             "revisions": {"proposed": 1, "started": 1, "failed": 0, "results": -1}}
    assert status_of(fixed) == "training"   # revision 1 came after the failure of revision 0
    measured = {**fixed, "facts": {**fixed["facts"], "results": True, "abandoned": True}}
    assert status_of(measured) == "scoring"   # a result outranks an abandonment: what was measured stays
    assert status_of({**measured, "facts": {**measured["facts"], "scored": True}}) == "analysing"
    assert status_of({**measured, "facts": {**measured["facts"], "scored": True, "insights": True}}) == "done"


def test_score_before_results_and_progress_after_results(tmp_path):
    life = experiment_life("x", parent="p")
    by_type = {e.type: e for e in life}
    odd = [by_type["ScoreAssigned"], by_type["InsightsStored"]] + \
          [e for e in life if e.type not in ("ScoreAssigned", "InsightsStored", "TrainingProgress")] + \
          [by_type["TrainingProgress"]]
    a, b = _build(tmp_path, life, "a"), _build(tmp_path, odd, "b")
    assert digest(a) == digest(b)
    doc = b.get_experiment("x")
    assert doc["status"] == "done" and doc["fitness"] == 0.5 and doc["progress"]["step"] == 50


def test_latest_by_occurred_at_not_arrival(tmp_path):
    old = mk(ev.ScoreAssigned, "x", 10, fitness=0.2)
    new = mk(ev.ScoreAssigned, "x", 20, fitness=0.9, rescore_of=old.event_id)
    a, b = _build(tmp_path, [old, new], "a"), _build(tmp_path, [new, old], "b")
    assert a.get_experiment("x")["fitness"] == b.get_experiment("x")["fitness"] == 0.9
    assert b.top_by_fitness(CAMP, "paper", 5) == [("x", 0.9)]
    assert len(b.scores("x")) == 2   # every score is kept
    assert digest(a) == digest(b)


def test_campaign_scheme_decides_fitness_whenever_the_campaign_arrives(tmp_path):
    started = mk(ev.CampaignStarted, CAMP, 0, config={"scheme": "loss-only"})
    paper = mk(ev.ScoreAssigned, "x", 5, fitness=0.3)
    loss = mk(ev.ScoreAssigned, "x", 6, fitness=0.7, scheme="loss-only")
    sampled = mk(ev.ParentSampled, "x", 1, parent=snap("p"))
    outcomes = set()
    for order in itertools.permutations([started, paper, loss, sampled]):
        store = _build(tmp_path, order, "perm")
        assert store.get_experiment("x")["fitness"] == 0.7
        outcomes.add(digest(store))
        store.close()
        for suffix in ("", "-wal", "-shm"):
            (tmp_path / f"perm.sqlite{suffix}").unlink(missing_ok=True)
    assert len(outcomes) == 1


def _legal_shuffle(events, rng):
    """Random order keeping each (topic, experiment) sequence in order."""
    queues = {}
    for e in events:
        queues.setdefault((topic_for(e), e.experiment_id), []).append(e)
    queues = list(queues.values())
    out = []
    while queues:
        q = rng.choice(queues)
        out.append(q.pop(0))
        if not q:
            queues.remove(q)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_random_cross_topic_orders_give_one_state(tmp_path, seed):
    events = (experiment_life("x1", "p0") + experiment_life("x2", "x1", t0=30, fitness=0.7, fail_first=True)
              + [mk(ev.ExperimentAbandoned, "x3", 40, reason="no debugger"),
                 mk(ev.ParentSampled, "x3", 35, parent=snap("x1")),
                 mk(ev.CampaignStarted, CAMP, 0, budget=3), mk(ev.CampaignCompleted, CAMP, 50)])
    reference = digest(_build(tmp_path, events, "ref"))
    shuffled = _legal_shuffle(events, random.Random(seed))
    assert digest(_build(tmp_path, shuffled, f"s{seed}")) == reference


def test_lineage_survives_when_parent_leaves_the_pool(tmp_path):
    events = experiment_life("p", "root", fitness=0.9) + experiment_life("k", "p", t0=20, fitness=0.8)
    store = _build(tmp_path, events, "a")
    assert [d["experiment_id"] for d in store.children("p")] == ["k"]
    apply(store, mk(ev.ScoreAssigned, "p", 100, fitness=None, error="metrics missing"))   # p leaves the pool
    store.commit()
    assert store.top_by_fitness(CAMP, "paper", 50) == [("k", 0.8)]
    assert store.get_experiment("p")["fitness"] is None
    assert [d["experiment_id"] for d in store.children("p")] == ["k"]
    assert store.get_experiment("k")["parent_id"] == "p"


def test_digest_sees_what_matters(tmp_path):
    events = experiment_life("x", "p", fitness=0.5)
    changed = [e.model_copy(update={"fitness": 0.51}) if e.type == "ScoreAssigned" else e for e in events]
    assert [e.event_id for e in changed] == [e.event_id for e in events]
    a, b = _build(tmp_path, events, "a"), _build(tmp_path, changed, "b")
    assert digest(a) != digest(b)
    assert digest(a) == digest(_build(tmp_path, list(events), "c"))
