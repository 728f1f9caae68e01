"""What the archive decides next, as a pure function of the read model: `schedule(store, campaign_id)`.

The campaign runs in two phases:
1. Baselines: on CampaignStarted, one ParentSampled(mode="baseline") per `baselines` entry (the zoo
   member's code, trained unchanged). Roots (imported experiments) join the pool as they are.
2. Candidates, once every baseline has ended: keep `concurrency` candidates in flight; each time
   one ends, sample the next, until `budget` candidates have been sampled; when all have ended,
   CampaignCompleted. A campaign with spending limits (`config["budget"]`, services/archive/budget.py)
   samples no candidate whose estimated cost, on top of what is spent and in flight, would pass a limit;
   once nothing is in flight it completes with the limit as its reason.

"Ended" is the lifecycle's `ended` (lab/lifecycle.py): InsightsStored or ExperimentAbandoned. A TrainingFailed is not an end by
itself: the debugger either revises (a new ProposalCreated) or gives up, and giving up is an
ExperimentAbandoned. An experiment that is scored but never analysed keeps its slot in flight.

Ids are deterministic: baseline `<campaign>-base-<zoo name>`, candidate `<campaign>-c<ordinal:04d>`,
and the ParentSampled event_id derives from the campaign id and the experiment id. A restarted or
replayed archive therefore never fills the same slot twice, and a repeated decision is one fact.
"""
from __future__ import annotations

from typing import Callable

from lab.lifecycle import Lifecycle
from schemas import events as ev
from services.archive import budget as spending
from services.archive.pool import sample_parent
from services.archive.storage.base import Record, Store

PRODUCER = "archive"


def baseline_id(campaign_id: str, name: str) -> str:
    return f"{campaign_id}-base-{name}"


def candidate_id(campaign_id: str, ordinal: int) -> str:
    return f"{campaign_id}-c{ordinal:04d}"


def ended(doc: Record | None) -> bool:
    return doc is not None and Lifecycle.of(doc).ended


def _zoo_source(name: str) -> str:
    from lab.zoo.registry import zoo_source  # lazy: the engineer's package is heavy

    return zoo_source(name)


def snapshot(store: Store, doc: Record) -> ev.ProgramSnapshot:
    """A pool member as the researcher sees it: code, results and what was learned."""
    results = doc.get("results") or {}
    insights = doc.get("insights") or {}
    cognitions = []
    for cid in insights.get("cognition_ids") or []:
        cog = store.get_cognition(cid)
        cognitions.append((cog or {}).get("title") or cid)
    metrics = {k: v for k, v in (results.get("metrics") or {}).items() if isinstance(v, (int, float))}
    return ev.ProgramSnapshot(
        experiment_id=doc["experiment_id"], name=doc.get("name") or doc["experiment_id"], code=doc.get("code") or "",
        motivation=doc.get("motivation") or "", design=doc.get("design"), fitness=doc.get("fitness"),
        final_loss=results.get("final_loss"), benchmark=results.get("benchmark"), metrics=metrics,
        analysis=insights.get("experience") or insights.get("synthesis") or "", cognitions=cognitions)


def _sampled(campaign: Record, experiment_id: str, **fields) -> ev.ParentSampled:
    p = campaign["params"]
    return ev.ParentSampled(
        event_id=ev.derived_id(campaign["campaign_id"], "ParentSampled", experiment_id),
        campaign_id=campaign["campaign_id"], experiment_id=experiment_id, causation_id=p["event_id"],
        producer=PRODUCER, profile=p.get("profile", "cpu-tiny"), seed=int(p.get("seed", 0)),
        proposer=p.get("proposer", "offline"), max_attempts=int(p.get("max_attempts", 10)),
        max_revisions=int(p.get("max_revisions", 3)), **fields)


def _completed(campaign: Record, experiments: int, reason: str) -> ev.CampaignCompleted:
    cid = campaign["campaign_id"]
    return ev.CampaignCompleted(event_id=ev.derived_id(cid, "CampaignCompleted"), campaign_id=cid,
                                experiment_id=cid, causation_id=campaign["params"]["event_id"], producer=PRODUCER,
                                experiments=experiments, reason=reason)


def schedule(store: Store, campaign_id: str, *, zoo_source: Callable[[str], str] = _zoo_source) -> list[ev.Event]:
    """The events the archive publishes now for this campaign (empty when nothing is due)."""
    campaign = store.get_campaign(campaign_id)
    if not campaign or not campaign.get("params") or campaign.get("completed"):
        return []
    p = campaign["params"]
    out: list[ev.Event] = []

    # -- phase 1: measured baselines
    baselines_running = False
    for name in p.get("baselines") or []:
        exp_id = baseline_id(campaign_id, name)
        doc = store.get_experiment(exp_id)
        if doc is None or not Lifecycle.of(doc).has("sampled"):
            parent = ev.ProgramSnapshot(experiment_id=f"zoo:{name}", name=name, code=zoo_source(name))
            out.append(_sampled(campaign, exp_id, mode="baseline", parent=parent,
                                policy=p.get("policy", "topk-uniform"), draw={"phase": "baseline", "zoo": name}))
        elif not ended(doc):
            baselines_running = True
    if out or baselines_running:
        return out

    # -- phase 2: candidates, `concurrency` in flight, `budget` in all
    budget, concurrency = int(p.get("budget", 0)), max(1, int(p.get("concurrency", 1)))
    sampled, in_flight = 0, 0
    while sampled < budget:
        doc = store.get_experiment(candidate_id(campaign_id, sampled))
        if doc is None or not Lifecycle.of(doc).has("sampled"):
            break
        in_flight += not ended(doc)
        sampled += 1
    limits = spending.limits(p)     # --max-llm-cost / --max-device-hours: no new work past them (budget.py)
    spent = spending.spend(store, campaign, ended) if limits else None
    over = None
    while sampled < budget and in_flight < concurrency:
        over = spent.would_exceed(extra=len(out) + 1) if spent else None
        if over:
            break
        draw = sample_parent(store, campaign, sampled)
        if draw is None:
            roots_missing = any(store.get_experiment(r) is None for r in p.get("roots") or [])
            if in_flight == 0 and not roots_missing:   # imported roots may still be on their way
                return [_completed(campaign, sampled + len(p.get("baselines") or []),
                                   "no parent to sample: every baseline failed and there are no roots")]
            break
        out.append(_sampled(campaign, candidate_id(campaign_id, sampled), mode="explore",
                            parent=snapshot(store, draw.parent.doc),
                            references=[snapshot(store, m.doc) for m in draw.references],
                            policy=draw.info["policy"], draw=draw.info))
        sampled += 1
        in_flight += 1
    if over and not out and in_flight == 0:
        return [_completed(campaign, sampled + len(p.get("baselines") or []), over)]
    if not out and sampled >= budget and in_flight == 0:
        out.append(_completed(campaign, budget + len(p.get("baselines") or []), "budget spent"))
    return out
