"""Wiring of the analyst: ProposalCreated + ResultsReady + ScoreAssigned -> InsightsStored.
`python -m services.analyst.main`.

The three subscriptions share one consumer group ("analyst"). The join state is an SQLite file
under data_dir, so analyst processes sharing a data_dir see each other's proposals, results
and scores (parents and siblings live in other partitions).
"""
from __future__ import annotations

import functools

import structlog

from schemas import events as ev
from services.analyst import handlers
from services.analyst.state import AnalystState
from services.common.bus import Service
from services.common.settings import Settings

log = structlog.get_logger("analyst")


def make_llm(settings: Settings):
    if not settings.llm_configured:
        return None
    from services.common.llm import LLMClient

    return LLMClient(settings)


def make_cognition_base(settings: Settings):
    """The cognition base over the shared Milvus; None (analysis without cognitions) if unreachable."""
    from services.common.cognition_base import CognitionBase

    try:
        return CognitionBase.from_settings(settings)
    except Exception as e:  # noqa: BLE001 - the analysis is still worth publishing without retrieval
        log.warning("analyst.no_cognition_base", error=str(e))
        return None


def build(settings: Settings | None = None) -> Service:
    svc = Service("analyst", settings)
    state = AnalystState(svc.settings.data_dir / "analyst.sqlite")
    deps = dict(state=state, llm=make_llm(svc.settings), base=make_cognition_base(svc.settings))
    svc.on(ev.ProposalCreated, functools.partial(handlers.on_proposal_created, **deps))
    svc.on(ev.ResultsReady, functools.partial(handlers.on_results_ready, **deps))
    svc.on(ev.ScoreAssigned, functools.partial(handlers.on_score_assigned, **deps))
    svc.on(ev.InsightsStored, functools.partial(handlers.on_insights_stored, state=state))  # publish, then mark
    return svc


if __name__ == "__main__":
    build().run()
