"""The judge's event handlers: plain async functions that return the events to publish.

ResultsReady -> ScoreAssigned (always exactly one, an error score when no fitness is defined).
ProposalCreated, CampaignStarted -> remembered (code for the LLM judge; the campaign's preferred baseline).
"""
from __future__ import annotations

import structlog

from schemas import events as ev
from services.common.llm import LLMError
from lab.judging import fitness as F
from services.judge.qualitative import judge_qualitative
from lab.judging.score import score_fields
from services.judge.scale import QUALITATIVE_MISSING, judge_late, mark_pending, require_qualitative
from services.judge.state import JudgeState

log = structlog.get_logger("judge")


async def on_results_ready(event: ev.ResultsReady, *, state: JudgeState, llm=None,
                           seed_noise: dict[str, dict[str, float]] | None = None) -> list[ev.Event]:
    state.add_result(event)
    baseline = state.baseline(event.campaign_id, event.profile)
    noise = F.resolve_noise(event.profile, state.campaign_noise(event.campaign_id), seed_noise)

    qualitative, note = None, ""
    quantitative = score_fields(event, baseline, noise=noise)
    if llm is not None and quantitative["fitness"] is not None:
        try:
            qualitative = await judge_qualitative(llm, event, baseline, state.proposal(event.experiment_id, event.revision),
                                                  state.proposal(baseline.experiment_id))
        except LLMError as e:  # unavailable, invalid output, request failed
            note = f"LLM judge failed ({type(e).__name__}: {e}); qualitative not judged"
            log.warning("judge.llm_failed", error=str(e))
    fields = score_fields(event, baseline, qualitative=qualitative, noise=noise, note=note) if llm is not None \
        else quantitative
    late: list[ev.Event] = []
    if llm is not None and qualitative is None:  # one fitness scale per campaign (scale.py)
        fields = require_qualitative(fields, note or "not judged")
        if fields["fitness"] is None and (fields.get("error") or "").startswith(QUALITATIVE_MISSING):
            mark_pending(state, event)
    elif llm is not None and qualitative is not None:  # the LLM answers: results left without one are scored late
        late = await judge_late(
            state, event, lambda r: judge_qualitative(llm, r, baseline, state.proposal(r.experiment_id, r.revision),
                                                      state.proposal(baseline.experiment_id)),
            lambda r, q: score_fields(r, baseline, qualitative=q, noise=noise))
    score = event.caused(ev.ScoreAssigned, producer="judge", **fields)
    log.info("judge.scored", fitness=score.fitness, error=score.error, role=event.role, late=len(late))
    return [score, *late]


async def on_proposal_created(event: ev.ProposalCreated, *, state: JudgeState) -> None:
    state.add_proposal(event)


async def on_campaign_started(event: ev.CampaignStarted, *, state: JudgeState) -> None:
    state.add_campaign(event)
