"""A campaign as the person running it sees it: a small projection of the event stream.

Folded from the same events as everything else (no database needed), so `archlab run` can show
live progress from the log alone, and a test can feed it events directly.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from lab.lifecycle import SETTLED, Lifecycle, concerns
from schemas import events as ev

TERMINAL = SETTLED   # the lifecycle's settled states (lab/lifecycle.py)
# measured on a 2-vCPU machine: two runs at once train at about 7,500 tokens/s each, one alone at 12,000
SHARED_SLOWDOWN = 1.6
STDERR_LINES = 8     # lines of a failed child's output shown on the terminal

# `archlab run`'s exit statuses (also in `archlab run --help`)
EXIT_OK = 0              # at least one candidate was judged: trained and scored, or stopped early at a rung
EXIT_NOTHING_SCORED = 1  # the campaign ended without a judged candidate (every baseline failed, ...)
EXIT_USAGE = 2           # bad options, missing data, nothing to resume
EXIT_PREFLIGHT = 3       # `archlab doctor` found the machine unable to run a campaign
EXIT_STALLED = 4         # nothing changed for longer than the profile allows, or the watch timed out
EXIT_INTERRUPTED = 130   # Ctrl-C: stopped cleanly, `archlab run --resume` continues


@dataclass
class ExperimentView:
    experiment_id: str
    role: str = "candidate"
    name: str = ""
    fitness: float | None = None
    final_loss: float | None = None
    benchmark: float | None = None
    rejections: int = 0
    failures: int = 0
    times: dict[str, datetime] = field(default_factory=dict)
    step: int = 0                      # last TrainingProgress: where training is and how fast it runs
    total_steps: int = 0
    tokens_per_s: float | None = None
    engineer_id: str = ""
    last_failure: ev.TrainingFailed | None = None
    calibrated_step_s: float | None = None   # from the claim: the engineer's measured speed and limit
    wall_limit_s: float | None = None
    abandoned_reason: str = ""
    first_cause: str = ""              # the first rejection's or failure's own words (what a user needs first)
    promotion: ev.ExperimentPromoted | None = None   # a verification run: why it was promoted
    weights_from: str | None = None    # a reused baseline: the run that trained its weights (ResultsReady)
    train_s: float = 0.0               # the training's own time, from the results (a reused baseline's: the first)
    life: Lifecycle = field(default_factory=Lifecycle)

    @property
    def status(self) -> str:
        return self.life.status

    def label(self) -> str:
        return f"{self.experiment_id[-10:]} {self.name or '?'} ({self.role})"


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
    completed_reason: str = ""

    def exp(self, event: ev.Event) -> ExperimentView:
        return self.experiments.setdefault(event.experiment_id, ExperimentView(event.experiment_id))

    def apply(self, event: ev.Event) -> None:
        if event.campaign_id != self.campaign_id:
            return
        self.events += 1
        if concerns(event):
            self.exp(event).life.apply(event)
        if isinstance(event, ev.CampaignStarted):
            self.started = event
        elif isinstance(event, ev.CampaignCompleted):
            self.completed = True
            self.completed_reason = event.reason
        elif isinstance(event, ev.ParentSampled):
            x = self.exp(event)
            x.role = {"baseline": "baseline", "verify": "verify"}.get(event.mode, "candidate")
            x.name = x.name or (event.parent.name if event.mode in ("baseline", "verify") else "")
            x.times.setdefault("sampled", event.occurred_at)
        elif isinstance(event, ev.ExperimentPromoted):
            x = self.exp(event)
            x.role, x.name, x.promotion = "verify", x.name or event.name, event
        elif isinstance(event, ev.ProposalRejected):
            x = self.exp(event)
            x.rejections += 1
            x.first_cause = x.first_cause or f"proposal rejected ({event.reason}): {event.feedback.strip()}"
            self.rejection_reasons[event.reason] += 1
        elif isinstance(event, ev.ProposalCreated):
            x = self.exp(event)
            x.name, x.role = event.name, event.role
            if event.revision == 0 and "proposed" not in x.times:
                x.times["proposed"] = event.occurred_at
                if "sampled" in x.times:
                    self.stage_seconds["propose"].append((event.occurred_at - x.times["sampled"]).total_seconds())
        elif isinstance(event, ev.TrainingStarted):
            x = self.exp(event)
            x.times.setdefault("training", event.occurred_at)
            x.engineer_id = event.engineer_id
            x.calibrated_step_s, x.wall_limit_s = event.calibrated_step_s, event.wall_limit_s
        elif isinstance(event, ev.TrainingProgress):
            x = self.exp(event)
            x.step, x.total_steps, x.engineer_id = event.step, event.total_steps, event.engineer_id
            x.tokens_per_s = event.tokens_per_s if event.tokens_per_s is not None else x.tokens_per_s
        elif isinstance(event, ev.TrainingFailed):
            x = self.exp(event)
            x.failures += 1
            x.last_failure = event
            if not x.first_cause:
                tail = "\n".join((event.log_tail or "").strip().splitlines()[-STDERR_LINES:])
                x.first_cause = f"training failed ({event.kind}): {(event.error or '').strip()}" + (
                    f"\nlast lines of the child's output:\n{tail}" if tail else "")
            self.failure_kinds[event.kind] += 1
        elif isinstance(event, ev.ResultsReady):
            x = self.exp(event)
            x.final_loss, x.benchmark, x.name = event.final_loss, event.benchmark, event.name or x.name
            x.weights_from, x.train_s = event.weights_from, event.train_s
            if "results" not in x.times:
                x.times["results"] = event.occurred_at
                self.stage_seconds["train+eval"].append(event.train_s + event.eval_s)
        elif isinstance(event, ev.ScoreAssigned):
            x = self.exp(event)
            if event.rescore_of is None:
                x.fitness = event.fitness
                if "results" in x.times and "scored" not in x.times:
                    x.times["scored"] = event.occurred_at
                    self.stage_seconds["judge"].append((event.occurred_at - x.times["results"]).total_seconds())
        elif isinstance(event, ev.InsightsStored):
            x = self.exp(event)
            if "scored" in x.times and "insights" not in x.times:
                x.times["insights"] = event.occurred_at
                self.stage_seconds["analyse"].append((event.occurred_at - x.times["scored"]).total_seconds())
        elif isinstance(event, ev.ExperimentAbandoned):
            x = self.exp(event)
            x.abandoned_reason = event.reason

    # ---------------------------------------------------------------- summaries
    def counts(self) -> Counter:
        return Counter(x.status for x in self.experiments.values())

    def in_flight(self) -> int:
        return sum(1 for x in self.experiments.values() if x.status not in TERMINAL and not x.life.ended)

    def best(self) -> ExperimentView | None:
        scored = [x for x in self.experiments.values()
                  if x.role == "candidate" and x.fitness is not None and not math.isnan(x.fitness)]
        return max(scored, key=lambda x: x.fitness) if scored else None

    def baseline_s(self) -> float | None:
        """Sampled to results of the first baseline that has both: what one run costs here, start-up included. A
        reused baseline (its weights trained by an earlier campaign, only scored now) adds that run's training."""
        for x in self.experiments.values():
            if x.role == "baseline" and "sampled" in x.times and "results" in x.times:
                return (x.times["results"] - x.times["sampled"]).total_seconds() + (x.train_s if x.weights_from
                                                                                      else 0.0)
        return None

    def estimate_s(self) -> float | None:
        """The campaign's remaining wall time, once a baseline has trained: each candidate costs about what the
        baseline cost, `SHARED_SLOWDOWN` times more when runs share the CPU, `concurrency` at once."""
        per_run = self.baseline_s()
        if self.started is None or per_run is None:
            return None
        k = max(1, self.started.concurrency)
        left = self.started.budget - sum(1 for x in self.experiments.values()
                                         if x.role == "candidate" and x.status in TERMINAL)
        return math.ceil(max(0, left) / k) * per_run * (SHARED_SLOWDOWN if k > 1 else 1.0)

    def stage_means(self) -> dict[str, float]:
        return {k: sum(v) / len(v) for k, v in self.stage_seconds.items() if v}


# ---------------------------------------------------------------- plain-text progress (no terminal)
def _speed(x: ExperimentView) -> str:
    return f"{x.tokens_per_s:,.0f} tokens/s" if x.tokens_per_s else "speed unknown"


def change_line(x: ExperimentView, before: str | None, event: ev.Event) -> str | None:
    """One line when an experiment changes state (or fails), for logs and CI output."""
    if isinstance(event, ev.TrainingFailed):
        first = (event.error or "").strip().splitlines()[0][:160] if event.error else ""
        return (f"{x.label()}: training failed ({event.kind}) after {event.wall_s:.0f} s at step {x.step}/"
                f"{x.total_steps or '?'}, {_speed(x)}: {first}")
    if isinstance(event, ev.ProposalRejected):
        return f"{x.label()}: proposal rejected ({event.reason})"
    if isinstance(event, ev.TrainingStopped):
        return (f"{x.label()}: stopped early at rung {event.rung} (step {event.step}/{event.total_steps}): held-out "
                f"loss {event.heldout_loss:.4f} vs the baseline's {event.baseline_loss:.4f}")
    if before == x.status:
        return None
    detail = ""
    if x.status == "scoring":
        detail = f": loss {x.final_loss:.4f}, benchmark {x.benchmark:.4f}" if x.final_loss is not None and \
            x.benchmark is not None else ""
        if x.weights_from:
            detail += (f" (weights reused from {x.weights_from}, trained earlier on this machine; scored on this "
                       f"campaign's held-out data)")
    elif x.status == "analysing" and x.fitness is not None:
        detail = f": fitness {x.fitness:.4f}"
    elif x.status == "abandoned":
        detail = f": {x.abandoned_reason}"
    elif x.status == "promoted" and x.promotion is not None:
        detail = f" to {x.promotion.verify_profile} ({x.promotion.source_experiment_id}: {x.promotion.why})"
    return f"{x.label()}: {before or 'new'} -> {x.status}{detail}"


def heartbeat_line(view: CampaignView, elapsed_s: float) -> str:
    c = view.counts()
    budget = view.started.budget if view.started else "?"
    done = sum(1 for x in view.experiments.values() if x.role == "candidate" and x.status in TERMINAL)
    training = [f"{x.name or x.experiment_id[-6:]} step {x.step}/{x.total_steps} {_speed(x)}"
                for x in view.experiments.values() if x.status == "training" and x.total_steps]
    best = view.best()
    verify = [x for x in view.experiments.values() if x.role == "verify"]
    verified = (f", verification runs ended {sum(1 for x in verify if x.status in TERMINAL)}/{len(verify)}"
                if verify else "")
    return (f"[{elapsed_s:6.0f}s] candidates ended {done}/{budget}{verified}, in flight {view.in_flight()}, "
            f"abandoned {c.get('abandoned', 0)}, best "
            f"{f'{best.fitness:.4f} ({best.name})' if best else '-'}"
            + (f"; training: {'; '.join(training)}" if training else ""))


class PlainProgress:
    """Feeds events to a view and returns the lines to print: state changes, then a heartbeat."""

    def __init__(self, view: CampaignView, started_at: float, heartbeat_s: float = 60.0):
        self.view, self.started_at, self.heartbeat_s = view, started_at, heartbeat_s
        self._last_beat = started_at
        self._estimated = False

    def apply(self, event: ev.Event, now: float) -> list[str]:
        if event.campaign_id != self.view.campaign_id:
            return []
        known = self.view.experiments.get(event.experiment_id)
        before = known.status if known else None
        self.view.apply(event)
        out = []
        x = self.view.experiments.get(event.experiment_id)
        if x is not None:
            line = change_line(x, before, event)
            if line:
                out.append(f"[{now - self.started_at:6.0f}s] {line}")
        if isinstance(event, ev.ResultsReady) and x is not None and x.role == "baseline" and not self._estimated:
            est = self.view.estimate_s()
            if est is not None:
                self._estimated = True
                k = int(((self.view.started.config or {}).get("replicate")) or 0)
                extra = (f"; each candidate that claims a win adds {k} replication run(s) on held-out seeds, about "
                         f"{est / max(1, self.view.started.budget) * k / 60:.0f} min" if k else "")
                # an upper bound: a candidate stopped early at a rung (issue 23) costs only part of a training
                out.append(f"[{now - self.started_at:6.0f}s] estimate: at most about {est / 60:.0f} min more for the "
                           f"{self.view.started.budget} candidates, less for each one stopped early at a rung (the "
                           f"baseline took {self.view.baseline_s():.0f} s from sampled to results, "
                           f"{self.view.started.concurrency} run(s) at a time{extra})")
        if isinstance(event, ev.CampaignCompleted):
            out.append(f"[{now - self.started_at:6.0f}s] campaign completed: {event.reason}")
        return out

    def tick(self, now: float) -> list[str]:
        if now - self._last_beat < self.heartbeat_s:
            return []
        self._last_beat = now
        return [heartbeat_line(self.view, now - self.started_at)]


def diagnose(view: CampaignView) -> list[str]:
    """What went wrong that was not the program's fault, with the figures and what to do."""
    out = []
    for x in view.experiments.values():
        f = x.last_failure
        if x.status != "abandoned" or f is None or f.kind not in ("timeout", "too_slow", "memory", "crashed",
                                                                    "infrastructure"):
            continue
        where = f"step {x.step}/{x.total_steps}" if x.total_steps else "before its first progress report"
        line = (f"{x.label()} was abandoned: {f.kind} after {f.wall_s:.0f} s at {where}, {_speed(x)} "
                f"({(f.error or '').strip().splitlines()[0][:200] if f.error else 'no message'}).")
        if x.wall_limit_s and x.calibrated_step_s:
            line += (f" Its wall-time limit was {x.wall_limit_s:.0f} s, set from the engineer's calibrated "
                     f"{x.calibrated_step_s:.3f} s per step on this machine.")
        if f.kind in ("timeout", "too_slow"):
            line += (" Training ran slower than this machine's calibrated speed allows: check that nothing else "
                     "is using the CPU (`archlab status`), or choose a smaller profile (`--profile cpu-micro`).")
        elif f.kind == "memory":
            line += " It hit the sandbox memory limit: choose a smaller profile or raise the profile's memory_limit_mb."
        else:
            line += " The engineer or its sandbox died: see `.archlab/logs/engineer-*.log`."
        out.append(line)
    if view.completed and not scored_candidates(view) and judged_candidates(view):
        out.append(f"no candidate was trained to the end: all {len(judged_candidates(view))} were stopped early, "
                   "far behind the baseline at a rung (not a failure; the log and the report give each verdict).")
    elif view.completed and not scored_candidates(view):
        out.append(f"no candidate was scored (campaign ended: {view.completed_reason or 'unknown reason'}).")
        for x in view.experiments.values():   # the roots first: when they fail nothing else can start
            if x.role == "baseline" and x.status in ("abandoned", "rejected-only"):
                out.append(f"baseline {x.name or x.experiment_id} could not run: "
                           f"{x.first_cause or x.abandoned_reason or 'no cause recorded'}")
        failed = [x for x in view.experiments.values() if x.role != "baseline" and x.first_cause]
        if failed:
            out.append(f"first failure of a candidate ({failed[0].label()}): {failed[0].first_cause}")
        if any(x.role == "baseline" and "sandbox" in x.first_cause for x in view.experiments.values()):
            out.append("run `archlab doctor` to check the sandbox and the rest of the machine")
    return out


def scored_candidates(view: CampaignView) -> list[ExperimentView]:
    return [x for x in view.experiments.values() if x.role == "candidate" and x.fitness is not None]


def judged_candidates(view: CampaignView) -> list[ExperimentView]:
    """Candidates the lab reached a verdict on: scored, or stopped early at a rung by the trusted scorer (a campaign
    whose every candidate fell far behind the baseline did its work)."""
    return [x for x in view.experiments.values() if x.role == "candidate" and (x.fitness is not None
                                                                                 or x.status == "stopped")]


def exit_status(view: CampaignView) -> int:
    """`archlab run`'s exit status once the campaign has completed."""
    return EXIT_OK if judged_candidates(view) else EXIT_NOTHING_SCORED
