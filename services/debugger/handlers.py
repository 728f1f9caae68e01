"""The debugger's handlers: one async function per event; each returns the events to publish."""
from __future__ import annotations

from schemas import events as ev
from services.debugger.repair import Debugger


async def on_proposal_created(event: ev.ProposalCreated, *, debugger: Debugger) -> list[ev.Event]:
    """Remember the proposal: a failure's revision needs its name, motivation, profile and seed."""
    debugger.memory.remember_proposal(event)
    return []


async def on_parent_sampled(event: ev.ParentSampled, *, debugger: Debugger) -> list[ev.Event]:
    """Remember the campaign's revision budget for this experiment."""
    debugger.memory.remember_budget(event.experiment_id, event.max_revisions)
    return []


async def on_training_failed(event: ev.TrainingFailed, *, debugger: Debugger) -> list[ev.Event]:
    """A revised ProposalCreated (revision n+1), or ExperimentAbandoned."""
    return await debugger.handle_failure(event)
