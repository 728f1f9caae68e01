"""The engineer's events: what a claim, a heartbeat, a result and a failure look like.

Plain functions, no Kafka: the worker (worker.py) calls them and publishes what they return.

Deterministic ids where a fact must exist once: ResultsReady and TrainingFailed of a run have
event_id = derived_id(experiment, type, revision), so even two engineers that both finished the
same run (a lease lost at the very end) publish the same fact, which every idempotent consumer
keeps once. Claims and heartbeats have fresh ids: each is a distinct fact.
"""
from __future__ import annotations

from typing import Any

from schemas import events as ev
from schemas.events import derived_id
from lab.program import code_hash
from lab.sandbox import SandboxResult

PRODUCER = "engineer"
MAX_CURVE_POINTS = 200
COMPILE_ERRORS = {"SyntaxError", "IndentationError", "TabError", "ContractError", "ImportError",
                  "ModuleNotFoundError", "ParamBudgetExceeded"}
# sandbox kind -> TrainingFailed kind (exceptions are refined by failure_kind)
SANDBOX_KINDS = {"timeout": "timeout", "memory": "memory", "forbidden": "forbidden", "crashed": "crashed",
                 "exception": "runtime_error", "unconfined": "infrastructure"}


def thin_curve(curve: list, max_points: int = MAX_CURVE_POINTS) -> list[tuple[int, float]]:
    """At most `max_points` evenly spaced points, the first and the last always kept."""
    points = [(int(s), float(v)) for s, v in curve]
    if len(points) <= max_points:
        return points
    step = (len(points) - 1) / (max_points - 1)
    return [points[round(i * step)] for i in range(max_points)]


def claim_event(proposal: ev.ProposalCreated, *, engineer_id: str, lease_s: float, device: str,
                takeover_of: str | None = None, resumed_from_step: int = 0,
                calibrated_step_s: float | None = None, wall_limit_s: float | None = None) -> ev.TrainingStarted:
    return ev.TrainingStarted(
        campaign_id=proposal.campaign_id, experiment_id=proposal.experiment_id, causation_id=proposal.event_id,
        producer=PRODUCER, revision=proposal.revision, proposal_event_id=proposal.event_id,
        engineer_id=engineer_id, lease_s=lease_s, profile=proposal.profile, device=device,
        resumed_from_step=resumed_from_step, takeover_of=takeover_of, calibrated_step_s=calibrated_step_s,
        wall_limit_s=wall_limit_s)


def heartbeat_event(claim: ev.TrainingStarted, progress: dict[str, Any], *, total_steps: int,
                    checkpoint_every: int, elapsed_s: float) -> ev.TrainingProgress:
    step = int(progress.get("step") or 0)
    # the runner checkpoints every `checkpoint_every` steps and at the end
    ckpt = step if step == total_steps else (step // checkpoint_every) * checkpoint_every
    return ev.TrainingProgress(
        campaign_id=claim.campaign_id, experiment_id=claim.experiment_id, causation_id=claim.event_id,
        producer=PRODUCER, revision=claim.revision, engineer_id=claim.engineer_id, step=step,
        total_steps=total_steps, loss=progress.get("loss"), tokens_per_s=progress.get("tokens_per_s"),
        elapsed_s=round(elapsed_s, 3), checkpoint_step=max(ckpt, claim.resumed_from_step) or None)


def results_event(proposal: ev.ProposalCreated, result: dict[str, Any], *, engineer_id: str,
                  causation_id: str) -> ev.ResultsReady:
    steps = int(result.get("steps") or 0)
    train_s = float(result.get("train_s") or 0.0)
    return ev.ResultsReady(
        event_id=derived_id(proposal.experiment_id, "ResultsReady", proposal.revision),
        campaign_id=proposal.campaign_id, experiment_id=proposal.experiment_id, causation_id=causation_id,
        producer=PRODUCER, name=proposal.name, role=proposal.role, revision=proposal.revision,
        engineer_id=engineer_id, profile=result.get("profile") or proposal.profile, seed=proposal.seed,
        code_hash=proposal.code_hash or code_hash(proposal.code),
        loss_curve=thin_curve(result.get("loss_curve") or []), final_loss=result.get("final_loss"),
        metrics={k: float(v) for k, v in (result.get("metrics") or {}).items()}, benchmark=result.get("benchmark"),
        params=int(result.get("params") or 0), tokens=int(result.get("tokens") or 0), steps=steps,
        train_s=train_s, eval_s=float(result.get("eval_s") or 0.0),
        tokens_per_s=float(result.get("tokens_per_s") or 0.0), device=result.get("device") or "cpu",
        peak_mem_mb=result.get("peak_mem_mb"),
        step_time_s=result.get("step_cost_s") or ((train_s / steps) if steps else None),
        probe_s=result.get("probe_s"), weights_from=result.get("weights_from"))


def stopped_event(proposal: ev.ProposalCreated, stopped: dict[str, Any], *, engineer_id: str, causation_id: str,
                  wall_s: float) -> ev.TrainingStopped:
    """Early stopping at a rung (`stopped`: rung, step, total_steps, heldout_loss, baseline_loss, seed_noise, noises)."""
    margin = stopped["heldout_loss"] - stopped["baseline_loss"]
    reason = (f"held-out loss {stopped['heldout_loss']:.4f} at step {stopped['step']} of {stopped['total_steps']} "
              f"(rung {stopped['rung']}) is {margin:+.4f} from the baseline's {stopped['baseline_loss']:.4f}: worse "
              f"by more than {stopped['noises']:g} seed noises of {stopped['seed_noise']:g}")
    return ev.TrainingStopped(
        event_id=derived_id(proposal.experiment_id, "TrainingStopped", proposal.revision),
        campaign_id=proposal.campaign_id, experiment_id=proposal.experiment_id, causation_id=causation_id,
        producer=PRODUCER, revision=proposal.revision, engineer_id=engineer_id, reason=reason, wall_s=wall_s,
        **{k: stopped[k] for k in ("rung", "step", "total_steps", "heldout_loss", "baseline_loss", "seed_noise",
                                   "noises")})


def failure_kind(res: SandboxResult, *, last_step: int, total_steps: int) -> tuple[str, str, dict]:
    """(TrainingFailed kind, error line, evidence) of a failed sandbox run of the runner."""
    error = (res.result or {}).get("error") if isinstance(res.result, dict) else None
    evidence: dict[str, Any] = {"sandbox_kind": res.kind, "returncode": res.returncode, "last_step": last_step,
                                "total_steps": total_steps, "cpu_s": res.cpu_s, "peak_rss_mb": res.peak_rss_mb}
    if res.violations:
        evidence["violations"] = [{k: v for k, v in x.items() if k != "stack"} for x in res.violations[:3]]
    if res.kind == "exception" and isinstance(error, dict):
        etype = error.get("type", "")
        message = f"{etype}: {error.get('message', '')}"
        if etype in ("TrainingStopped", "ChecksFailed", "ScoringFailed"):  # the monitor, a revision's checks,
            # the trusted scorer: too_slow | diverged | suspected_leak | compile_error | eval_error
            evidence.update(error.get("evidence") or {})
            return error.get("kind", "runtime_error"), message, evidence
        if etype in COMPILE_ERRORS and last_step == 0:
            return "compile_error", message, evidence
        if "lab/training/evaluate.py" in (error.get("traceback") or "") or (
                total_steps and last_step >= total_steps):
            return "eval_error", message, evidence
        return "runtime_error", message, evidence
    if res.returncode is None and res.kind == "crashed":
        return "infrastructure", res.error, evidence
    return SANDBOX_KINDS.get(res.kind, "crashed"), res.error or res.kind, evidence


def failure_event(proposal: ev.ProposalCreated, res: SandboxResult, *, engineer_id: str, causation_id: str,
                  last_step: int, total_steps: int) -> ev.TrainingFailed:
    kind, error, evidence = failure_kind(res, last_step=last_step, total_steps=total_steps)
    log_tail = (res.stdout_tail[-2000:] + "\n--- stderr ---\n" + res.stderr_tail[-4000:]).strip()
    return ev.TrainingFailed(
        event_id=derived_id(proposal.experiment_id, "TrainingFailed", proposal.revision),
        campaign_id=proposal.campaign_id, experiment_id=proposal.experiment_id, causation_id=causation_id,
        producer=PRODUCER, revision=proposal.revision, engineer_id=engineer_id, kind=kind, error=error[:2000],
        traceback=res.traceback[-12000:], log_tail=log_tail, evidence=evidence, wall_s=res.wall_s,
        code=proposal.code)
