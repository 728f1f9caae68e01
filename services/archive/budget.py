"""A campaign's spending limits, as a pure function of the read model (issue 15, point 5).

`archlab run --max-llm-cost USD --max-device-hours H` puts the limits on CampaignStarted under
`config["budget"] = {"max_llm_cost_usd": .., "max_device_hours": ..}`. Before the scheduler samples a
new candidate it asks `would_exceed`: the campaign's *committed* spend plus the estimate of one more
experiment must stay within each limit. Committed spend counts work still in flight:

- LLM cost: what every experiment's events carry (ProposalCreated, ProposalRejected, ScoreAssigned,
  InsightsStored, ExperimentAbandoned usage); an experiment still in flight counts at least the mean cost
  of the experiments that ended (its remaining calls are still to come), like ShinkaEvolve's
  `max_api_costs` counting calls in flight.
- Device time: each run's seconds on its device (ResultsReady train_s + eval_s, TrainingFailed and
  TrainingStopped wall_s,
  the running revision's last TrainingProgress elapsed_s); an experiment still in flight counts at least
  the mean of the ended ones, or, before any has ended, the profile's time limits (train + eval), an
  upper bound of what one run may take.

No wall clock is read here: the same log gives the same decision, live or replayed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from lab.lifecycle import Lifecycle
from services.archive.storage.base import Record, Store


def limits(params: dict) -> dict[str, float]:
    """{"max_llm_cost_usd": .., "max_device_hours": ..}, only the limits that are set (> 0)."""
    raw = ((params or {}).get("config") or {}).get("budget") or {}
    out = {}
    for k in ("max_llm_cost_usd", "max_device_hours"):
        v = raw.get(k)
        if isinstance(v, (int, float)) and v > 0:
            out[k] = float(v)
    return out


def _usage_cost(u: dict | None) -> float:
    return float((u or {}).get("cost_usd") or 0.0)


def llm_cost(store: Store, doc: Record) -> float:
    """LLM dollars spent on one experiment so far."""
    eid = doc["experiment_id"]
    total = sum(_usage_cost(a.get("usage")) for a in store.attempts(eid) if a.get("kind") in ("proposal", "rejected"))
    total += sum(_usage_cost(s.get("usage")) for s in store.scores(eid))
    total += _usage_cost((doc.get("insights") or {}).get("usage"))
    total += _usage_cost((doc.get("abandoned") or {}).get("usage"))
    return total


def device_s(store: Store, doc: Record) -> float:
    """Device seconds one experiment used so far (finished runs, failed runs and the running revision)."""
    eid = doc["experiment_id"]
    failures = [a for a in store.attempts(eid) if a.get("kind") == "failure"]
    total = sum(float(a.get("wall_s") or 0.0) for a in failures)
    results = doc.get("results") or {}
    life = Lifecycle.of(doc)
    if life.has("results"):
        total += float(results.get("train_s") or 0.0) + float(results.get("eval_s") or 0.0)
    elif life.has("stopped"):   # early stopping (TrainingStopped): its run up to the rung and the rung's scoring
        return total + float((doc.get("stopped") or {}).get("wall_s") or 0.0)
    r = life.revisions
    running = r["started"] > max(r["failed"], r["results"])
    progress = doc.get("progress") or {}
    if running and int(progress.get("revision", 0)) == r["started"]:
        total += float(progress.get("elapsed_s") or 0.0)
    return total


def profile_run_s(profile: str) -> float:
    """The profile's bound on one run: train + eval time limits (0 when the profile is unknown here)."""
    try:
        from lab.training.profiles import get_profile   # a plain dataclass module: light to import
        p = get_profile(profile)
    except Exception:
        return 0.0
    return float(p.train_time_limit_s + p.eval_time_limit_s)


def _profile_of(doc: Record) -> str | None:
    return (doc.get("sampling") or {}).get("profile") or (doc.get("results") or {}).get("profile")


@dataclass
class Spend:
    """Spend of a campaign: actual, committed (in flight counted at its estimate) and per-experiment estimates."""
    llm_usd: float = 0.0
    device_s: float = 0.0
    committed_llm_usd: float = 0.0
    committed_device_s: float = 0.0
    est_llm_usd: float = 0.0        # one more experiment
    est_device_s: float = 0.0
    in_flight: int = 0
    ended: int = 0
    limits: dict[str, float] = field(default_factory=dict)

    def would_exceed(self, extra: int = 1) -> str | None:
        """Why `extra` more experiments would break a limit (None: they fit)."""
        cap = self.limits.get("max_llm_cost_usd")
        if cap is not None and self.committed_llm_usd + extra * self.est_llm_usd > cap:
            return (f"LLM budget: ${self.committed_llm_usd:.4f} committed ({self.llm_usd:.4f} spent, "
                    f"{self.in_flight} in flight) + ${self.est_llm_usd:.4f} per experiment > ${cap:.4f}")
        cap = self.limits.get("max_device_hours")
        if cap is not None and self.committed_device_s + extra * self.est_device_s > cap * 3600:
            return (f"device budget: {self.committed_device_s / 3600:.4f} h committed "
                    f"({self.device_s / 3600:.4f} h used, {self.in_flight} in flight) + "
                    f"{self.est_device_s / 3600:.4f} h per experiment > {cap:g} h")
        return None


def spend(store: Store, campaign: Record, ended=None, *, profile: str | None = None) -> Spend:
    """The campaign's spend from the read model. `ended(doc)`: whether an experiment is over.

    `profile`: estimate one more experiment *at this profile* (the verification stage of a two-stage campaign,
    scheduler.py): device time is then the mean of the ended experiments of that profile, or before any, the
    profile's time limits (train + eval), as for a campaign's first runs; the LLM estimate stays the campaign's."""
    if ended is None:
        from services.archive.scheduler import ended
    p = campaign.get("params") or {}
    docs = [d for d in store.experiments(campaign["campaign_id"]) if Lifecycle.of(d).has("sampled")]
    s = Spend(limits=limits(p))
    done_llm, done_dev, flying = [], [], []
    for d in docs:
        c, t = llm_cost(store, d), device_s(store, d)
        s.llm_usd += c
        s.device_s += t
        if ended(d):
            done_llm.append(c)
            done_dev.append(t)
        else:
            flying.append((c, t))
    s.ended, s.in_flight = len(done_llm), len(flying)
    if done_llm:
        s.est_llm_usd = sum(done_llm) / len(done_llm)
        s.est_device_s = sum(done_dev) / len(done_dev)
    else:
        s.est_llm_usd = max((c for c, _ in flying), default=0.0)
        s.est_device_s = profile_run_s(p.get("profile", "cpu-tiny"))
    if profile is not None:
        same = [device_s(store, d) for d in docs if ended(d) and _profile_of(d) == profile]
        s.est_device_s = sum(same) / len(same) if same else profile_run_s(profile)
    s.committed_llm_usd = sum(done_llm) + sum(max(c, s.est_llm_usd) for c, _ in flying)
    s.committed_device_s = sum(done_dev) + sum(max(t, s.est_device_s) for _, t in flying)
    return s
