"""The analyst's event handlers: plain async functions that return the events to publish.

ProposalCreated, ResultsReady, ScoreAssigned are remembered; whichever completes the triple
(proposal + results + original score) of an experiment triggers its analysis -> InsightsStored.
The InsightsStored id is derived from the results and score ids, so whichever event triggered
it, and however often it is redelivered, the same analysis has the same id. An experiment counts
as analysed once its InsightsStored is read back from the log (publish first, then mark). Rescores
(ScoreAssigned with rescore_of) do not trigger a new analysis.
"""
from __future__ import annotations

import structlog

from schemas import events as ev
from services.analyst.analysis import analyse, build_context
from services.analyst.state import AnalystState

log = structlog.get_logger("analyst")


async def _maybe_analyse(experiment_id: str, *, state: AnalystState, llm=None, base=None) -> list[ev.Event]:
    ctx = build_context(state, experiment_id)
    if ctx is None:
        return []
    results, score = ctx.child.results, ctx.child.score
    event_id = ev.derived_id(results.event_id, score.event_id, "InsightsStored")
    if state.analysed(experiment_id) == event_id:
        return []
    fields = await analyse(ctx, llm=llm, base=base)
    insights = ev.InsightsStored(event_id=event_id, campaign_id=results.campaign_id, experiment_id=experiment_id,
                                 causation_id=score.event_id, producer="analyst", **fields)
    # not marked here: the mark comes from the published InsightsStored itself (on_insights_stored), so a
    # publish that fails leaves the trigger unmarked and its redelivery analyses again (same event_id)
    log.info("analyst.insights", offline=insights.offline, cognitions=len(insights.cognition_ids))
    return [insights]


async def on_proposal_created(event: ev.ProposalCreated, *, state: AnalystState, llm=None, base=None) -> list[ev.Event]:
    state.add_proposal(event)
    return await _maybe_analyse(event.experiment_id, state=state, llm=llm, base=base)


async def on_results_ready(event: ev.ResultsReady, *, state: AnalystState, llm=None, base=None) -> list[ev.Event]:
    state.add_results(event)
    return await _maybe_analyse(event.experiment_id, state=state, llm=llm, base=base)


async def on_score_assigned(event: ev.ScoreAssigned, *, state: AnalystState, llm=None, base=None) -> list[ev.Event]:
    if not state.add_score(event):
        return []
    return await _maybe_analyse(event.experiment_id, state=state, llm=llm, base=base)


async def on_insights_stored(event: ev.InsightsStored, *, state: AnalystState, **_) -> list[ev.Event]:
    """The analysis is in the log: only now is the experiment marked analysed."""
    state.mark_analysed(event.experiment_id, event.event_id)
    return []
