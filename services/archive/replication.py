"""Replication before a claim (issue 24): a candidate significant after its first run is re-trained on held-out
seeds before it counts as a winner. Pure functions of the read model; the scheduler publishes what they decide.

A first run that beats the baseline by more than its seed noise can be luck: the candidate was selected for being
good on that one seed. With `config["replicate"] = K` (`archlab run --replicate K`, default 2; 0 or absent: never),

1. such a candidate (`claims`: ended, scored, `significant`, and better than the baseline by more than the seed
   noise on a metric) is trained again K times, unchanged, at the campaign's profile, on seeds no first run uses
   (`replicate_seed`). The mechanism is two-stage promotion's: ParentSampled(mode="verify"), the researcher passes the
   program through unchanged (role "verify"), and the engineer, judge and analyst treat it like any run. The stage
   stays "explore" (same profile, same baseline); the run's `verifies` names the candidate. These runs take
   `concurrency` slots before new candidates and count against the spending limits, like any training; `--budget`
   still counts explored candidates only.
2. once its K runs have ended, `ReplicationAssessed` records the replicated fitness (mean over the held-out seeds
   that were scored) and the verdict of Welch's test of their metrics against the baseline
   (lab/judging/significance.py): "confirmed" or "not replicated". A run stopped early (issue 23) or abandoned
   leaves fewer seeds to test; none left is "not replicated".
3. the replicated fitness is what the candidate is ranked by as a parent (pool.py) and, in a campaign that
   replicates, promotion takes confirmed candidates only (promotion.py).

Ids: `<candidate>-rep<k>` (k = 1..K); the verdict's event id derives from the campaign and the candidate.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass

from lab.judging import fitness as F
from lab.judging import significance
from lab.lifecycle import Lifecycle
from schemas import events as ev
from services.archive.sizing import reference_baseline
from services.archive.storage.base import Record, Store

PRODUCER = "archive"
SEED_OFFSET = 1_000_000   # held-out seeds: campaign seed + SEED_OFFSET + k; a first run trains at the campaign seed


def replicates(params: dict | None) -> int:
    """K, the held-out seeds per claim (CampaignStarted.config["replicate"]); 0: the campaign does not replicate."""
    return max(0, int((((params or {}).get("config") or {}).get("replicate")) or 0))


def replicate_id(experiment_id: str, k: int) -> str:
    return f"{experiment_id}-rep{k}"


def replicate_seed(campaign_seed: int, k: int) -> int:
    return campaign_seed + SEED_OFFSET + k


def is_replicate(doc: Record | None) -> bool:
    """A replication run: trained unchanged (role "verify") in the exploration stage."""
    doc = doc or {}
    return doc.get("role") == "verify" and (doc.get("stage") or "explore") == "explore"


# a component above σ(STEEPNESS / NOISE_MULTIPLE) is better than the baseline by more than one seed noise
# (lab/judging/fitness.py: with a measured noise, a delta of one noise maps to σ(0.6) ≈ 0.646)
_ONE_NOISE = F.sigmoid(F.STEEPNESS / F.NOISE_MULTIPLE)


def is_claim(doc: Record) -> bool:
    """A candidate whose first run claims to beat the baseline: scored, significant, and better than the baseline by
    more than the seed noise on a metric (a significantly *worse* candidate needs no replication)."""
    score = doc.get("score") or {}
    if doc.get("role") != "candidate" or (doc.get("stage") or "explore") != "explore" or doc.get("fitness") is None:
        return False
    return score.get("significant") is True and any(
        (score.get(k) or 0.0) > _ONE_NOISE for k in ("loss_score", "benchmark_score"))


@dataclass(frozen=True)
class Wanted:
    """A replication run to start: its id, the candidate it re-trains, and its held-out seed."""
    experiment_id: str
    source: Record
    k: int
    seed: int


@dataclass(frozen=True)
class Plan:
    verdicts: list[ev.ReplicationAssessed]   # candidates whose replication has just ended
    wanted: list[Wanted]                     # runs to start (in order), as slots allow
    in_flight: int                           # replication runs sampled and not ended


def plan(store: Store, campaign: Record) -> Plan:
    p = campaign["params"]
    k_max = replicates(p)
    if not k_max:
        return Plan([], [], 0)
    cid = campaign["campaign_id"]
    verdicts, wanted, in_flight = [], [], 0
    for doc in sorted(store.experiments(cid), key=lambda d: d["experiment_id"]):
        if not is_claim(doc) or not Lifecycle.of(doc).ended:
            continue
        runs = [store.get_experiment(replicate_id(doc["experiment_id"], k)) for k in range(1, k_max + 1)]
        for k, run in enumerate(runs, start=1):
            if run is None or not Lifecycle.of(run).has("sampled"):
                wanted.append(Wanted(replicate_id(doc["experiment_id"], k), doc, k,
                                     replicate_seed(int(p.get("seed", 0)), k)))
            elif not Lifecycle.of(run).ended:
                in_flight += 1
        if doc.get("replication") is None and all(r is not None and Lifecycle.of(r).ended for r in runs):
            verdicts.append(assess(store, campaign, doc, runs))
    return Plan(verdicts, wanted, in_flight)


def assess(store: Store, campaign: Record, doc: Record, runs: list[Record]) -> ev.ReplicationAssessed:
    """The verdict on one candidate from its ended replication runs."""
    p, cid = campaign["params"], campaign["campaign_id"]
    measured = [r for r in runs if r.get("results")]
    base = (reference_baseline(store, cid) or {}).get("results") or {}
    noise = F.resolve_noise(p.get("profile", "cpu-tiny"), p.get("seed_noise"))
    confirmed, reason, verdict = judge([r["results"] for r in measured], base, noise,
                                       [r["experiment_id"] for r in runs if Lifecycle.of(r).has("stopped")])
    if len(measured) < len(runs):
        reason += f" ({len(runs) - len(measured)} of {len(runs)} held-out runs gave no result)"
    scores = [r.get("fitness") for r in runs]
    scored = [f for f in scores if f is not None]
    return ev.ReplicationAssessed(
        event_id=ev.derived_id(cid, "ReplicationAssessed", doc["experiment_id"]), campaign_id=cid,
        experiment_id=doc["experiment_id"], causation_id=p["event_id"], producer=PRODUCER,
        replicates=[r["experiment_id"] for r in runs],
        seeds=[int((r.get("sampling") or {}).get("seed") or 0) for r in runs], fitness=doc.get("fitness"),
        replicate_fitness=scores, replicated_fitness=statistics.fmean(scored) if scored else None,
        verdict="confirmed" if confirmed else "not replicated", tests=verdict.tests, reason=reason)


def judge(results: list[dict], base: dict, noise: F.SeedNoise | None,
          stopped: list[str]) -> tuple[bool, str, significance.Verdict]:
    """(confirmed, reason, Welch's verdict) of a claim's held-out results ({"final_loss", "benchmark"} each)
    against the baseline's; `stopped`: the held-out runs stopped early, which make it "not replicated"."""
    verdict = significance.compare(
        {m: [r[m] for r in results if r.get(m) is not None] for m in ("final_loss", "benchmark")},
        {"final_loss": base.get("final_loss"), "benchmark": base.get("benchmark")},
        {"final_loss": noise.loss if noise else None, "benchmark": noise.benchmark if noise else None},
        noise_seeds=noise.seeds if noise else None)
    reason = verdict.reason
    if stopped:   # stopped early: worse than the baseline at a rung by several noises, never a winner
        reason = f"stopped early on a held-out seed ({', '.join(stopped)}); " + reason
    return verdict.confirmed and not stopped, reason, verdict


def selection_fitness(doc: Record, fitness: float | None) -> float | None:
    """The fitness a pool member is ranked by: its replicated fitness once it has one, else its own."""
    replicated = (doc.get("replication") or {}).get("replicated_fitness")
    return fitness if replicated is None else replicated
