"""Two-stage promotion (issue 15, point 3), the decision part: which explored candidates go on to the
verification profile, and how the two stages' rankings agree. Pure functions of the read model.

Not wired yet: the scheduler does not publish the promotions and the leaderboard/report do not show the
second stage (see the issue). What is here is the rule they will use:

- `promotion_candidates(store, campaign_id, k)`: the campaign's candidates that are scored, whose score is
  significant over the profile's seed noise (`ScoreAssigned.significant`, the judge's test), ranked by fitness
  (ties by experiment id), the top `k`, each with the reason it was chosen.
- `stage_agreement(pairs)`: Kendall's tau-b between exploration and verification fitness of the promoted.
"""
from __future__ import annotations

from dataclasses import dataclass

from services.archive.storage.base import Store


@dataclass(frozen=True)
class Promotion:
    experiment_id: str
    fitness: float
    rank: int           # 1 = best among the significant
    eligible: int       # how many were significant
    why: str


def verify_id(campaign_id: str, experiment_id: str) -> str:
    """The id of the verification run of an explored experiment."""
    return f"{campaign_id}-verify-{experiment_id}"


def promotion_candidates(store: Store, campaign_id: str, k: int) -> list[Promotion]:
    eligible = []
    for doc in store.experiments(campaign_id):
        score = doc.get("score") or {}
        if doc.get("role") != "candidate" or doc.get("fitness") is None or score.get("significant") is not True:
            continue
        eligible.append((float(doc["fitness"]), doc["experiment_id"]))
    eligible.sort(key=lambda fe: (-fe[0], fe[1]))
    n = len(eligible)
    return [Promotion(e, f, r, n, f"rank {r} of {n} candidates significant over seed noise, fitness {f:.4f} "
                                  f"(top {k} promoted)")
            for r, (f, e) in enumerate(eligible[:max(0, k)], start=1)]


def stage_agreement(pairs: list[tuple[float, float]]) -> float | None:
    """Kendall's tau-b of (exploration fitness, verification fitness); None with fewer than two pairs."""
    from lab.tools.validity import kendall_tau_b

    pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
    if len(pairs) < 2:
        return None
    return kendall_tau_b([a for a, _ in pairs], [b for _, b in pairs])
