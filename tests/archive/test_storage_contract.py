"""The storage contract, the same for every backend (SQLite always; Cassandra when
ARCHLAB_CASSANDRA_HOSTS is set): insert, update, lineage, pool, idempotency under redelivery."""
from schemas import events as ev
from services.archive.projection import apply, digest, new_experiment
from tests.archive.events import CAMP, experiment_life, mk, snap


def _doc(exp_id, campaign="c1", created="2026-01-01T00:00:00.000000Z", parent=None, fitness=None):
    d = new_experiment(exp_id)
    d.update(campaign_id=campaign, created_at=created, parent_id=parent, fitness=fitness, name=exp_id)
    return d


def test_insert_get_update(store):
    assert store.get_experiment("a") is None
    store.put_experiment(_doc("a"))
    store.commit()
    assert store.get_experiment("a")["name"] == "a"
    d = store.get_experiment("a")
    d["name"] = "renamed"
    d["status"] = "done"
    store.put_experiment(d)
    store.commit()
    assert store.get_experiment("a")["name"] == "renamed"
    assert [x["experiment_id"] for x in store.experiments()] == ["a"]


def test_experiments_by_campaign_in_time_order_and_moves(store):
    store.put_experiment(_doc("b", created="2026-01-01T00:00:02.000000Z"))
    store.put_experiment(_doc("a", created="2026-01-01T00:00:03.000000Z"))
    store.put_experiment(_doc("c", created="2026-01-01T00:00:01.000000Z"))
    store.put_experiment(_doc("z", campaign="c2"))
    store.commit()
    assert [d["experiment_id"] for d in store.experiments("c1")] == ["c", "b", "a"]
    assert [d["experiment_id"] for d in store.experiments("c2")] == ["z"]
    moved = store.get_experiment("a")
    moved.update(campaign_id="c2", created_at="2025-12-31T00:00:00.000000Z")   # an earlier fact arrived
    store.put_experiment(moved)
    store.commit()
    assert [d["experiment_id"] for d in store.experiments("c1")] == ["c", "b"]
    assert [d["experiment_id"] for d in store.experiments("c2")] == ["a", "z"]


def test_children_by_parent(store):
    for exp, parent in (("p", None), ("k2", "p"), ("k1", "p"), ("g", "k1"), ("x", "q")):
        store.put_experiment(_doc(exp, parent=parent))
    store.commit()
    assert [d["experiment_id"] for d in store.children("p")] == ["k1", "k2"]
    assert [d["experiment_id"] for d in store.children("k1")] == ["g"]
    assert store.children("g") == []
    re_parented = store.get_experiment("k2")
    re_parented["parent_id"] = "q"
    store.put_experiment(re_parented)
    store.commit()
    assert [d["experiment_id"] for d in store.children("p")] == ["k1"]
    assert [d["experiment_id"] for d in store.children("q")] == ["k2", "x"]


def test_attempts_and_scores_ordered_and_keyed_by_event(store):
    store.put_attempt({"event_id": "e2", "experiment_id": "a", "occurred_at": "2026-01-01T00:00:02.000000Z",
                       "kind": "rejected"})
    store.put_attempt({"event_id": "e1", "experiment_id": "a", "occurred_at": "2026-01-01T00:00:01.000000Z",
                       "kind": "proposal"})
    store.put_attempt({"event_id": "e1", "experiment_id": "a", "occurred_at": "2026-01-01T00:00:01.000000Z",
                       "kind": "proposal"})   # redelivered
    store.put_score({"event_id": "s1", "experiment_id": "a", "campaign_id": "c1", "scheme": "paper", "fitness": 0.5,
                     "occurred_at": "2026-01-01T00:00:03.000000Z"})
    store.commit()
    assert [a["event_id"] for a in store.attempts("a")] == ["e1", "e2"]
    assert [s["fitness"] for s in store.scores("a")] == [0.5]
    assert store.attempts("other") == []


def test_pool_index_orders_moves_and_removes(store):
    for exp, fit in (("a", 0.5), ("b", 0.9), ("c", 0.7), ("d", 0.7)):
        store.set_pool_entry("c1", "paper", exp, fit)
    store.set_pool_entry("c1", "loss-only", "a", 0.99)
    store.set_pool_entry("c2", "paper", "z", 1.0)
    store.commit()
    assert store.top_by_fitness("c1", "paper", 10) == [("b", 0.9), ("c", 0.7), ("d", 0.7), ("a", 0.5)]
    assert store.top_by_fitness("c1", "paper", 2) == [("b", 0.9), ("c", 0.7)]
    store.set_pool_entry("c1", "paper", "b", 0.1)     # a rescore moves it down
    store.set_pool_entry("c1", "paper", "c", None)    # a score without fitness leaves the pool
    store.commit()
    assert store.top_by_fitness("c1", "paper", 10) == [("d", 0.7), ("a", 0.5), ("b", 0.1)]
    assert store.top_by_fitness("c1", "loss-only", 10) == [("a", 0.99)]


def test_campaigns_cognitions_and_processed(store):
    store.put_campaign({"campaign_id": "c1", "params": {"budget": 3}})
    store.put_cognition({"cognition_id": "k1", "title": "Delta rule"})
    assert not store.is_processed("e1")
    store.mark_processed("e1", "CampaignStarted", "2026-01-01T00:00:00.000000Z")
    store.mark_processed("e2", "ParentSampled", "2026-01-01T00:00:01.000000Z", local_payload='{"x": 1}')
    store.commit()
    assert store.get_campaign("c1")["params"]["budget"] == 3
    assert store.get_campaign("nope") is None
    assert store.get_cognition("k1")["title"] == "Delta rule"
    assert store.is_processed("e1") and store.is_processed("e2")
    assert store.pending_local() == ['{"x": 1}']
    store.confirm("e2")
    store.commit()
    assert store.pending_local() == []
    tables = store.dump()
    assert [r["event_id"] for r in tables["processed"]] == ["e1", "e2"]
    assert [r["campaign_id"] for r in tables["campaigns"]] == ["c1"]


def test_projection_insert_update_lineage_through_the_store(store):
    life = experiment_life("x1", parent="p0", fail_first=True)
    for e in life[:3]:
        apply(store, e)
    store.commit()
    doc = store.get_experiment("x1")
    assert (doc["status"], doc["name"], doc["parent_id"], doc["role"]) == ("training", "x1-v0", "p0", "candidate")
    for e in life[3:]:
        apply(store, e)
    store.commit()
    doc = store.get_experiment("x1")
    assert doc["status"] == "done" and doc["name"] == "x1-v1" and doc["code"] == "v1"
    assert doc["fitness"] == 0.5 and doc["results"]["final_loss"] == 1.3
    assert [a["kind"] for a in store.attempts("x1")] == ["rejected", "proposal", "failure", "proposal"]
    assert store.attempts("x1")[2]["failure_kind"] == "runtime_error"
    assert [d["experiment_id"] for d in store.children("p0")] == ["x1"]
    assert store.top_by_fitness(CAMP, "paper", 50) == [("x1", 0.5)]


def test_idempotent_under_redelivery(store):
    events = experiment_life("x1", parent="p0") + experiment_life("x2", parent="x1", t0=20, fitness=0.8)
    for e in events:
        assert apply(store, e) is True
    store.commit()
    before = digest(store)
    for e in events[::-1] + events:   # every event delivered twice more, in any order
        assert apply(store, e) is False
    store.commit()
    assert digest(store) == before
    assert len(store.attempts("x1")) == 2 and len(store.scores("x2")) == 1
    assert store.top_by_fitness(CAMP, "paper", 50) == [("x2", 0.8), ("x1", 0.5)]


def test_own_decisions_pending_until_read_back(store):
    decision = mk(ev.ParentSampled, "x9", 0, parent=snap("p0"))
    apply(store, decision, local=True)
    store.commit()
    assert len(store.pending_local()) == 1
    assert ev.ParentSampled.model_validate_json(store.pending_local()[0]) == decision
    assert apply(store, decision) is False     # the log returns it
    store.commit()
    assert store.pending_local() == []
