"""Counterfactual replay: what would this campaign have decided under another fitness weighting
or parent policy? Computed from the log alone: no training, no LLM, nothing published.

The campaign's events are replayed in time order into a scratch store. Scores are recomputed
with the judge's `rescore` (each new score enters the stream right where the original one did),
and the campaign's scheme/policy are swapped. Before each recorded exploration ParentSampled,
the archive's own `sample_parent` is asked what it would draw at that moment; the answer is
compared with what was actually drawn. The leaderboard under the new scores is compared with
the original one.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from schemas import events as ev
from services.archive.pool import sample_parent
from services.archive.projection import apply
from services.archive.storage import SQLiteStore


@dataclass
class Decision:
    experiment_id: str
    ordinal: int
    actual_parent: str
    counterfactual_parent: str | None


@dataclass
class Counterfactual:
    campaign_id: str
    scheme: str
    policy: str
    original: list[tuple[str, float]]          # (experiment_id, fitness), best first
    counterfactual: list[tuple[str, float]]
    decisions: list[Decision] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)

    @property
    def agreement(self) -> float | None:
        if not self.decisions:
            return None
        return sum(d.actual_parent == d.counterfactual_parent for d in self.decisions) / len(self.decisions)

    def rank_changes(self) -> list[tuple[str, int | None, int | None]]:
        """(experiment_id, original rank, counterfactual rank), in counterfactual order."""
        before = {e: i for i, (e, _) in enumerate(self.original, 1)}
        after = {e: i for i, (e, _) in enumerate(self.counterfactual, 1)}
        order = [e for e, _ in self.counterfactual] + [e for e in before if e not in after]
        return [(e, before.get(e), after.get(e)) for e in order]

    def kendall_tau(self) -> float | None:
        """Kendall tau-a between the two rankings over the experiments both rank."""
        before = {e: i for i, (e, _) in enumerate(self.original)}
        common = [e for e, _ in self.counterfactual if e in before]
        n = len(common)
        if n < 2:
            return None
        concordant = sum(1 if before[common[i]] < before[common[j]] else -1
                         for i in range(n) for j in range(i + 1, n))
        return concordant / (n * (n - 1) / 2)


def _ranking(scores: dict[str, ev.ScoreAssigned]) -> list[tuple[str, float]]:
    ranked = [(e, s.fitness) for e, s in scores.items() if s.fitness is not None]
    return sorted(ranked, key=lambda t: (-t[1], t[0]))


def _latest(scores: list[ev.ScoreAssigned]) -> dict[str, ev.ScoreAssigned]:
    out: dict[str, ev.ScoreAssigned] = {}
    for s in sorted(scores, key=lambda s: (s.occurred_at, s.event_id)):
        out[s.experiment_id] = s
    return out


def counterfactual(events: list[ev.Event], campaign_id: str, *, weights: dict[str, float] | None = None,
                   policy: str | None = None, policy_params: dict | None = None,
                   scheme: str = "counterfactual") -> Counterfactual:
    from services.judge.rescore import rescore

    events = sorted(events, key=lambda e: (e.occurred_at, e.event_id))
    started = next((e for e in events if isinstance(e, ev.CampaignStarted) and e.campaign_id == campaign_id), None)
    if started is None:
        raise ValueError(f"campaign {campaign_id!r} has no CampaignStarted in the log")
    original_scheme = (started.config or {}).get("scheme", "paper")
    mine = [e for e in events if e.campaign_id == campaign_id]
    results = [e for e in mine if isinstance(e, ev.ResultsReady)]
    scores = [e for e in mine if isinstance(e, ev.ScoreAssigned) and e.scheme == original_scheme]
    if weights is not None:
        new_scores = rescore(results, scores, weights, scheme=scheme)
        active_scheme = scheme
    else:
        new_scores, active_scheme = [], original_scheme
    new_by_old = {s.rescore_of: s for s in new_scores if s.rescore_of}
    cf_started = started.model_copy(update={
        "policy": policy or started.policy,
        "policy_params": policy_params if policy_params is not None else started.policy_params,
        "config": {**(started.config or {}), "scheme": active_scheme},
    })
    result = Counterfactual(campaign_id, active_scheme, cf_started.policy, _ranking(_latest(scores)),
                            _ranking(_latest(new_scores)) if weights is not None else _ranking(_latest(scores)))
    with tempfile.TemporaryDirectory() as tmp, SQLiteStore(Path(tmp) / "cf.sqlite", bulk=True) as store:
        for e in events:
            if e is started:
                e = cf_started
            if isinstance(e, ev.ParentSampled) and e.campaign_id == campaign_id and e.mode == "explore":
                ordinal = int(e.draw.get("ordinal", len(result.decisions)))
                store.commit()
                draw = sample_parent(store, store.get_campaign(campaign_id), ordinal)
                result.decisions.append(Decision(e.experiment_id, ordinal, e.parent.experiment_id,
                                                 draw.parent.experiment_id if draw else None))
            if isinstance(e, (ev.ProposalCreated, ev.ResultsReady)) and e.campaign_id == campaign_id:
                result.names.setdefault(e.experiment_id, e.name)
            if isinstance(e, ev.ParentSampled) and e.mode == "baseline":
                result.names.setdefault(e.experiment_id, e.parent.name)
            apply(store, e)
            if isinstance(e, ev.ScoreAssigned) and e.event_id in new_by_old:
                apply(store, new_by_old[e.event_id])
    return result
