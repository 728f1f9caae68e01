"""Re-scoring: recompute every experiment's fitness from stored results, without retraining.

    new = rescore(results, old_scores, weights={"loss": 1, "benchmark": 2, "qualitative": 0}, scheme="bench-heavy")

Each new ScoreAssigned names its `scheme` and the old score it recomputes (`rescore_of`); old
scores stay in the log, so several weightings coexist and the archive can rank by any of them.
The qualitative component is reused from the old score (no new LLM call); the quantitative ones
are recomputed from the ResultsReady metrics against the baseline:
- `baseline_id` given: that experiment's result is the baseline for every result;
- otherwise the baseline the old score used, else the campaign's earliest valid baseline result
  of the same profile (the judge's own rule when the campaign's preferred baseline is unknown).
Event ids are deterministic in (result, scheme, weights, baseline): re-running a rescore
publishes nothing new downstream.
"""
from __future__ import annotations

import json

from schemas import events as ev
from lab.judging import fitness as F
from lab.judging.score import Qualitative, require_qualitative, score_fields, usable_as_baseline


def _order(e: ev.Event) -> tuple:
    return (e.occurred_at, e.event_id)


def latest_per_experiment(results: list[ev.ResultsReady]) -> dict[str, ev.ResultsReady]:
    latest: dict[str, ev.ResultsReady] = {}
    for r in sorted(results, key=_order):
        latest[r.experiment_id] = r
    return latest


def _old_score_for(scores: list[ev.ScoreAssigned]) -> ev.ScoreAssigned | None:
    """The score a rescore refers to: the most recent original score, else the most recent one."""
    if not scores:
        return None
    originals = [s for s in scores if s.rescore_of is None]
    return max(originals or scores, key=_order)


def _qualitative_from(scores: list[ev.ScoreAssigned]) -> Qualitative | None:
    judged = [s for s in scores if s.qualitative_judged and s.qualitative is not None]
    if not judged:
        return None
    s = max(judged, key=_order)
    return Qualitative(score=s.qualitative, detail={**s.qualitative_detail, "reused_from": s.event_id})


def rescore(results: list[ev.ResultsReady], old_scores: list[ev.ScoreAssigned],
            weights: dict[str, float] | None = None, baseline_id: str | None = None, scheme: str = "rescore",
            seed_noise: dict[str, dict[str, float]] | None = None) -> list[ev.ScoreAssigned]:
    weights = {k: float(v) for k, v in (weights or F.PAPER_WEIGHTS).items()}
    latest = latest_per_experiment(results)
    by_experiment: dict[str, list[ev.ScoreAssigned]] = {}
    for s in old_scores:
        by_experiment.setdefault(s.experiment_id, []).append(s)

    fixed = None
    if baseline_id is not None:
        fixed = latest.get(baseline_id) or next((r for r in results if r.event_id == baseline_id), None)
        if fixed is None:
            raise ValueError(f"baseline {baseline_id!r} is not among the results")
    default_baseline: dict[tuple[str, str], ev.ResultsReady] = {}
    for r in sorted(results, key=_order):
        if r.role == "baseline" and usable_as_baseline(r):
            default_baseline.setdefault((r.campaign_id, r.profile), r)

    discriminator = f"rescore:{scheme}:{json.dumps(weights, sort_keys=True)}:{baseline_id or ''}"
    judged_campaigns = {s.campaign_id for s in old_scores if s.qualitative_judged}  # their scale has 3 components
    out = []
    for exp_id, result in latest.items():
        scores = by_experiment.get(exp_id, [])
        old = _old_score_for(scores)
        baseline = fixed
        if baseline is None and old is not None and old.baseline_experiment_id in latest:
            baseline = latest[old.baseline_experiment_id]
        if baseline is None:
            baseline = default_baseline.get((result.campaign_id, result.profile))
        noise = F.resolve_noise(result.profile, seed_noise)
        fields = score_fields(result, baseline, qualitative=_qualitative_from(scores), weights=weights,
                              noise=noise, scheme=scheme, note=f"rescore ({scheme}) of stored results, no retraining")
        if weights.get("qualitative") and result.campaign_id in judged_campaigns and fields.get("qualitative") is None:
            fields = require_qualitative(fields, "no judged qualitative score to reuse")  # one scale (scale.py)
        out.append(result.caused(ev.ScoreAssigned, producer="judge", discriminator=discriminator,
                                 rescore_of=old.event_id if old else None, **fields))
    return out


def ranking(scores: list[ev.ScoreAssigned]) -> list[tuple[str, float]]:
    """(experiment_id, fitness), best first; error scores are left out."""
    ranked = [(s.experiment_id, s.fitness) for s in scores if s.fitness is not None]
    return sorted(ranked, key=lambda t: (-t[1], t[0]))
