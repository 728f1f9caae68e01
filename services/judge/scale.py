"""One fitness scale per campaign: a fitness is only ranked against fitnesses of the same components.

A judge with an LLM scores (loss, benchmark, qualitative); an offline judge scores (loss, benchmark) for
every result of the campaign. What must never happen is the mix: when the LLM judge fails for one result
(unreachable after every retry, or invalid answers), a mean of the two quantitative components would
rank a 2-of-3 fitness against 3-of-3 fitnesses, and a fitness near 0.5 from two components is not the same
quantity as one from three. Such a result gets an explicit error state instead: fitness None, the
quantitative components kept, `error` saying which component is missing and why. It is not ranked and
not sampled as a parent until it is scored late: the judge keeps it pending, and the next time its LLM
answers for a result of the same campaign and profile it judges the pending ones too and publishes their
late ScoreAssigned (same scheme, `rescore_of` naming the error score, which it replaces in the archive).
"""
from __future__ import annotations

from typing import Any, Awaitable, Callable

from schemas import events as ev
from lab.judging.score import QUALITATIVE_MISSING, require_qualitative  # noqa: F401 - re-exported for the judge
from services.common.llm import LLMError

# ---------------------------------------------------------------- scored late
# a pending result: judged later by the handling of `trigger` (an event id), whose late score is kept in `score`,
# so a redelivery of that trigger publishes the same late score again (the publish may have failed);
# the table, qualitative_pending, is in the judge's state (services/judge/state.py)


def mark_pending(state, result: ev.ResultsReady) -> None:
    """Remember a result whose qualitative judgement failed: the judge asks again later (judge_late)."""
    state.db.execute("INSERT OR IGNORE INTO qualitative_pending VALUES (?,?,?,NULL,NULL)",
                     (result.event_id, result.campaign_id, result.profile))


def _pending(state, trigger: str, campaign_id: str, profile: str) -> list[tuple[ev.ResultsReady, str | None]]:
    rows = state.db.query(
        "SELECT r.body, p.score FROM qualitative_pending p JOIN results r ON r.event_id = p.result_event_id "
        "WHERE p.campaign_id=? AND p.profile=? AND (p.trigger IS NULL OR p.trigger=?) "
        "ORDER BY r.occurred_at, r.event_id", (campaign_id, profile, trigger))
    return [(ev.ResultsReady.model_validate_json(body), score) for body, score in rows]


async def judge_late(state, trigger: ev.Event, judge: Callable[[ev.ResultsReady], Awaitable[Any]],
                     fields_for: Callable[[ev.ResultsReady, Any], dict[str, Any]]) -> list[ev.ScoreAssigned]:
    """Once the LLM judge answers again (for `trigger`, a result), the results of the same campaign and profile
    (same baseline and noise) left without a qualitative score are judged and scored late: a ScoreAssigned that
    replaces the error score (`rescore_of` names it). One that fails again stays pending."""
    out = []
    for result, stored in _pending(state, trigger.event_id, trigger.campaign_id, trigger.profile):
        if stored is not None:  # this trigger was handled before: the same late score again
            out.append(ev.ScoreAssigned.model_validate_json(stored))
            continue
        try:
            qualitative = await judge(result)
        except LLMError:
            break  # the LLM is failing again: keep the rest for later
        fields = fields_for(result, qualitative)
        if fields.get("fitness") is None:
            continue
        fields["note"] = "; ".join(n for n in (fields.get("note"), "scored late: the LLM judge failed at first") if n)
        score = result.caused(ev.ScoreAssigned, producer="judge", discriminator="late",
                              rescore_of=ev.derived_id(result.event_id, "ScoreAssigned", ""), **fields)
        state.db.execute("UPDATE qualitative_pending SET trigger=?, score=? WHERE result_event_id=?",
                         (trigger.event_id, score.model_dump_json(), result.event_id))
        out.append(score)
    return out
