"""The researcher's event handlers: plain async functions that return the events to publish.

on_parent_sampled runs the attempts loop of one experiment:
    propose (with the feedback of every earlier rejection) -> static checks -> novelty -> sandboxed checks
each failed attempt is a ProposalRejected (discriminator = attempt); the loop ends with ProposalCreated or,
after max_attempts, ExperimentAbandoned(reason="attempts_exhausted", history=[...]).
Baselines (mode "baseline") and verification runs (mode "verify": a promoted candidate re-trained at the
campaign's verification profile) pass the parent's code through unchanged after the sanity checks (at the
sampled profile: a program too big for the verification profile is rejected there, and abandoned).
Nothing here is process-local state: several researchers can share the work in one consumer group.
"""
from __future__ import annotations

import asyncio
from typing import Any, Mapping

import structlog

from schemas import events as ev
from services.common.llm import LLMInvalidOutput, LLMUnavailable, merge_usage
from lab.checks import CheckOutcome
from lab.program import code_hash
from services.researcher.planner import Proposal, known_design

PRODUCER = "researcher"
log = structlog.get_logger("researcher")


def _checks_record(outcome: CheckOutcome) -> dict[str, Any]:
    return {"passed": outcome.ok, "timings_s": {k: round(v, 4) for k, v in outcome.timings.items()},
            "evidence": outcome.evidence}


async def _sanity(checker, code: str, profile: str, ceiling: dict[str, int] | None = None) -> CheckOutcome:
    return await asyncio.to_thread(checker.check, code, profile, ceiling)


def size_ceiling(event: ev.ParentSampled) -> dict[str, int] | None:
    """The campaign's parameter ceiling relative to its baseline (size-matched search, lab/judging/size.py); None
    when the archive set none. Programs trained unchanged (baselines, verification, replication) have none."""
    if not event.max_params:
        return None
    return {"max_params": event.max_params, "baseline_params": event.baseline_params or 0}


async def on_parent_sampled(event: ev.ParentSampled, *, proposer, checker, novelty,
                            producer: str = PRODUCER) -> list[ev.Event]:
    """`proposer`: one proposer, or a mapping {"offline": ..., "llm": ...} chosen by event.proposer."""
    if event.mode == "baseline":
        return await _baseline(event, checker=checker, novelty=novelty, producer=producer)
    if event.mode == "verify":
        return await _verify(event, checker=checker, producer=producer)
    if isinstance(proposer, Mapping):
        proposer = proposer.get(event.proposer)
    if proposer is None:
        reason = "llm_unavailable" if event.proposer == "llm" else "other"
        fb = f"no '{event.proposer}' proposer is configured in this researcher"
        return [event.caused(ev.ProposalRejected, producer=producer, discriminator=1, attempt=1, reason=reason,
                             feedback=fb),
                event.caused(ev.ExperimentAbandoned, producer=producer, reason=reason, attempts=1,
                             history=[{"attempt": 1, "reason": reason, "feedback": fb}])]
    out: list[ev.Event] = []
    feedback: list[str] = []
    history: list[dict[str, Any]] = []

    def reject(attempt: int, reason: str, text: str, proposal: Proposal | None = None, **fields) -> None:
        code = proposal.code if proposal else ""
        out.append(event.caused(
            ev.ProposalRejected, producer=producer, discriminator=attempt, attempt=attempt, reason=reason,
            feedback=text, name=proposal.name if proposal else "", motivation=proposal.motivation if proposal else "",
            code=code, code_hash=code_hash(code) if code else "",
            usage=merge_usage(proposal.usage if proposal else None, fields.pop("usage", None)), **fields))
        feedback.append(f"[{reason}] {proposal.name + ': ' if proposal else ''}{text}")
        history.append({"attempt": attempt, "reason": reason, "name": proposal.name if proposal else "",
                        "feedback": text[:500]})
        log.info("proposal_rejected", attempt=attempt, reason=reason, name=proposal.name if proposal else "")

    for attempt in range(1, event.max_attempts + 1):
        try:
            proposal = await proposer.propose(event, attempt, list(feedback))
        except LLMUnavailable as e:
            reject(attempt, "llm_unavailable", str(e))
            continue
        except LLMInvalidOutput as e:
            reject(attempt, "llm_invalid", f"the planner's answer was not valid: {e.errors[-1][:400]}",
                   usage=e.usage, evidence={"raw": e.raw[:2000]})
            continue
        static = checker.static(proposal.code)
        if not static.ok:
            reject(attempt, static.reason, static.feedback, proposal, evidence=static.evidence)
            continue
        verdict = await novelty.check(campaign_id=event.campaign_id, experiment_id=event.experiment_id,
                                      name=proposal.name, motivation=proposal.motivation, code=proposal.code)
        if verdict.duplicate:
            reject(attempt, "duplicate", verdict.feedback, proposal, similar=verdict.similar,
                   evidence=verdict.evidence, usage=verdict.usage)
            continue
        outcome = await _sanity(checker, proposal.code, event.profile, size_ceiling(event))
        if not outcome.ok:
            reject(attempt, outcome.reason or "other", outcome.feedback, proposal, evidence=_checks_record(outcome))
            continue
        await novelty.remember(campaign_id=event.campaign_id, experiment_id=event.experiment_id, name=proposal.name,
                               motivation=proposal.motivation, code=proposal.code, origin=proposal.origin)
        out.append(event.caused(
            ev.ProposalCreated, producer=producer, name=proposal.name, code=proposal.code,
            motivation=proposal.motivation, role="candidate", attempt=attempt, parent_id=event.parent.experiment_id,
            reference_ids=[r.experiment_id for r in event.references], origin=proposal.origin, design=proposal.design,
            code_hash=code_hash(proposal.code), profile=event.profile, seed=event.seed,
            checks={**_checks_record(outcome), "novelty": {"similar_top": verdict.evidence.get("top_similarity"),
                                                            "judge": verdict.evidence.get("judge")},
                    "rejected_attempts": len(history), **({"routing": proposal.route} if proposal.route else {})},
            usage=merge_usage(proposal.usage, verdict.usage)))
        log.info("proposal_created", attempt=attempt, name=proposal.name)
        return out
    out.append(event.caused(ev.ExperimentAbandoned, producer=producer, reason="attempts_exhausted",
                            attempts=event.max_attempts, history=history))
    return out


async def _unchanged_program_refused(event: ev.ParentSampled, *, checker, producer: str, what: str,
                                     reason: str) -> tuple[list[ev.Event], CheckOutcome]:
    """Checks for a program trained as it is (a baseline, a promoted program): the events that refuse it (a
    rejection and the abandonment `reason`), or none; and the checks' outcome."""
    parent = event.parent
    outcome = checker.static(parent.code)
    if outcome.ok:
        outcome = await _sanity(checker, parent.code, event.profile)
    if outcome.ok:
        return [], outcome
    fb = f"{what} '{parent.name}' failed the sanity checks: {outcome.feedback}"
    return [event.caused(ev.ProposalRejected, producer=producer, discriminator=1, attempt=1,
                         reason=outcome.reason or "other", feedback=fb, name=parent.name, code=parent.code,
                         evidence=_checks_record(outcome)),
            event.caused(ev.ExperimentAbandoned, producer=producer, reason=reason, attempts=1,
                         history=[{"attempt": 1, "reason": outcome.reason, "feedback": fb[:500]}])], outcome


async def _baseline(event: ev.ParentSampled, *, checker, novelty, producer: str) -> list[ev.Event]:
    parent = event.parent
    refused, outcome = await _unchanged_program_refused(event, checker=checker, producer=producer, what="baseline",
                                                        reason="baseline_failed_checks")
    if refused:
        return refused
    await novelty.remember(campaign_id=event.campaign_id, experiment_id=event.experiment_id, name=parent.name,
                           motivation=parent.motivation or parent.name, code=parent.code, origin="zoo")
    design = known_design(parent)
    return [event.caused(
        ev.ProposalCreated, producer=producer, name=parent.name, code=parent.code,
        motivation=parent.motivation or f"baseline: the zoo's {parent.name}, trained unchanged", role="baseline",
        origin="zoo", attempt=1, parent_id=parent.experiment_id, design=design,
        code_hash=code_hash(parent.code), profile=event.profile, seed=event.seed,
        checks=_checks_record(outcome))]


async def _verify(event: ev.ParentSampled, *, checker, producer: str) -> list[ev.Event]:
    """The promoted program, unchanged, at the verification profile. No novelty check: it is the same program on
    purpose. No parent in the lineage (`parent_id` None): the explored original is a different measurement (another
    profile), named in the motivation and in the archive's `verifies`; its fitness is against the profile's
    own baseline."""
    parent = event.parent
    refused, outcome = await _unchanged_program_refused(event, checker=checker, producer=producer,
                                                        what=f"promoted (at {event.profile})",
                                                        reason="verify_failed_checks")
    if refused:
        return refused
    # the same path re-trains a significant candidate on a held-out seed (replication, issue 24)
    why = (f"replication on held-out seed {event.seed} of {parent.name} ({parent.experiment_id}), significant "
           f"after its first run" if event.draw.get("phase") == "replicate" else
           f"verification at {event.profile} of {parent.name} ({parent.experiment_id}), promoted from exploration")
    return [event.caused(
        ev.ProposalCreated, producer=producer, name=parent.name, code=parent.code,
        motivation=why + (f": {parent.motivation}" if parent.motivation else ""),
        role="verify", origin="promoted", attempt=1, parent_id=None, design=parent.design,
        code_hash=code_hash(parent.code), profile=event.profile, seed=event.seed, checks=_checks_record(outcome))]


async def on_proposal_created(event: ev.ProposalCreated, *, novelty) -> list[ev.Event]:
    """Learn every accepted proposal (other researchers', baselines, debugger revisions) for novelty."""
    await novelty.remember(campaign_id=event.campaign_id, experiment_id=event.experiment_id, name=event.name,
                           motivation=event.motivation, code=event.code, origin=event.origin)
    return []
