"""A campaign as the person running it sees it: a small projection of the event stream.

Folded from the same events as everything else (no database needed), so `archlab run` can show
live progress from the log alone, and a test can feed it events directly.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from schemas import events as ev

TERMINAL = ("done", "abandoned", "score_error")


@dataclass
class ExperimentView:
    experiment_id: str
    role: str = "candidate"
    name: str = ""
    status: str = "sampled"            # sampled proposing training scoring analysing done abandoned score_error
    fitness: float | None = None
    final_loss: float | None = None
    benchmark: float | None = None
    rejections: int = 0
    failures: int = 0
    times: dict[str, datetime] = field(default_factory=dict)


@dataclass
class CampaignView:
    campaign_id: str
    started: ev.CampaignStarted | None = None
    completed: bool = False
    experiments: dict[str, ExperimentView] = field(default_factory=dict)
    rejection_reasons: Counter = field(default_factory=Counter)
    failure_kinds: Counter = field(default_factory=Counter)
    stage_seconds: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    events: int = 0

    def exp(self, event: ev.Event) -> ExperimentView:
        return self.experiments.setdefault(event.experiment_id, ExperimentView(event.experiment_id))

    def apply(self, event: ev.Event) -> None:
        if event.campaign_id != self.campaign_id:
            return
        self.events += 1
        if isinstance(event, ev.CampaignStarted):
            self.started = event
        elif isinstance(event, ev.CampaignCompleted):
            self.completed = True
        elif isinstance(event, ev.ParentSampled):
            x = self.exp(event)
            x.role = "baseline" if event.mode == "baseline" else "candidate"
            x.name = x.name or (event.parent.name if event.mode == "baseline" else "")
            x.status = "proposing"
            x.times.setdefault("sampled", event.occurred_at)
        elif isinstance(event, ev.ProposalRejected):
            self.exp(event).rejections += 1
            self.rejection_reasons[event.reason] += 1
        elif isinstance(event, ev.ProposalCreated):
            x = self.exp(event)
            x.name, x.role = event.name, event.role
            if x.status in ("sampled", "proposing"):
                x.status = "training"
            if event.revision == 0 and "proposed" not in x.times:
                x.times["proposed"] = event.occurred_at
                if "sampled" in x.times:
                    self.stage_seconds["propose"].append((event.occurred_at - x.times["sampled"]).total_seconds())
        elif isinstance(event, ev.TrainingStarted):
            x = self.exp(event)
            x.times.setdefault("training", event.occurred_at)
        elif isinstance(event, ev.TrainingFailed):
            x = self.exp(event)
            x.failures += 1
            self.failure_kinds[event.kind] += 1
        elif isinstance(event, ev.ResultsReady):
            x = self.exp(event)
            x.final_loss, x.benchmark, x.name = event.final_loss, event.benchmark, event.name or x.name
            if x.status not in TERMINAL:
                x.status = "scoring"
            if "results" not in x.times:
                x.times["results"] = event.occurred_at
                self.stage_seconds["train+eval"].append(event.train_s + event.eval_s)
        elif isinstance(event, ev.ScoreAssigned):
            x = self.exp(event)
            if event.rescore_of is None:
                x.fitness = event.fitness
                if event.fitness is None and x.status not in TERMINAL:
                    x.status = "score_error"
                elif x.status not in TERMINAL:
                    x.status = "analysing"
                if "results" in x.times and "scored" not in x.times:
                    x.times["scored"] = event.occurred_at
                    self.stage_seconds["judge"].append((event.occurred_at - x.times["results"]).total_seconds())
        elif isinstance(event, ev.InsightsStored):
            x = self.exp(event)
            x.status = "done"
            if "scored" in x.times and "insights" not in x.times:
                x.times["insights"] = event.occurred_at
                self.stage_seconds["analyse"].append((event.occurred_at - x.times["scored"]).total_seconds())
        elif isinstance(event, ev.ExperimentAbandoned):
            self.exp(event).status = "abandoned"

    # ---------------------------------------------------------------- summaries
    def counts(self) -> Counter:
        return Counter(x.status for x in self.experiments.values())

    def in_flight(self) -> int:
        return sum(1 for x in self.experiments.values() if x.status not in TERMINAL)

    def best(self) -> ExperimentView | None:
        scored = [x for x in self.experiments.values()
                  if x.role == "candidate" and x.fitness is not None and not math.isnan(x.fitness)]
        return max(scored, key=lambda x: x.fitness) if scored else None

    def stage_means(self) -> dict[str, float]:
        return {k: sum(v) / len(v) for k, v in self.stage_seconds.items() if v}
