"""A realistic recorded event log, generated without any service: replay tests and the bench use it.

`synthetic_log(experiments=N)` returns the events of one or more campaigns in publication order:
campaign start, baselines, imported roots, cognitions, and candidates whose lives vary like a real
campaign's: rejected proposals before one passes, heartbeats, failed runs fixed by the debugger,
abandoned experiments (some with rejections only), scores with a rescoring scheme, insights, and
a completion. Lineage picks parents among earlier finished experiments. Deterministic per seed.
"""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Iterator

from schemas import events as ev

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=timezone.utc)
MECHANISMS = ["delta_rule", "scalar_gate", "vector_gate", "short_conv", "rope", "fir", "multiscale", "output_gate"]


def _code(rng: random.Random, name: str, size: int) -> str:
    body = "".join(f"        self.w{i} = nn.Linear(hidden_size, hidden_size)  # {rng.choice(MECHANISMS)}\n"
                   for i in range(max(1, size // 70)))
    return f"class DeltaNet(nn.Module):\n    \"\"\"{name}\"\"\"\n    def __init__(self, hidden_size=64, **kw):\n" + body


def _experiment(rng: random.Random, campaign: str, exp_id: str, t: datetime, parent: str | None,
                refs: list[str], role: str, code_size: int, name: str) -> Iterator[ev.Event]:
    clock = [t]

    def at(gap: float = 5.0) -> datetime:
        clock[0] = clock[0] + timedelta(seconds=rng.uniform(0.5, gap))
        return clock[0]

    def mk(cls, **fields):
        return cls(campaign_id=campaign, experiment_id=exp_id, occurred_at=at(), producer="synthetic", **fields)

    parent_snap = ev.ProgramSnapshot(experiment_id=parent or f"zoo:{name}", name=parent or name,
                                     code=_code(rng, name, 200))
    yield mk(ev.ParentSampled, mode="baseline" if role == "baseline" else "explore", parent=parent_snap,
             references=[ev.ProgramSnapshot(experiment_id=r, name=r, code="pass") for r in refs],
             draw={"phase": "synthetic"}, policy="topk-uniform")
    fate = rng.random()
    if role == "candidate" and fate < 0.04:        # never passes the checks
        for a in range(1, 4):
            yield mk(ev.ProposalRejected, attempt=a, reason=rng.choice(["duplicate", "causality", "shape"]),
                     feedback=f"attempt {a} repeats an earlier design", name=f"{name}-a{a}", code=_code(rng, name, 300))
        yield mk(ev.ExperimentAbandoned, reason="attempts_exhausted", attempts=3)
        return
    attempt = 1
    if role == "candidate":
        for _ in range(rng.choice([0, 0, 0, 1, 2])):
            yield mk(ev.ProposalRejected, attempt=attempt, reason="duplicate", feedback="too similar to a sibling",
                     similar=[ev.SimilarExperiment(experiment_id=parent or "x", similarity=0.93)],
                     name=f"{name}-a{attempt}", code=_code(rng, name, 300))
            attempt += 1
    motivation = f"{name}: combine {rng.choice(MECHANISMS)} with {rng.choice(MECHANISMS)}"
    code = _code(rng, name, code_size)
    failures = 0 if role != "candidate" else rng.choice([0, 0, 0, 0, 0, 1, 1, 2])
    for revision in range(failures + 1):
        yield mk(ev.ProposalCreated, name=name, code=code + f"# revision {revision}\n", motivation=motivation,
                 role=role, attempt=attempt, revision=revision, parent_id=parent, reference_ids=refs,
                 origin="offline" if revision == 0 else "debugger", design={"mechanisms": rng.sample(MECHANISMS, 3)},
                 code_hash=f"h{rng.getrandbits(48):x}")
        yield mk(ev.TrainingStarted, revision=revision, engineer_id=f"eng-{rng.randint(1, 3)}")
        steps = rng.choice([3, 4, 5])
        for s in range(1, steps + (revision < failures)):
            yield mk(ev.TrainingProgress, revision=revision, engineer_id="eng-1", step=s * 100,
                     total_steps=steps * 100, loss=round(5.5 - s * 0.6 + rng.gauss(0, 0.05), 4))
        if revision < failures:
            yield mk(ev.TrainingFailed, revision=revision, kind=rng.choice(["runtime_error", "diverged", "timeout"]),
                     error="RuntimeError: shape mismatch in chunk 3", code=code)
            if revision == 1 and rng.random() < 0.5:   # the debugger gives up
                yield mk(ev.ExperimentAbandoned, reason="revisions_exhausted", attempts=attempt, revisions=revision + 1)
                return
    loss = round(rng.uniform(1.0, 1.6), 4)
    bench = round(rng.uniform(0.4, 0.7), 4)
    yield mk(ev.ResultsReady, name=name, role=role, revision=failures, final_loss=loss, benchmark=bench,
             loss_curve=[(s, round(loss + 3.0 / s, 4)) for s in (100, 200, 300, 400)],
             metrics={"mqar_acc": bench, "bpb": loss * 2}, params=120_000, tokens=2_000_000, steps=400)
    fitness = round(rng.uniform(0.3, 0.9), 5)
    score = mk(ev.ScoreAssigned, fitness=fitness, loss_score=round(rng.random(), 4),
               benchmark_score=round(rng.random(), 4), qualitative=round(rng.random(), 4), scheme="paper")
    yield score
    if rng.random() < 0.3:   # a straggling heartbeat after the results
        yield mk(ev.TrainingProgress, revision=failures, engineer_id="eng-1", step=400, total_steps=400, loss=loss)
    yield mk(ev.InsightsStored, synthesis=f"{name} trades recall for speed", experience="gates help recall",
             cognition_ids=[f"cog-{rng.randint(0, 19)}"], results_analysis="loss improves vs parent")
    if rng.random() < 0.5:
        yield mk(ev.ScoreAssigned, fitness=round(fitness * rng.uniform(0.8, 1.2), 5), scheme="loss-only",
                 rescore_of=score.event_id, loss_score=score.loss_score)


def synthetic_log(experiments: int = 100, *, campaigns: int = 1, seed: int = 0, code_size: int = 1500,
                  concurrency: int = 4) -> list[ev.Event]:
    """Events of `campaigns` campaigns with `experiments` candidates in all, in publication order."""
    rng = random.Random(seed)
    out: list[ev.Event] = []
    per_campaign = max(1, experiments // campaigns)
    for c in range(campaigns):
        cid = f"synth-{seed}-{c}"
        t = T0 + timedelta(days=c)
        out.append(ev.CampaignStarted(campaign_id=cid, experiment_id=cid, occurred_at=t, name=f"synthetic {c}",
                                      budget=per_campaign, seed=seed, baselines=["deltanet"],
                                      roots=[f"{cid}-root-0", f"{cid}-root-1"], cold_start=3,
                                      config={"scheme": "paper"}))
        for i in range(20 if c == 0 else 0):
            out.append(ev.CognitionIngested(campaign_id="global", experiment_id=f"cog-{i}", cognition_id=f"cog-{i}",
                                            paper_key=f"paper{i}", title=f"Cognition {i}",
                                            trigger_patterns="when recall degrades", occurred_at=t))
        for r in range(2):
            out.append(ev.ExperimentImported(campaign_id=cid, experiment_id=f"{cid}-root-{r}", name=f"root{r}",
                                             code=_code(rng, f"root{r}", code_size), source_index=r,
                                             final_loss=4.2, benchmark=0.4, fitness=2.0 + r,
                                             occurred_at=t + timedelta(seconds=1)))
        finished: list[str] = [f"{cid}-root-0", f"{cid}-root-1"]
        base = f"{cid}-base-deltanet"
        out.extend(_experiment(rng, cid, base, t + timedelta(seconds=2), None, [], "baseline", code_size, "deltanet"))
        finished.append(base)
        start = t + timedelta(minutes=5)
        for k in range(per_campaign):
            exp_id = f"{cid}-c{k:04d}"
            parent = rng.choice(finished[-10:])
            refs = rng.sample(finished, min(4, len(finished) - 1))
            refs = [r for r in refs if r != parent][:4]
            events = list(_experiment(rng, cid, exp_id, start + timedelta(seconds=60 * (k // concurrency)), parent,
                                      refs, "candidate", code_size, f"cand{k}"))
            out.extend(events)
            if any(e.type == "InsightsStored" for e in events):
                finished.append(exp_id)
        out.append(ev.CampaignCompleted(campaign_id=cid, experiment_id=cid, experiments=per_campaign + 1,
                                        occurred_at=start + timedelta(days=1)))
    out.sort(key=lambda e: e.occurred_at)   # publication order: events of all experiments interleave
    return out
