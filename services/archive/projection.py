"""The read model as a pure function of the log: `apply(store, event)` for every event type.

Two properties make the database a projection that a replay rebuilds exactly:

- Idempotent: an event_id already applied is skipped (the `processed` table), and every write is
  an upsert keyed by an id, so a redelivery or a half-applied event changes nothing.
- Order-independent across topics: a field is never "whatever arrived last". Each field carries
  a version `priority|rank|rank|occurred_at|event_id` (sortable text) and a write wins only with a higher
  version (a last-writer-wins register ordered by the facts, not by arrival); flags only turn on;
  first/last times are min/max; revision counters are max. Status and fitness are *derived* from
  those facts after every write (see `status_of`), so ScoreAssigned before ResultsReady, or
  TrainingProgress after ResultsReady, ends in the same row.

No Kafka here: the service wiring, replay and tests call `apply` directly.
"""
from __future__ import annotations

import hashlib
import json
import math
from datetime import timezone
from typing import Any, Callable

from lab.lifecycle import Lifecycle, new_revisions
from schemas import events as ev
from services.archive.storage.base import Record, Store

DEFAULT_SCHEME = "paper"
ENVELOPE = ("event_id", "type", "schema_version", "occurred_at", "campaign_id", "experiment_id", "causation_id",
            "producer")


_last_ts: list = [None, ""]   # (event, text) of the last call: one event asks many times


def ts(event: ev.Event) -> str:
    """occurred_at as fixed-width UTC text: sorts like the time it names."""
    if _last_ts[0] is event:
        return _last_ts[1]
    t = event.occurred_at
    t = t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)
    text = (f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
            f".{t.microsecond:06d}Z")
    _last_ts[0], _last_ts[1] = event, text
    return text


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _body(event: ev.Event, *drop: str) -> dict[str, Any]:
    """The event's own fields as JSON-ready data (no envelope)."""
    return event.model_dump(mode="json", exclude=set(ENVELOPE) | set(drop))


# ---------------------------------------------------------------- versioned merge helpers
def _version(event: ev.Event, prio: int, a: int = 0, b: int = 0) -> str:
    """A sortable text version: priority of the source, two ranks (revision, attempt or step), time, id."""
    return f"{prio}|{a:010d}|{b:010d}|{ts(event)}|{event.event_id}"


def _set(doc: Record, field: str, value: Any, version: str) -> bool:
    """Set doc[field] when `version` beats the stored one; True when it did."""
    current = doc["_v"].get(field)
    if current is not None and current >= version:
        return False
    doc[field] = value
    doc["_v"][field] = version
    return True


def new_experiment(experiment_id: str) -> Record:
    return {
        "experiment_id": experiment_id, "campaign_id": None, "name": None, "parent_id": None,
        "reference_ids": [], "role": None, "status": None, "zoo": None, "stage": None, "verifies": None,
        "promotion": None, "size": None, "replication": None,
        "code": None, "motivation": None, "design": None, "origin": None, "code_hash": None,
        "sampling": None, "imported": None, "training": None, "progress": None, "failure": None,
        "results": None, "fitness": None, "score": None, "scores": {}, "insights": None, "abandoned": None,
        "facts": {}, "revisions": new_revisions(),
        "times": {}, "created_at": None, "updated_at": None, "_v": {},
    }


def _experiment(store: Store, event: ev.Event, campaign_prio: int) -> Record:
    doc = store.get_experiment(event.experiment_id) or new_experiment(event.experiment_id)
    t = ts(event)
    doc["created_at"] = min(doc["created_at"] or t, t)
    doc["updated_at"] = max(doc["updated_at"] or t, t)
    _set(doc, "campaign_id", event.campaign_id, _version(event, campaign_prio))
    return doc


def _fact(doc: Record, event: ev.Event) -> None:
    """Fold the event into the document's lifecycle facts and note when each fact first happened."""
    name = Lifecycle.of(doc).apply(event)
    if name is not None:
        t = ts(event)
        doc["times"][name] = min(doc["times"].get(name, t), t)


def status_of(doc: Record) -> str:
    """The experiment's status: the lab's one lifecycle (lab/lifecycle.py) over the document's facts."""
    return Lifecycle.of(doc).status


def campaign_scheme(store: Store, campaign_id: str | None) -> str:
    camp = store.get_campaign(campaign_id) if campaign_id else None
    return (camp or {}).get("scheme") or DEFAULT_SCHEME


def _save(store: Store, doc: Record) -> None:
    """Derive status and fitness from the facts, then write."""
    doc["status"] = status_of(doc)
    score = doc["scores"].get(f"{doc['campaign_id']}/{campaign_scheme(store, doc['campaign_id'])}")
    doc["score"] = score
    doc["fitness"] = score["fitness"] if score else None
    store.put_experiment(doc)


# ---------------------------------------------------------------- one function per event type
def _campaign_doc(store: Store, campaign_id: str) -> Record:
    return store.get_campaign(campaign_id) or {"campaign_id": campaign_id, "params": None, "scheme": DEFAULT_SCHEME,
                                               "started_at": None, "completed": None, "_v": {}}


def on_campaign_started(store: Store, e: ev.CampaignStarted) -> None:
    doc = _campaign_doc(store, e.campaign_id)
    if _set(doc, "params", _body(e) | {"event_id": e.event_id}, _version(e, 1)):
        doc["started_at"] = ts(e)
        doc["scheme"] = e.config.get("scheme") or DEFAULT_SCHEME
    store.put_campaign(doc)
    for exp in store.experiments(e.campaign_id):   # fitness follows the campaign's scheme, whenever it arrives
        _save(store, exp)


def on_campaign_completed(store: Store, e: ev.CampaignCompleted) -> None:
    doc = _campaign_doc(store, e.campaign_id)
    _set(doc, "completed", _body(e) | {"at": ts(e), "event_id": e.event_id}, _version(e, 1))
    store.put_campaign(doc)


ROLE_OF_MODE = {"baseline": "baseline", "explore": "candidate", "verify": "verify"}


def on_parent_sampled(store: Store, e: ev.ParentSampled) -> None:
    doc = _experiment(store, e, campaign_prio=3)
    v = _version(e, 3)
    _fact(doc, e)
    _set(doc, "role", ROLE_OF_MODE[e.mode], v)
    _set(doc, "stage", e.stage, v)
    _set(doc, "sampling", _body(e, "parent", "references") | {
        "event_id": e.event_id, "parent": {"experiment_id": e.parent.experiment_id, "name": e.parent.name},
        "reference_ids": [r.experiment_id for r in e.references]}, v)
    if e.mode in ("baseline", "verify"):   # trained unchanged: no parent in the archive's lineage
        if e.mode == "baseline":           # a zoo member
            _set(doc, "zoo", e.parent.name, v)
        else:                              # a promoted candidate, at the verification profile
            _set(doc, "verifies", e.parent.experiment_id, v)
        _set(doc, "name", e.parent.name, _version(e, 0))
        _set(doc, "code", e.parent.code, _version(e, 0))
        _set(doc, "motivation", e.parent.motivation, _version(e, 0))
    else:
        _set(doc, "parent_id", e.parent.experiment_id, v)
        _set(doc, "reference_ids", [r.experiment_id for r in e.references], v)
    _save(store, doc)


def on_experiment_promoted(store: Store, e: ev.ExperimentPromoted) -> None:
    """The verification experiment of a promoted candidate: its stage, its source and why it was chosen (the
    source's own document is not touched: the two stages are joined by `verifies` at query time)."""
    doc = _experiment(store, e, campaign_prio=3)
    v = _version(e, 3)
    _fact(doc, e)
    _set(doc, "role", "verify", v)
    _set(doc, "stage", "verify", v)
    _set(doc, "verifies", e.source_experiment_id, v)
    _set(doc, "promotion", _body(e) | {"event_id": e.event_id, "at": ts(e)}, v)
    if e.name:
        _set(doc, "name", e.name, _version(e, 0))
    _save(store, doc)


def on_replication_assessed(store: Store, e: ev.ReplicationAssessed) -> None:
    """A candidate's verdict on held-out seeds (services/archive/replication.py), kept on the candidate."""
    doc = _experiment(store, e, campaign_prio=3)
    _set(doc, "replication", _body(e) | {"event_id": e.event_id, "at": ts(e)}, _version(e, 3))
    _save(store, doc)


def on_experiment_imported(store: Store, e: ev.ExperimentImported) -> None:
    doc = _experiment(store, e, campaign_prio=3)
    v = _version(e, 3)
    _fact(doc, e)
    for field, value in (("role", "imported"), ("name", e.name), ("code", e.code), ("motivation", e.motivation),
                         ("parent_id", e.parent_id), ("origin", "imported")):
        _set(doc, field, value, v)
    _set(doc, "imported", {"source": e.source, "source_index": e.source_index, "fitness": _finite(e.fitness),
                           "summary": e.summary, "event_id": e.event_id}, v)
    _set(doc, "results", {"final_loss": e.final_loss, "benchmark": e.benchmark, "metrics": e.metrics,
                          "source": e.source}, _version(e, 0))
    _save(store, doc)


def on_experiment_abandoned(store: Store, e: ev.ExperimentAbandoned) -> None:
    doc = _experiment(store, e, campaign_prio=1)
    _fact(doc, e)
    _set(doc, "abandoned", _body(e) | {"at": ts(e), "event_id": e.event_id}, _version(e, 1))
    _save(store, doc)


def on_proposal_created(store: Store, e: ev.ProposalCreated) -> None:
    doc = _experiment(store, e, campaign_prio=2)
    _fact(doc, e)
    v = _version(e, 2, e.revision, e.attempt)
    for field, value in (("name", e.name), ("code", e.code), ("motivation", e.motivation), ("design", e.design),
                         ("origin", e.origin), ("code_hash", e.code_hash)):
        _set(doc, field, value, v)
    _set(doc, "role", e.role, _version(e, 2))
    evidence = (e.checks or {}).get("evidence") or {}   # the checks' count of the program (size-matched search)
    if "params" in evidence:
        _set(doc, "size", {k: evidence.get(k) for k in ("params", "layer_params", "flops_per_token")}, v)
    if e.parent_id is not None:
        _set(doc, "parent_id", e.parent_id, _version(e, 2))
        _set(doc, "reference_ids", list(e.reference_ids), _version(e, 2))
    store.put_attempt(_body(e) | {"event_id": e.event_id, "experiment_id": e.experiment_id, "occurred_at": ts(e),
                                  "kind": "proposal"})
    _save(store, doc)


def on_proposal_rejected(store: Store, e: ev.ProposalRejected) -> None:
    doc = _experiment(store, e, campaign_prio=1)
    _fact(doc, e)
    store.put_attempt(_body(e) | {"event_id": e.event_id, "experiment_id": e.experiment_id, "occurred_at": ts(e),
                                  "kind": "rejected"})
    _save(store, doc)


def on_training_started(store: Store, e: ev.TrainingStarted) -> None:
    doc = _experiment(store, e, campaign_prio=1)
    _fact(doc, e)
    _set(doc, "training", _body(e) | {"at": ts(e), "event_id": e.event_id}, _version(e, 1, e.revision))
    _save(store, doc)


def on_training_progress(store: Store, e: ev.TrainingProgress) -> None:
    doc = _experiment(store, e, campaign_prio=1)
    _set(doc, "progress", _body(e) | {"at": ts(e)}, _version(e, 1, e.revision, e.step))
    _save(store, doc)


def on_training_failed(store: Store, e: ev.TrainingFailed) -> None:
    doc = _experiment(store, e, campaign_prio=1)
    _fact(doc, e)
    _set(doc, "failure", {"kind": e.kind, "error": e.error, "revision": e.revision, "at": ts(e),
                          "event_id": e.event_id}, _version(e, 1, e.revision))
    rec = _body(e, "kind") | {"failure_kind": e.kind}
    store.put_attempt(rec | {"event_id": e.event_id, "experiment_id": e.experiment_id, "occurred_at": ts(e),
                             "kind": "failure"})
    _save(store, doc)


def on_training_stopped(store: Store, e: ev.TrainingStopped) -> None:
    doc = _experiment(store, e, campaign_prio=1)
    _fact(doc, e)
    _set(doc, "stopped", _body(e) | {"at": ts(e), "event_id": e.event_id}, _version(e, 1, e.revision))
    _save(store, doc)


def on_results_ready(store: Store, e: ev.ResultsReady) -> None:
    doc = _experiment(store, e, campaign_prio=1)
    _fact(doc, e)
    _set(doc, "results", _body(e) | {"at": ts(e), "event_id": e.event_id}, _version(e, 1, e.revision))
    _set(doc, "name", e.name, _version(e, 1, e.revision))
    _set(doc, "role", e.role, _version(e, 1))
    _save(store, doc)


def on_score_assigned(store: Store, e: ev.ScoreAssigned) -> None:
    doc = _experiment(store, e, campaign_prio=0)
    _fact(doc, e)
    rec = _body(e) | {"event_id": e.event_id, "experiment_id": e.experiment_id, "campaign_id": e.campaign_id,
                      "occurred_at": ts(e), "fitness": _finite(e.fitness)}
    store.put_score(rec)
    key = f"{e.campaign_id}/{e.scheme}"
    current = doc["_v"].get("scores/" + key)
    version = _version(e, 1)
    if current is None or current < version:
        doc["scores"][key] = {k: rec[k] for k in ("event_id", "scheme", "fitness", "loss_score", "benchmark_score",
                                                  "qualitative", "qualitative_judged", "significant", "error",
                                                  "rescore_of", "occurred_at")}
        doc["_v"]["scores/" + key] = version
        store.set_pool_entry(e.campaign_id, e.scheme, e.experiment_id, rec["fitness"])
    _save(store, doc)


def on_insights_stored(store: Store, e: ev.InsightsStored) -> None:
    doc = _experiment(store, e, campaign_prio=1)
    _fact(doc, e)
    _set(doc, "insights", _body(e) | {"at": ts(e), "event_id": e.event_id}, _version(e, 1))
    _save(store, doc)


def on_cognition_ingested(store: Store, e: ev.CognitionIngested) -> None:
    doc = store.get_cognition(e.cognition_id) or {"cognition_id": e.cognition_id, "_v": {}}
    if _set(doc, "entry", {"paper_key": e.paper_key, "title": e.title, "origin": e.origin,
                           "event_id": e.event_id}, _version(e, 1)):
        doc["title"] = e.title
    store.put_cognition(doc)


APPLY: dict[str, Callable[[Store, Any], None]] = {
    "CampaignStarted": on_campaign_started,
    "CampaignCompleted": on_campaign_completed,
    "ParentSampled": on_parent_sampled,
    "ExperimentPromoted": on_experiment_promoted,
    "ReplicationAssessed": on_replication_assessed,
    "ExperimentImported": on_experiment_imported,
    "ExperimentAbandoned": on_experiment_abandoned,
    "ProposalCreated": on_proposal_created,
    "ProposalRejected": on_proposal_rejected,
    "TrainingStarted": on_training_started,
    "TrainingProgress": on_training_progress,
    "TrainingFailed": on_training_failed,
    "TrainingStopped": on_training_stopped,
    "ResultsReady": on_results_ready,
    "ScoreAssigned": on_score_assigned,
    "InsightsStored": on_insights_stored,
    "CognitionIngested": on_cognition_ingested,
}
assert set(APPLY) == set(ev.EVENT_TYPES), "every event type needs a projection"


def apply(store: Store, event: ev.Event, *, local: bool = False) -> bool:
    """Apply one event; False when its event_id was already applied (nothing changes).

    `local=True`: the archive's own output applied before publication (kept pending until the
    log returns it, see `Store.pending_local`). The caller commits (`store.transaction()`).
    """
    if store.is_processed(event.event_id):
        if not local:
            store.confirm(event.event_id)
        return False
    APPLY[event.type](store, event)
    store.mark_processed(event.event_id, event.type, ts(event),
                         local_payload=event.model_dump_json() if local else None)
    return True


def digest(store: Store) -> str:
    """SHA-256 of the whole read model in canonical JSON (sorted keys, rows sorted by key).

    Everything the projection stores counts, the set of applied event ids included; only the
    pending-publication bookkeeping (a property of the live process, not of the log) is left out.
    """
    h = hashlib.sha256()
    for table, rows in store.dump().items():
        h.update(table.encode())
        for row in rows:
            h.update(json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode())
            h.update(b"\n")
    return h.hexdigest()
