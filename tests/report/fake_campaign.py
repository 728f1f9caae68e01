"""A realistic campaign's event log, built from plain typed events (no Kafka), for report tests.

One measured baseline (deltanet), one imported root, and `candidates` candidate experiments with
lineage; some proposals are rejected first, some runs fail (one is fixed by the debugger, one is
abandoned), and every scored experiment is re-scored under a second scheme. `FAKE` describes what
the default call produces, so tests assert against numbers the generator states.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from schemas import events as ev

CAMPAIGN = "camp-demo"
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)
MECHANISMS = ["delta", "gated", "fir", "multiscale", "elu", "dplr", "hedgehog", "rope", "decay", "conv"]


@dataclass
class Clock:
    t: datetime = T0

    def tick(self, seconds: float = 30.0) -> datetime:
        self.t = self.t + timedelta(seconds=seconds)
        return self.t


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _loss_curve(rng: random.Random, final: float, steps: int = 1000, every: int = 50) -> list[tuple[int, float]]:
    start = 5.55 + rng.uniform(-0.05, 0.05)
    rate = rng.uniform(2.5, 4.5)
    return [(s, round(final + (start - final) * math.exp(-rate * s / steps) + rng.gauss(0, 0.01), 4))
            for s in range(every, steps + 1, every)]


def _usage(rng: random.Random, calls: int = 1, model: str = "gpt-4.1-mini") -> ev.Usage:
    p, c = rng.randint(1500, 4000) * calls, rng.randint(300, 1200) * calls
    return ev.Usage(model=model, calls=calls, prompt_tokens=p, completion_tokens=c,
                    cost_usd=round(p * 0.4e-6 + c * 1.6e-6, 6))


def _code(name: str) -> str:
    return (f"class DeltaNet(nn.Module):\n    \"\"\"{name}\"\"\"\n    def __init__(self, hidden_size=64, num_heads=1, **kw):\n"
            "        super().__init__()\n        self.q = nn.Linear(hidden_size, hidden_size)\n")


def fake_campaign(candidates: int = 10, seed: int = 0, malicious_name: str | None = None) -> list[ev.Event]:
    """The event log of a finished campaign, in publication order.

    Experiments: "exp-base" (baseline), "exp-imp" (imported root), "exp-01".."exp-NN" (candidates).
    exp-03 is abandoned after two failed runs; exp-05 fails once and succeeds on revision 1;
    exp-07's proposals are rejected twice before one passes. Every other candidate is scored.
    `malicious_name`, when given, is the name of exp-02 (escaping tests).
    """
    rng = random.Random(seed)
    clock = Clock()
    out: list[ev.Event] = []

    def emit(cls, exp: str, **fields) -> ev.Event:
        e = cls(campaign_id=CAMPAIGN, experiment_id=exp, occurred_at=clock.tick(rng.uniform(5, 90)), **fields)
        out.append(e)
        return e

    emit(ev.CampaignStarted, CAMPAIGN, name="demo: deltanet evolution", profile="cpu-tiny", budget=candidates,
         concurrency=2, seed=seed, policy="topk-uniform", policy_params={"top_k": 10, "references": 4},
         cold_start=3, baselines=["deltanet"], roots=["exp-imp"], proposer="llm", max_attempts=10, max_revisions=3,
         config={"steps": 1000, "eval_tasks": ["mqar_recall", "mqar_mc"]})
    emit(ev.ExperimentImported, "exp-imp", name="delta_net_gated_fir", code=_code("imported"), source="asi-arch",
         source_index=17, final_loss=4.21, benchmark=0.44, fitness=0.58, summary="FIR memory path + output gate")

    # -- the baseline, measured first
    base_loss, base_bench = 1.20, 0.62
    zoo = ev.ProgramSnapshot(experiment_id="zoo:deltanet", name="deltanet", code=_code("deltanet"))
    emit(ev.ParentSampled, "exp-base", mode="baseline", parent=zoo, draw={"phase": "baseline"})
    emit(ev.ProposalCreated, "exp-base", name="deltanet", code=zoo.code, motivation="the measured baseline",
         role="baseline", origin="zoo")
    scored: dict[str, float] = {}
    names: dict[str, str] = {"exp-base": "deltanet", "exp-imp": "delta_net_gated_fir"}

    def train_and_score(exp: str, name: str, final: float, bench: float, role: str = "candidate",
                        revision: int = 0, device: str = "cuda:0") -> None:
        emit(ev.TrainingStarted, exp, engineer_id=f"eng-{rng.randint(1, 3)}", device=device, revision=revision)
        for step in (250, 500, 750):
            emit(ev.TrainingProgress, exp, engineer_id="eng-1", step=step, total_steps=1000, loss=final + 1.0,
                 revision=revision)
        emit(ev.ResultsReady, exp, name=name, role=role, revision=revision, loss_curve=_loss_curve(rng, final),
             final_loss=final, benchmark=bench, metrics={"mqar_recall": round(bench, 4),
                                                         "mqar_mc": round(min(1.0, bench + 0.1), 4)},
             params=120_000 + rng.randint(0, 30_000), tokens=8_192_000, steps=1000,
             train_s=round(rng.uniform(120, 200), 1), eval_s=round(rng.uniform(8, 20), 1), device=device,
             tokens_per_s=45_000.0)
        loss_score = _sigmoid((base_loss - final) * 5)
        bench_score = _sigmoid((bench - base_bench) * 10)
        qual = round(rng.uniform(0.3, 0.9), 3) if role == "candidate" else 0.5
        fitness = round((loss_score + bench_score + qual) / 3, 4)
        first = emit(ev.ScoreAssigned, exp, fitness=fitness, loss_score=round(loss_score, 4),
                     benchmark_score=round(bench_score, 4), qualitative=qual, qualitative_judged=role == "candidate",
                     weights={"loss": 1 / 3, "benchmark": 1 / 3, "qualitative": 1 / 3},
                     baseline_experiment_id="exp-base", baseline_loss=base_loss, baseline_benchmark=base_bench,
                     significant=abs(final - base_loss) > 0.05, usage=_usage(rng) if role == "candidate" else None)
        scored[exp] = fitness
        emit(ev.InsightsStored, exp, synthesis=f"{name}: loss {final:.3f} vs baseline {base_loss:.3f}",
             offline=False, experience="gates help recall", usage=_usage(rng, calls=2))
        # rescoring: a second scheme (ignored by a "paper" report) ...
        emit(ev.ScoreAssigned, exp, fitness=round((loss_score + bench_score) / 2, 4), loss_score=round(loss_score, 4),
             benchmark_score=round(bench_score, 4), scheme="no-qualitative", rescore_of=first.event_id,
             baseline_experiment_id="exp-base")

    train_and_score("exp-base", "deltanet", base_loss, base_bench, role="baseline")

    # -- candidates
    pool = ["exp-base", "exp-imp"]
    for i in range(1, candidates + 1):
        exp = f"exp-{i:02d}"
        parent = pool[0] if i <= 3 else rng.choice(pool[:6])
        name = malicious_name if (i == 2 and malicious_name) else \
            f"{rng.choice(MECHANISMS)}_{rng.choice(MECHANISMS)}_net_{i}"
        names[exp] = name
        snap = ev.ProgramSnapshot(experiment_id=parent, name=names[parent], code=_code(names[parent]),
                                  fitness=scored.get(parent))
        emit(ev.ParentSampled, exp, mode="explore", parent=snap, draw={"rank": 1, "pool": len(pool)})
        if i == 7:
            emit(ev.ProposalRejected, exp, attempt=1, reason="duplicate", name=name + "_a",
                 feedback="Repeats exp-01's gated delta rule: same gate, same feature map.",
                 similar=[ev.SimilarExperiment(experiment_id="exp-01", similarity=0.96)], usage=_usage(rng))
            emit(ev.ProposalRejected, exp, attempt=2, reason="causality", name=name + "_b",
                 feedback="Output at t=3 changed when token t=9 was perturbed: the conv is not causal.",
                 usage=_usage(rng))
        emit(ev.ProposalCreated, exp, name=name, code=_code(name), motivation=f"try {name}", parent_id=parent,
             origin="llm", attempt=3 if i == 7 else 1, usage=_usage(rng, calls=3))
        final = round(base_loss + rng.uniform(-0.25, 0.2), 4)
        bench = round(min(0.99, max(0.05, base_bench + rng.uniform(-0.15, 0.2))), 4)
        if i == 3:  # fails twice, then the debugger gives up
            for rev in range(2):
                emit(ev.TrainingStarted, exp, engineer_id="eng-2", device="cuda:0", revision=rev)
                emit(ev.TrainingFailed, exp, engineer_id="eng-2", revision=rev, kind="runtime_error",
                     error="RuntimeError: shape '[64, 128, 1, 64]' is invalid for input of size 4194304",
                     wall_s=12.5, code=_code(name))
                if rev == 0:
                    emit(ev.ProposalCreated, exp, name=name, code=_code(name), motivation="fix reshape",
                         parent_id=parent, origin="debugger", revision=1, usage=_usage(rng))
            emit(ev.ExperimentAbandoned, exp, reason="revisions exhausted", attempts=1, revisions=1)
            continue
        if i == 5:  # a NaN, fixed by the debugger
            emit(ev.TrainingStarted, exp, engineer_id="eng-1", device="cuda:0")
            emit(ev.TrainingFailed, exp, engineer_id="eng-1", kind="diverged", error="loss is NaN at step 310",
                 wall_s=60.0, code=_code(name))
            emit(ev.ProposalCreated, exp, name=name, code=_code(name), motivation="clamp the gate", parent_id=parent,
                 origin="debugger", revision=1, usage=_usage(rng))
            train_and_score(exp, name, final, bench, revision=1)
        else:
            train_and_score(exp, name, final, bench)
        pool.append(exp)
        pool.sort(key=lambda e: -scored.get(e, 0.0))
    # a late re-score of the baseline under the campaign's own scheme: the report uses the latest
    emit(ev.ScoreAssigned, "exp-base", fitness=0.5, loss_score=0.5, benchmark_score=0.5, qualitative=0.5,
         scheme="paper", note="re-scored after baseline re-measurement", baseline_experiment_id="exp-base")
    emit(ev.CampaignCompleted, CAMPAIGN, experiments=candidates)
    return out


# What the default `fake_campaign()` produces (the tests assert against these).
FAKE = dict(
    experiments=lambda n: n + 2,             # candidates + baseline + imported root
    scored=lambda n: n,                      # every candidate but exp-03 (abandoned), plus the baseline
    abandoned=1,
    failed_runs=3,                           # exp-03 twice, exp-05 once
    rejections=2,
)
