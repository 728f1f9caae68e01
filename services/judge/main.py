"""Wiring of the judge: ResultsReady -> ScoreAssigned. `python -m services.judge.main`."""
from __future__ import annotations

import functools

from schemas import events as ev
from services.common.bus import Service
from services.common.settings import Settings
from services.judge import handlers
from services.judge.state import JudgeState


def make_llm(settings: Settings):
    """The shared LLM client when one is configured, else None (offline: quantitative fitness only)."""
    if not settings.llm_configured:
        return None
    from services.common.llm import LLMClient

    return LLMClient(settings)


def build(settings: Settings | None = None) -> Service:
    svc = Service("judge", settings)
    state = JudgeState(svc.settings.data_dir / "judge.sqlite")
    svc.on(ev.ResultsReady, functools.partial(handlers.on_results_ready, state=state, llm=make_llm(svc.settings),
                                              seed_noise=svc.settings.judge_seed_noise))
    # separate groups: remembering code and campaigns never waits behind an LLM call
    svc.on(ev.ProposalCreated, functools.partial(handlers.on_proposal_created, state=state), group="judge-proposals")
    svc.on(ev.CampaignStarted, functools.partial(handlers.on_campaign_started, state=state), group="judge-campaigns")
    return svc


if __name__ == "__main__":
    build().run()
