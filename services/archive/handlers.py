"""The archive's one handler: project the event, then let the scheduler decide what comes next.

The scheduler's decisions are applied to the store *before* they are returned for publication
(in the same transaction as the input), so the next input already sees them and a slot is never
sampled twice. Until the log returns them they are "pending"; they are published again at
startup and when an input is redelivered (a publish that failed after the commit is repaired;
the ids are deterministic, so a second copy is dropped downstream).
"""
from __future__ import annotations

from typing import Callable

from schemas import codec
from schemas import events as ev
from services.archive import scheduler
from services.archive.projection import apply
from services.archive.storage.base import Store

GLOBAL_CAMPAIGN = "global"   # CognitionIngested: no campaign to schedule
# Only these facts can open a slot or end a phase (see scheduler.py); the rest just update the model.
# ResultsReady and ScoreAssigned too: an experiment ends with its insights *and* the result and score they follow,
# which may be read after the insights (topics are not ordered with each other; lab/lifecycle.py `ended`).
# ReplicationAssessed: the scheduler decides a verdict alone and decides what follows when it reads it back.
SCHEDULING_TRIGGERS = (ev.CampaignStarted, ev.InsightsStored, ev.ExperimentAbandoned, ev.ExperimentImported,
                       ev.ResultsReady, ev.ScoreAssigned, ev.TrainingStopped, ev.ReplicationAssessed)


def pending_events(store: Store) -> list[ev.Event]:
    return [codec.decode(payload) for payload in store.pending_local()]


async def on_event(event: ev.Event, *, store: Store,
                   zoo_source: Callable[[str], str] | None = None) -> list[ev.Event]:
    """Any event of any topic -> the archive's new decisions (ParentSampled, ExperimentPromoted, CampaignCompleted)."""
    kwargs = {"zoo_source": zoo_source} if zoo_source else {}
    with store.transaction():
        fresh = apply(store, event)
        # A redelivered input may mean our last publish failed after the commit: publish pending
        # decisions again. Our own decisions coming back are confirmations, not redeliveries.
        redelivered = not fresh and event.producer != scheduler.PRODUCER
        republish = pending_events(store) if redelivered else []
        decided: list[ev.Event] = []
        for campaign_id in _campaigns_concerned(store, event):
            for e in scheduler.schedule(store, campaign_id, **kwargs):
                apply(store, e, local=True)
                decided.append(e)
    return republish + decided


async def on_event_replica(event: ev.Event, *, store: Store) -> list[ev.Event]:
    """A replica's handler: the projection alone (what a replay does, live); no decision, nothing published."""
    with store.transaction():
        apply(store, event)
    return []


def _campaigns_concerned(store: Store, event: ev.Event) -> list[str]:
    """The event's own campaign, and for an imported experiment the campaigns waiting for it as a root."""
    if not isinstance(event, SCHEDULING_TRIGGERS):
        return []
    concerned = [] if event.campaign_id == GLOBAL_CAMPAIGN else [event.campaign_id]
    if isinstance(event, ev.ExperimentImported):
        concerned += [c["campaign_id"] for c in store.campaigns() if c["campaign_id"] != event.campaign_id
                      and event.experiment_id in ((c.get("params") or {}).get("roots") or [])]
    return concerned
