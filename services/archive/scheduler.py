"""What the archive decides next, as a pure function of the read model: `schedule(store, campaign_id)`.

The campaign runs in two phases (three with two-stage promotion):
1. Baselines: on CampaignStarted, one ParentSampled(mode="baseline") per `baselines` entry (the zoo
   member's code, trained unchanged). Roots (imported experiments) join the pool as they are.
2. Candidates, once every baseline has ended: keep `concurrency` candidates in flight; each time
   one ends, sample the next, until `budget` candidates have been sampled; when all have ended,
   CampaignCompleted. A campaign with spending limits (`config["budget"]`, services/archive/budget.py)
   samples no candidate whose estimated cost, on top of what is spent and in flight, would pass a limit;
   once nothing is in flight it completes with the limit as its reason. With `config["replicate"]` (issue 24,
   services/archive/replication.py), a candidate significant after its first run is re-trained on held-out seeds
   (ParentSampled(mode="verify") at the same profile, slots before new candidates) and judged (ReplicationAssessed).
3. Verification (two-stage promotion, only with `config["promotion"]`: `archlab run --verify-profile P
   --promote-top K`), once exploration has ended: `promote` publishes one ExperimentPromoted per
   chosen candidate (services/archive/promotion.py: the top K by fitness among the candidates significant
   over seed noise) and the campaign's first baseline again at P (ParentSampled(mode="baseline",
   stage="verify")); once that baseline has ended, `verification_stage` samples the promoted runs
   (ParentSampled(mode="verify") of the promoted ids, `concurrency` in flight); when all have ended,
   CampaignCompleted. With nothing to promote
   (no candidate significant) the campaign completes at once and its reason says so.

"Ended" is the lifecycle's `ended` (lab/lifecycle.py): InsightsStored (with the ResultsReady and ScoreAssigned it follows,
whatever order the topics deliver them in) or ExperimentAbandoned. A TrainingFailed is not an end by
itself: the debugger either revises (a new ProposalCreated) or gives up, and giving up is an
ExperimentAbandoned. An experiment that is scored but never analysed keeps its slot in flight.

Ids are deterministic: baseline `<campaign>-base-<zoo name>`, candidate `<campaign>-c<ordinal:04d>`,
verification runs `<campaign>-verify-<explored id>` (its baseline `<campaign>-verify-<campaign>-base-<name>`),
and the ParentSampled / ExperimentPromoted event_id derives from the campaign id and the experiment id. A restarted or
replayed archive therefore never fills the same slot twice, and a repeated decision is one fact.
"""
from __future__ import annotations

from typing import Callable

from lab.lifecycle import Lifecycle
from schemas import events as ev
from services.archive import budget as spending
from services.archive import promotion, replication, sizing
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
    fields.setdefault("profile", p.get("profile", "cpu-tiny"))
    fields.setdefault("seed", int(p.get("seed", 0)))   # a replication run has its own held-out seed
    return ev.ParentSampled(
        event_id=ev.derived_id(campaign["campaign_id"], "ParentSampled", experiment_id),
        campaign_id=campaign["campaign_id"], experiment_id=experiment_id, causation_id=p["event_id"],
        producer=PRODUCER,
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

    # -- phase 3 under way: exploration is closed for good (its end is recorded on the promotions)
    if promotion.settings(p) is not None:
        promoted = promoted_docs(store, campaign_id)
        if promoted:
            return verification_stage(store, campaign, promoted)

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
    # replication (replication.py): verdicts first, alone (the pool and promotion read them; their echo from the log
    # wakes the scheduler again), then the held-out runs of significant candidates, in slots before new candidates
    rep = replication.plan(store, campaign)
    if rep.verdicts:
        return rep.verdicts
    in_flight += rep.in_flight
    for want in rep.wanted:
        over = spent.would_exceed(extra=len(out) + 1) if spent else None
        if over or in_flight >= concurrency:
            break
        out.append(_sampled(campaign, want.experiment_id, mode="verify", parent=snapshot(store, want.source),
                            seed=want.seed, policy=p.get("policy", "topk-uniform"),
                            draw={"phase": "replicate", "source": want.source["experiment_id"], "replicate": want.k,
                                  "of": replication.replicates(p), "seed": want.seed}))
        in_flight += 1
    ceiling = sizing.ceiling(store, campaign)   # size-matched search: the largest model a proposal may have
    while sampled < budget and in_flight < concurrency and not over:
        over = spent.would_exceed(extra=len(out) + 1) if spent else None
        if over:
            break
        draw = sample_parent(store, campaign, sampled)
        if draw is None:
            roots_missing = any(store.get_experiment(r) is None for r in p.get("roots") or [])
            if in_flight == 0 and not roots_missing:   # imported roots may still be on their way
                return explored(store, campaign, sampled + len(p.get("baselines") or []),
                                "no parent to sample: every baseline failed and there are no roots", zoo_source)
            break
        out.append(_sampled(campaign, candidate_id(campaign_id, sampled), mode="explore",
                            parent=snapshot(store, draw.parent.doc),
                            references=[snapshot(store, m.doc) for m in draw.references],
                            policy=draw.info["policy"], draw=draw.info, **ceiling))
        sampled += 1
        in_flight += 1
    if over and not out and in_flight == 0:
        return explored(store, campaign, sampled + len(p.get("baselines") or []), over, zoo_source)
    if not out and sampled >= budget and in_flight == 0:
        return explored(store, campaign, budget + len(p.get("baselines") or []), "budget spent", zoo_source)
    return out


def explored(store: Store, campaign: Record, experiments: int, reason: str,
             zoo_source: Callable[[str], str] = _zoo_source) -> list[ev.Event]:
    """Exploration has ended (`reason`): the campaign completes, or, with promotion, its verification stage
    begins with the promotion decision."""
    settings = promotion.settings(campaign["params"])
    if settings is None:
        return [_completed(campaign, experiments, reason)]
    return promote(store, campaign, settings, experiments, reason, zoo_source)


# ---------------------------------------------------------------- phase 3: verification (two-stage promotion)
def verify_baseline_id(campaign_id: str, name: str) -> str:
    return promotion.verify_id(campaign_id, baseline_id(campaign_id, name))


def _reference_baseline(params: dict) -> str:
    return (params.get("baselines") or ["deltanet"])[0]   # the judge's reference: the campaign's first baseline


def promoted_docs(store: Store, campaign_id: str) -> list[Record]:
    """The campaign's verification runs (ExperimentPromoted), by promotion rank."""
    return sorted((d for d in store.experiments(campaign_id) if Lifecycle.of(d).has("promoted")),
                  key=lambda d: ((d.get("promotion") or {}).get("rank") or 0, d["experiment_id"]))


def _promoted(campaign: Record, source: Record, pick: promotion.Promotion, settings: dict, experiments: int,
              reason: str) -> ev.ExperimentPromoted:
    cid = campaign["campaign_id"]
    exp_id = promotion.verify_id(cid, pick.experiment_id)
    return ev.ExperimentPromoted(
        event_id=ev.derived_id(cid, "ExperimentPromoted", exp_id), campaign_id=cid, experiment_id=exp_id,
        causation_id=campaign["params"]["event_id"], producer=PRODUCER, source_experiment_id=pick.experiment_id,
        name=source.get("name") or pick.experiment_id, explore_profile=campaign["params"].get("profile", ""),
        verify_profile=settings["verify_profile"], rank=pick.rank, eligible=pick.eligible, top_k=settings["top_k"],
        fitness=pick.fitness, significant=pick.significant, require_significant=settings["require_significant"],
        why=pick.why, exploration=reason, explored=experiments)


def promote(store: Store, campaign: Record, settings: dict, experiments: int, reason: str,
            zoo_source: Callable[[str], str] = _zoo_source) -> list[ev.Event]:
    """The promotion decision, taken once (applied at once, so every later call sees it): one ExperimentPromoted
    per chosen candidate and the reference baseline at the verification profile; or, with nothing to promote,
    CampaignCompleted saying why."""
    cid, p = campaign["campaign_id"], campaign["params"]
    profile, k = settings["verify_profile"], settings["top_k"]
    picks = promotion.promotion_candidates(store, cid, k, require_significant=settings["require_significant"])
    if not picks:
        why = ("no scored candidate" if not settings["require_significant"] else
               "no candidate confirmed on held-out seeds" if replication.replicates(p) else
               "no candidate significant over seed noise")
        return [_completed(campaign, experiments, f"{reason}; nothing promoted to {profile}: {why}")]
    if spending.limits(p):   # the second stage is new work too: promote only what fits (the baseline + the runs)
        spent, over = spending.spend(store, campaign, ended, profile=profile), None
        while picks and (over := spent.would_exceed(extra=1 + len(picks))):
            picks = picks[:-1]
        if not picks:
            return [_completed(campaign, experiments, f"{reason}; nothing promoted to {profile}: {over}")]
    name = _reference_baseline(p)
    parent = ev.ProgramSnapshot(experiment_id=f"zoo:{name}", name=name, code=zoo_source(name))
    return [*(_promoted(campaign, store.get_experiment(pk.experiment_id) or {}, pk, settings, experiments, reason)
              for pk in picks),
            _sampled(campaign, verify_baseline_id(cid, name), mode="baseline", stage="verify", profile=profile,
                     parent=parent, policy=p.get("policy", "topk-uniform"),
                     draw={"phase": "verify-baseline", "zoo": name, "promoted": len(picks)})]


def verification_stage(store: Store, campaign: Record, promoted: list[Record]) -> list[ev.Event]:
    """After the promotion: once the verification profile's baseline has ended, the promoted runs
    (`concurrency` in flight), then CampaignCompleted."""
    cid, p = campaign["campaign_id"], campaign["params"]
    first = promoted[0].get("promotion") or {}
    profile, reason = first.get("verify_profile"), first.get("exploration") or "exploration ended"
    experiments = int(first.get("explored") or 0) + 1 + len(promoted)
    base = store.get_experiment(verify_baseline_id(cid, _reference_baseline(p)))
    if base is None or not ended(base):
        return []       # the baseline at the verification profile is still running
    if not Lifecycle.of(base).has("results") and not any(Lifecycle.of(d).has("sampled") for d in promoted):
        return [_completed(campaign, experiments - len(promoted),
                           f"{reason}; {len(promoted)} promoted to {profile}, none trained: the baseline "
                           f"{base.get('name') or ''} failed at {profile}, so nothing there could be scored")]
    concurrency = max(1, int(p.get("concurrency", 1)))
    in_flight = sum(1 for d in promoted if Lifecycle.of(d).has("sampled") and not ended(d))
    out: list[ev.Event] = []
    for d in promoted:
        if in_flight >= concurrency:
            break
        src = store.get_experiment(d.get("verifies") or "")
        if Lifecycle.of(d).has("sampled") or src is None:   # (a source is always known: it was scored)
            continue
        info = d.get("promotion") or {}
        out.append(_sampled(campaign, d["experiment_id"], mode="verify", stage="verify", profile=profile,
                            parent=snapshot(store, src), policy=p.get("policy", "topk-uniform"),
                            draw={"phase": "verify", "source": src["experiment_id"], "rank": info.get("rank"),
                                  "why": info.get("why")}))
        in_flight += 1
    if out or in_flight:
        return out
    return [_completed(campaign, experiments, f"{reason}; top {len(promoted)} promoted to {profile}, "
                                             f"{verification_outcome(promoted)}")]


def verification_outcome(promoted: list[Record]) -> str:
    """How the promoted runs ended, said so that "0 verified" is never left unexplained: a verification run is
    subject to early stopping like any run (worse than the verification baseline at a rung), or can fail."""
    verified = sum(1 for d in promoted if Lifecycle.of(d).has("results"))
    stopped = [d for d in promoted if Lifecycle.of(d).has("stopped")]
    failed = len(promoted) - verified - len(stopped)
    why = []
    if stopped:
        steps = ", ".join(str((d.get("stopped") or {}).get("step") or "?") for d in stopped)
        why.append(f"{len(stopped)} stopped early (worse than the baseline at a rung, step {steps})")
    if failed:
        why.append(f"{failed} ended without a result (see `archlab show` of each)")
    return f"{verified} verified" + (f": {'; '.join(why)}" if why else "")
