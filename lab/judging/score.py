"""One ScoreAssigned from one ResultsReady, its baseline and (optionally) the LLM's qualitative judgement.

Shared by the live judge (handlers.py) and re-scoring (rescore.py), so both follow one formula.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from schemas import events as ev
from lab.judging import fitness as F


@dataclass
class Qualitative:
    """The LLM judge's verdict: `score` in [0, 1], criteria and rationale in `detail`."""
    score: float
    detail: dict[str, Any] = field(default_factory=dict)
    usage: ev.Usage | None = None


def score_fields(result: ev.ResultsReady, baseline: ev.ResultsReady | None, *,
                 qualitative: Qualitative | None = None, weights: dict[str, float] | None = None,
                 noise: F.SeedNoise | None = None, scheme: str = "paper", note: str = "") -> dict[str, Any]:
    """The fields of a ScoreAssigned (without envelope). Errors give fitness=None and `error`, never a score."""
    weights = dict(weights or F.PAPER_WEIGHTS)
    out: dict[str, Any] = {"fitness": None, "scheme": scheme, "weights": weights, "note": note}
    if baseline is None:
        out["error"] = (f"no measured baseline for campaign {result.campaign_id!r}, profile {result.profile!r} yet "
                        f"(the archive runs baselines before candidates)")
        return out
    out.update(baseline_experiment_id=baseline.experiment_id, baseline_loss=baseline.final_loss,
               baseline_benchmark=baseline.benchmark)
    try:
        ls = F.loss_score(result.final_loss, baseline.final_loss, noise.loss if noise else None)
        bs = F.benchmark_score(result.benchmark, baseline.benchmark, noise.benchmark if noise else None)
    except F.FitnessError as e:
        out["error"] = str(e)
        return out
    out.update(loss_score=ls, benchmark_score=bs)
    components = {"loss": ls, "benchmark": bs, "qualitative": None}
    notes = [note] if note else []
    if noise is not None:
        notes.append(f"scales from seed noise: loss {noise.loss}, benchmark {noise.benchmark} (x{F.NOISE_MULTIPLE:g})")
    if qualitative is not None:
        components["qualitative"] = qualitative.score
        out.update(qualitative=qualitative.score, qualitative_judged=True, qualitative_detail=qualitative.detail,
                   usage=qualitative.usage)
    elif weights.get("qualitative"):
        notes.append("qualitative not judged (no LLM): fitness is the mean of the loss and benchmark components")
    try:
        fit, used = F.combine(components, weights)
    except F.FitnessError as e:
        out["error"] = str(e)
        return out
    out.update(fitness=fit, weights=used, note="; ".join(notes))
    out["significant"] = F.significant(baseline.final_loss - result.final_loss, result.benchmark - baseline.benchmark,
                                       noise)
    return out


def usable_as_baseline(r: ev.ResultsReady) -> bool:
    vals = (r.final_loss, r.benchmark)
    return all(v is not None and not math.isnan(v) and not math.isinf(v) and v > 0 for v in vals)


QUALITATIVE_MISSING = "qualitative_missing"


def require_qualitative(fields: dict[str, Any], why: str) -> dict[str, Any]:
    """The ScoreAssigned fields of a result whose LLM judgement is missing while the campaign's scale has it:
    no fitness, an explicit error, the quantitative components kept for a later rescore."""
    if fields.get("fitness") is None:  # already an error (no baseline, invalid metrics): that error stands
        return fields
    out = dict(fields)
    out.update(fitness=None, significant=None, qualitative=None, qualitative_judged=False,
               error=f"{QUALITATIVE_MISSING}: the LLM judge gave no qualitative score ({why}); this campaign's "
                     "fitness has three components, so a 2-of-3 mean is not ranked; it is scored late when the "
                     "judge's LLM answers again)",
               note="; ".join(n for n in (fields.get("note"), "not ranked until scored late") if n))
    return out
