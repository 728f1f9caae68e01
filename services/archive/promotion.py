"""Two-stage promotion (issue 15, point 3): which explored candidates go on to the verification profile,
and how the two stages' rankings agree. Pure functions of the read model.

`archlab run --verify-profile P --promote-top K` puts `config["promotion"] = {"verify_profile": P,
"top_k": K, "require_significant": True, "seed_noise": {...}}` on CampaignStarted. When exploration has
ended, the scheduler (scheduler.py, `verification_stage`) asks `promotion_candidates` and publishes one
ExperimentPromoted per chosen candidate, with the reason; the verification runs are ordinary
experiments of the same campaign (stage "verify", role "verify"), trained, judged against the
verification profile's own baseline and analysed by the same services.

- `promotion_candidates(store, campaign_id, k)`: the campaign's exploration candidates that are scored, whose
  score is significant over the profile's seed noise (`ScoreAssigned.significant`, the judge's test; every
  scored candidate with `require_significant=False`), ranked by fitness (ties by experiment id), the top
  `k`, each with the reason it was chosen.
- `stage_agreement(pairs)`: Kendall's tau-b between exploration and verification fitness of the promoted.
- `two_stage(store, campaign_id)`: both stages side by side (leaderboard, `archlab show`, replay).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from services.archive import replication
from services.archive.storage.base import Record, Store


@dataclass(frozen=True)
class Promotion:
    experiment_id: str
    fitness: float
    rank: int           # 1 = best among the eligible
    eligible: int       # how many were eligible (significant, or scored when significance is not required)
    why: str
    significant: bool | None = None


def verify_id(campaign_id: str, experiment_id: str) -> str:
    """The id of the verification run of an explored experiment (and of the verification baseline:
    `verify_id(campaign, baseline_id(campaign, name))`)."""
    return f"{campaign_id}-verify-{experiment_id}"


def settings(params: dict | None) -> dict[str, Any] | None:
    """The campaign's promotion settings (CampaignStarted.config["promotion"]); None: no second stage."""
    raw = (((params or {}).get("config") or {}).get("promotion")) or {}
    profile, k = raw.get("verify_profile"), int(raw.get("top_k") or 0)
    if not profile or k <= 0:
        return None
    return {"verify_profile": str(profile), "top_k": k,
            "require_significant": bool(raw.get("require_significant", True)),
            "seed_noise": dict(raw.get("seed_noise") or {})}


def stage(doc: Record | None) -> str:
    """"verify" for the verification stage's experiments (the promoted runs and their profile's baseline)."""
    return ((doc or {}).get("stage") or "explore")


def promotion_candidates(store: Store, campaign_id: str, k: int, *,
                         require_significant: bool = True) -> list[Promotion]:
    # a campaign that replicates (issue 24, replication.py) promotes confirmed results: a candidate counts once its
    # held-out seeds confirm it, and is ranked by its replicated fitness
    replicated = replication.replicates((store.get_campaign(campaign_id) or {}).get("params")) > 0
    eligible = []
    scored = 0
    for doc in store.experiments(campaign_id):
        score = doc.get("score") or {}
        if doc.get("role") != "candidate" or stage(doc) != "explore" or doc.get("fitness") is None:
            continue
        scored += 1
        verdict = (doc.get("replication") or {}).get("verdict")
        if require_significant and (verdict != "confirmed" if replicated else score.get("significant") is not True):
            continue
        eligible.append((float(replication.selection_fitness(doc, doc["fitness"])), doc["experiment_id"],
                         score.get("significant")))
    eligible.sort(key=lambda fe: (-fe[0], fe[1]))
    n = len(eligible)
    pool = ((f"candidates confirmed on held-out seeds (of {scored} scored)" if replicated else
             f"candidates significant over seed noise (of {scored} scored)") if require_significant
            else "scored candidates (significance over seed noise not required)")
    out = []
    for r, (f, e, sig) in enumerate(eligible[:max(0, k)], start=1):
        sig_text = "" if require_significant else (
            f", {'significant' if sig else 'not significant' if sig is False else 'significance unknown'} "
            f"over seed noise")
        out.append(Promotion(e, f, r, n, f"rank {r} of {n} {pool}, fitness {f:.4f}{sig_text} (top {k} promoted)",
                             sig))
    return out


def stage_agreement(pairs: list[tuple[float, float]]) -> float | None:
    """Kendall's tau-b of (exploration fitness, verification fitness); None with fewer than two pairs."""
    from lab.tools.validity import kendall_tau_b

    pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
    if len(pairs) < 2:
        return None
    return kendall_tau_b([a for a, _ in pairs], [b for _, b in pairs])


def _results(doc: Record) -> dict:
    return doc.get("results") or {}


def two_stage(store: Store, campaign_id: str) -> dict[str, Any] | None:
    """Both stages of a campaign side by side; None when nothing was promoted.

    {"campaign_id", "explore_profile", "verify_profile", "baselines": [verification baselines],
     "rows": [{source, rank, why, explore fitness/loss/benchmark/significant, explore rank among the scored
               candidates, verify id/status/fitness/loss/benchmark/significant}], "tau_b", "pairs"}"""
    docs = store.experiments(campaign_id)
    promoted = [d for d in docs if d.get("promotion")]
    if not promoted:
        return None
    camp = store.get_campaign(campaign_id) or {}
    params = camp.get("params") or {}
    explored = sorted((d for d in docs if d.get("role") == "candidate" and stage(d) == "explore"
                       and d.get("fitness") is not None), key=lambda d: (-d["fitness"], d["experiment_id"]))
    explore_rank = {d["experiment_id"]: i for i, d in enumerate(explored, start=1)}
    rows = []
    for v in sorted(promoted, key=lambda d: (d["promotion"].get("rank") or 0, d["experiment_id"])):
        p = v["promotion"]
        src = store.get_experiment(p["source_experiment_id"]) or {}
        sscore, vscore = src.get("score") or {}, v.get("score") or {}
        rows.append({
            "source_experiment_id": p["source_experiment_id"], "name": src.get("name") or p.get("name"),
            "promotion_rank": p.get("rank"), "eligible": p.get("eligible"), "why": p.get("why"),
            "explore_rank": explore_rank.get(p["source_experiment_id"]), "explore_fitness": src.get("fitness"),
            "explore_significant": sscore.get("significant"), "explore_loss": _results(src).get("final_loss"),
            "explore_benchmark": _results(src).get("benchmark"),
            "verify_experiment_id": v["experiment_id"], "verify_status": v.get("status"),
            "verify_fitness": v.get("fitness"), "verify_significant": vscore.get("significant"),
            "verify_loss": _results(v).get("final_loss"), "verify_benchmark": _results(v).get("benchmark"),
            "verify_profile": p.get("verify_profile"),
        })
    by_verify = sorted((r for r in rows if r["verify_fitness"] is not None),
                       key=lambda r: (-r["verify_fitness"], r["verify_experiment_id"]))
    for i, r in enumerate(by_verify, start=1):
        r["verify_rank"] = i
    pairs = [(r["explore_fitness"], r["verify_fitness"]) for r in rows]
    tau = stage_agreement(pairs)
    baselines = [{"experiment_id": d["experiment_id"], "name": d.get("name"), "status": d.get("status"),
                  "final_loss": _results(d).get("final_loss"), "benchmark": _results(d).get("benchmark")}
                 for d in docs if d.get("role") == "baseline" and stage(d) == "verify"]
    return {"campaign_id": campaign_id, "explore_profile": params.get("profile"),
            "verify_profile": rows[0]["verify_profile"], "rows": rows, "baselines": baselines,
            "tau_b": None if tau is None or math.isnan(tau) else tau,
            "pairs": sum(1 for a, b in pairs if a is not None and b is not None),
            "completed": (camp.get("completed") or {}).get("reason")}
