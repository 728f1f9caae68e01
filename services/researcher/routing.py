"""Planner model routing: spread the planner's calls over several models with a bandit on fitness gain
per dollar (as ShinkaEvolve does), so a campaign learns which model is worth its price.

    ARCHLAB_LLM_MODELS_PLANNER='["gpt-4.1", "gpt-4.1-mini", "qwen2.5-coder:32b"]'

Arms are the models. Each accepted LLM proposal is credited to the model that wrote it (the planner request
on its ProposalCreated); its reward is the fitness gain over its parent, max(0, fitness - parent fitness), once
both are scored. Its price is every planner call that model made in the campaign (rejected attempts included,
from ProposalRejected / ProposalCreated usage). The choice is UCB1 on the normalised rate:

    rate_m  = Σ gain_m / max(Σ cost_m, MIN_COST)          (a free local model costs MIN_COST per call)
    score_m = rate_m / max_k rate_k + sqrt(2 ln N / n_m)  (n_m: scored proposals of m, N: all of them)

Models not scored yet are tried first, in an order rotated by the attempt's nonce. The decision is recorded
on the event (the planner request's model, and ProposalCreated.checks["routing"]), so replay needs no router.
The statistics are a projection of the log, kept in SQLite under the data dir (one per data volume).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from schemas import events as ev
from services.common.sqlite_state import StateDB

MIN_COST = 1e-4  # $ per call: a free (local) model is not infinitely cheap, its GPU time is not free
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS calls (event_id TEXT, i INTEGER, campaign_id TEXT, model TEXT, cost REAL, "
    "PRIMARY KEY (event_id, i));"
    "CREATE TABLE IF NOT EXISTS proposals (experiment_id TEXT PRIMARY KEY, campaign_id TEXT, model TEXT, "
    "parent_id TEXT);"
    "CREATE TABLE IF NOT EXISTS fitness (experiment_id TEXT PRIMARY KEY, fitness REAL);")


@dataclass
class Arm:
    model: str
    proposals: int = 0      # accepted proposals scored with their parent
    gain: float = 0.0       # Σ max(0, fitness - parent fitness)
    best: float | None = None
    cost_usd: float = 0.0   # Σ planner calls' cost
    calls: int = 0          # planner calls

    @property
    def rate(self) -> float:
        return self.gain / max(self.cost_usd, MIN_COST * max(self.calls, 1))


def planner_request(usage: ev.Usage | None) -> ev.LLMRequest | None:
    """The (last) planner request on an event's usage: the model that wrote the program."""
    reqs = [r for r in (usage.requests if usage else []) if r.role == "planner"]
    return reqs[-1] if reqs else None


def arm_stats(models: Iterable[str], planner_calls: Iterable[tuple[str, float]],
              proposals: Iterable[tuple[str, float | None, float | None]]) -> dict[str, Arm]:
    """Arms from (model, cost) of every planner call and (model, fitness, parent fitness) of every accepted
    proposal (None while unscored). Models seen in the data but not in `models` are included too."""
    arms = {m: Arm(m) for m in models}
    for model, cost in planner_calls:
        arm = arms.setdefault(model, Arm(model))
        arm.calls += 1
        arm.cost_usd += cost
    for model, fitness, parent in proposals:
        arm = arms.setdefault(model, Arm(model))
        if fitness is None:
            continue
        arm.best = fitness if arm.best is None else max(arm.best, fitness)
        if parent is not None:
            arm.proposals += 1
            arm.gain += max(0.0, fitness - parent)
    return arms


def ucb_choice(arms: dict[str, Arm], models: list[str], nonce: int) -> tuple[str, dict]:
    """The model to ask, and why (recorded on the event)."""
    untried = [m for m in models if arms.get(m, Arm(m)).proposals == 0]
    if untried:
        model = untried[nonce % len(untried)]
        return model, {"policy": "ucb1", "model": model, "reason": "not scored yet"}
    total = sum(arms[m].proposals for m in models)
    top = max(arms[m].rate for m in models) or 1.0
    scores = {m: arms[m].rate / top + math.sqrt(2 * math.log(total) / arms[m].proposals) for m in models}
    model = max(models, key=lambda m: (scores[m], -models.index(m)))
    return model, {"policy": "ucb1", "model": model, "reason": "highest upper bound of gain per dollar",
                   "scores": {m: round(s, 4) for m, s in scores.items()},
                   "gain_per_usd": {m: round(arms[m].rate, 4) for m in models}}


class PlannerRouter:
    def __init__(self, models: list[str], path: Path | str = ":memory:"):
        if not models:
            raise ValueError("a router needs at least one model")
        self.models = list(dict.fromkeys(models))
        self.db = StateDB(path, SCHEMA)

    # --- the projection of the log
    def _calls(self, e: ev.ProposalCreated | ev.ProposalRejected) -> None:
        rows = [(e.event_id, i, e.campaign_id, r.model, r.cost_usd)
                for i, r in enumerate(e.usage.requests if e.usage else []) if r.role == "planner"]
        with self.db.transaction() as tx:
            tx.executemany("INSERT OR IGNORE INTO calls VALUES (?,?,?,?,?)", rows)

    def observe_proposal(self, p: ev.ProposalCreated) -> None:
        self._calls(p)
        req = planner_request(p.usage)
        if p.origin == "llm" and p.revision == 0 and req is not None:
            self.db.execute("INSERT OR IGNORE INTO proposals VALUES (?,?,?,?)",
                            (p.experiment_id, p.campaign_id, req.model, p.parent_id))

    def observe_rejection(self, r: ev.ProposalRejected) -> None:
        self._calls(r)

    def observe_score(self, s: ev.ScoreAssigned) -> None:
        if s.rescore_of is None and s.fitness is not None:
            self.db.execute("INSERT OR IGNORE INTO fitness VALUES (?,?)", (s.experiment_id, s.fitness))

    def arms(self, campaign_id: str) -> dict[str, Arm]:
        calls = self.db.query("SELECT model, cost FROM calls WHERE campaign_id=?", (campaign_id,))
        props = self.db.query(
            "SELECT p.model, f.fitness, pf.fitness FROM proposals p LEFT JOIN fitness f ON f.experiment_id = "
            "p.experiment_id LEFT JOIN fitness pf ON pf.experiment_id = p.parent_id WHERE p.campaign_id=?",
            (campaign_id,))
        return arm_stats(self.models, calls, props)

    def choose(self, campaign_id: str, nonce: int) -> tuple[str, dict]:
        return ucb_choice(self.arms(campaign_id), self.models, nonce)


def arms_from_events(events: Iterable[ev.Event]) -> dict[str, Arm]:
    """The same arms from a campaign's events (the report: which model produced the best layers)."""
    calls, props, fitness = [], [], {}
    for e in events:
        if isinstance(e, (ev.ProposalCreated, ev.ProposalRejected)) and e.usage:
            calls += [(r.model, r.cost_usd) for r in e.usage.requests if r.role == "planner"]
        if isinstance(e, ev.ProposalCreated) and e.origin == "llm" and e.revision == 0 and planner_request(e.usage):
            props.append((planner_request(e.usage).model, e.experiment_id, e.parent_id))
        if isinstance(e, ev.ScoreAssigned) and e.rescore_of is None and e.fitness is not None:
            fitness.setdefault(e.experiment_id, e.fitness)
    return arm_stats([], calls, [(m, fitness.get(x), fitness.get(p) if p else None) for m, x, p in props])
