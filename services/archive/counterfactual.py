"""Counterfactual replay: what would this campaign have decided under another fitness weighting
or parent policy? Computed from the log alone: no training, no LLM, nothing published.

Scores are recomputed from the stored results with the judge's `rescore` (same formula, new
weights). Every exploration ParentSampled records the pool the archive saw (`draw["pool"]`, best
first) and is seeded from the campaign seed and its ordinal; the counterfactual re-ranks exactly
that pool under the new scores and asks the (possibly different) policy for its draw with the same
random stream. With unchanged weights and policy this reproduces every recorded decision, which
the tests check. Limits: the pool is the recorded top 50; experiments the archive had ranked below
it are not reconsidered, and children sampled under the counterfactual are not invented (the
replay compares decisions, it cannot train what was never trained).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from schemas import events as ev
from services.archive.policies import POLICIES, Member, rng_for


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


def _latest(scores: list[ev.ScoreAssigned]) -> dict[str, ev.ScoreAssigned]:
    out: dict[str, ev.ScoreAssigned] = {}
    for s in sorted(scores, key=lambda s: (s.occurred_at, s.event_id)):
        out[s.experiment_id] = s
    return out


def _ranking(fitness: dict[str, float | None]) -> list[tuple[str, float]]:
    return sorted(((e, f) for e, f in fitness.items() if f is not None), key=lambda t: (-t[1], t[0]))


def _rerank(pool_ids: list[str], fitness: dict[str, float | None], children: Counter) -> list[Member]:
    """The recorded pool under new scores: scored members best first, then unscored (roots) as recorded."""
    scored = sorted((i for i in pool_ids if fitness.get(i) is not None), key=lambda i: (-fitness[i], i))
    rest = [i for i in pool_ids if fitness.get(i) is None]
    return [Member(i, rank, fitness.get(i), children[i]) for rank, i in enumerate(scored + rest, start=1)]


def counterfactual(events: list[ev.Event], campaign_id: str, *, weights: dict[str, float] | None = None,
                   policy: str | None = None, policy_params: dict | None = None,
                   scheme: str = "counterfactual") -> Counterfactual:
    from lab.judging.rescore import rescore

    mine = sorted((e for e in events if e.campaign_id == campaign_id), key=lambda e: (e.occurred_at, e.event_id))
    started = next((e for e in mine if isinstance(e, ev.CampaignStarted)), None)
    if started is None:
        raise ValueError(f"campaign {campaign_id!r} has no CampaignStarted in the log")
    policy = policy or started.policy
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; known: {', '.join(POLICIES)}")
    params = started.policy_params if policy_params is None else policy_params
    original_scheme = (started.config or {}).get("scheme", "paper")
    # the verification stage of a two-stage campaign is measured at another profile, and a replication run (issue 24)
    # measures its candidate again: neither is ranked with the explored
    verify = {e.experiment_id for e in mine if isinstance(e, ev.ExperimentPromoted)
              or (isinstance(e, ev.ParentSampled) and (e.stage == "verify" or e.mode == "verify"))}
    mine = [e for e in mine if e.experiment_id not in verify]
    scores = [e for e in mine if isinstance(e, ev.ScoreAssigned) and e.scheme == original_scheme]
    before = {e: s.fitness for e, s in _latest(scores).items()}
    if weights is not None:
        results = [e for e in mine if isinstance(e, ev.ResultsReady)]
        after = {e: s.fitness for e, s in _latest(rescore(results, scores, weights, scheme=scheme)).items()}
    else:
        after, scheme = before, original_scheme
    out = Counterfactual(campaign_id, scheme, policy, _ranking(before), _ranking(after))
    for e in mine:
        if isinstance(e, (ev.ProposalCreated, ev.ResultsReady)):
            out.names.setdefault(e.experiment_id, e.name)
        elif isinstance(e, ev.ParentSampled):
            out.names.setdefault(e.parent.experiment_id, e.parent.name)
    children: Counter = Counter()
    sampled = sorted((e for e in mine if isinstance(e, ev.ParentSampled) and e.mode == "explore"),
                     key=lambda e: int(e.draw.get("ordinal", 0)))
    for e in sampled:
        pool_ids = e.draw.get("pool")
        if pool_ids:
            ordinal = int(e.draw.get("ordinal", 0))
            pool = _rerank(pool_ids, after, children)
            draw = POLICIES[policy](pool, rng_for(int(started.seed), ordinal), params or {})
            out.decisions.append(Decision(e.experiment_id, ordinal, e.parent.experiment_id,
                                          draw.parent.experiment_id))
        children[e.parent.experiment_id] += 1
    return out
