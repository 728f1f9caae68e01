"""Wiring of the researcher: ParentSampled -> ProposalRejected* -> ProposalCreated | ExperimentAbandoned.

    python -m services.researcher.main

Several researcher processes share ParentSampled in the group "researcher". Every ProposalCreated (from
any researcher, the baselines, the debugger) is also read in the group "researcher-novelty" and upserted
into the shared novelty memory (the vector store at settings.milvus_uri, one record per experiment).
"""
from __future__ import annotations

import functools

from schemas import events as ev
from services.common import endpoints
from services.common.bus import Service
from services.common.settings import Settings
from services.researcher import handlers
from lab.checks import SanityChecker
from services.researcher.context import ContextBuilder
from services.researcher.novelty import NoveltyChecker
from services.researcher.planner import LLMPlanner, OfflineProposer
from services.researcher.routing import PlannerRouter



def build_deps(settings: Settings, *, milvus_uri: str | None = None) -> dict:
    """The handler's dependencies: proposers, checker and novelty (used by main and by tests)."""
    from services.common.embeddings import Embedder
    from services.common.vectors import NOVELTY_COLLECTION, VectorStore

    embedder = Embedder.from_settings(settings)
    store = VectorStore(milvus_uri or endpoints.milvus_uri(settings), NOVELTY_COLLECTION, embedder.dim)
    llm = router = None
    proposers = {"offline": OfflineProposer()}
    if settings.llm_configured:
        from services.common.llm import LLMClient
        llm = LLMClient(settings)
        if settings.llm_models_planner:
            router = PlannerRouter(settings.llm_models_planner, settings.data_dir / "researcher" / "routing.sqlite")
        proposers["llm"] = LLMPlanner(llm, ContextBuilder(settings.data_dir / "researcher" / "summaries.sqlite"),
                                      router)
    return {"proposer": proposers, "checker": SanityChecker(), "novelty": NoveltyChecker(embedder, store, llm=llm),
            "router": router}


def build(settings: Settings | None = None, *, milvus_uri: str | None = None) -> Service:
    svc = Service("researcher", settings)
    deps = build_deps(svc.settings, milvus_uri=milvus_uri)
    router = deps.pop("router")
    svc.on(ev.ParentSampled, functools.partial(handlers.on_parent_sampled, **deps))
    svc.on(ev.ProposalCreated, functools.partial(handlers.on_proposal_created, novelty=deps["novelty"]),
           group="researcher-novelty")
    if router is not None:  # the bandit's statistics: a projection of proposals, rejections and scores
        for cls, observe in ((ev.ProposalCreated, router.observe_proposal),
                             (ev.ProposalRejected, router.observe_rejection), (ev.ScoreAssigned, router.observe_score)):
            svc.on(cls, functools.partial(_observe, observe), group="researcher-routing")
    return svc


async def _observe(observe, event) -> list:
    observe(event)
    return []


if __name__ == "__main__":
    build().run()
