"""The engineer's work table: which proposals wait, who trains what, and whose lease expired.

Every engineer reads every ProposalCreated, TrainingStarted, TrainingProgress, ResultsReady and
TrainingFailed (all partitions, no consumer-group ownership) and folds them into this table. No
Kafka here: `apply(event)` is called in log order per partition, and the same log gives every
engineer the same answer to "who owns run (experiment, revision)?".

The log-based lock. A claim is a TrainingStarted keyed by experiment_id, so every claim of one
experiment lands in one partition, totally ordered. Walking the claims of a run in log order:
  owner = None
  for claim in claims:              # a compare-and-swap on the log
      if claim.takeover_of == owner: owner = claim   # the first claim, or a takeover of the owner
      else: the claim lost                           # someone else got there first
An engineer claims when the run has no owner, or when the owner's lease expired (no claim or
heartbeat of the owner for lease_s); it then reads the log back past its own claim and trains only
if its claim is the owner. A stale takeover (takeover_of names an engineer that is no longer the
owner) loses, so two engineers racing to take over the same dead engineer cannot both win.

Lease clock: an event counts as seen at min(local receipt time, its occurred_at), so an engineer
that starts and replays old history sees old heartbeats as old (clock skew between hosts must stay
well below lease_s, which NTP gives).
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Callable

from lab.lifecycle import Lifecycle
from schemas import events as ev

RunKey = tuple[str, int]  # (experiment_id, revision)
RUNG_METRIC = "rung/{step}/heldout_loss"   # a result's trusted held-out loss at a rung (early stopping, issue 23)


def rung_losses(metrics: dict[str, float]) -> dict[int, float]:
    """step -> held-out loss of the rung metrics in a result's metrics."""
    out = {}
    for key, value in metrics.items():
        parts = key.split("/")
        if len(parts) == 3 and parts[0] == "rung" and parts[2] == "heldout_loss" and parts[1].isdigit():
            out[int(parts[1])] = value
    return out


@dataclass
class Claim:
    event_id: str
    engineer_id: str
    takeover_of: str | None
    lease_s: float
    seen_at: float
    won: bool


@dataclass
class Run:
    """One revision of one experiment, as the log tells it."""
    experiment_id: str
    revision: int
    proposal: ev.ProposalCreated | None = None
    arrival: int = 0                           # order in which the proposal was seen (FIFO scheduling)
    claims: list[Claim] = field(default_factory=list)
    owner: Claim | None = None
    beats: dict[str, float] = field(default_factory=dict)  # engineer -> last heartbeat seen (any order vs claims)
    step: int = 0
    checkpoint_step: int | None = None         # the furthest checkpoint any engineer reported for this run
    outcome: str | None = None                 # "results" | "failed" | "stopped": the run is over

    @property
    def owner_id(self) -> str | None:
        return self.owner.engineer_id if self.owner else None

    @property
    def last_beat(self) -> float:
        """When the owner was last heard of: its claim or its latest heartbeat."""
        if self.owner is None:
            return 0.0
        return max(self.owner.seen_at, self.beats.get(self.owner.engineer_id, 0.0))

    def lease_expired(self, now: float) -> bool:
        return self.owner is not None and now - self.last_beat > self.owner.lease_s


class WorkTable:
    def __init__(self, engineer_id: str, *, clock: Callable[[], float] = time.time):
        self.engineer_id = engineer_id
        self.clock = clock
        self.born = clock()   # claims of our engineer_id older than this are a previous life's
        self.runs: dict[RunKey, Run] = {}
        self.lives: dict[str, Lifecycle] = {}            # experiment -> its lifecycle (lab/lifecycle.py)
        self.baseline_step_s: dict[tuple[str, str, str], float] = {}  # (campaign, profile, device) -> s/step
        self.baseline_probe_s: dict[tuple[str, str, str], float] = {}  # the same key -> the load probe's cost
        self.baseline_rungs: dict[tuple[str, str], dict[int, float]] = {}  # (campaign, profile) -> step -> loss
        self._seen: set[str] = set()
        self._arrivals = 0

    # ---------------------------------------------------------------- folding the log
    def run(self, experiment_id: str, revision: int) -> Run:
        key = (experiment_id, revision)
        if key not in self.runs:
            self.runs[key] = Run(experiment_id, revision)
        return self.runs[key]

    def _seen_at(self, event: ev.Event) -> float:
        return min(self.clock(), event.occurred_at.timestamp())

    def apply(self, event: ev.Event) -> bool:
        """Fold one event in (idempotent by event_id). Returns False for a duplicate."""
        if event.event_id in self._seen:
            return False
        self._seen.add(event.event_id)
        self.lives.setdefault(event.experiment_id, Lifecycle()).apply(event)
        if isinstance(event, ev.ProposalCreated):
            run = self.run(event.experiment_id, event.revision)
            if run.proposal is None:
                run.proposal, run.arrival = event, self._arrivals
                self._arrivals += 1
        elif isinstance(event, ev.TrainingStarted):
            self._apply_claim(event)
        elif isinstance(event, ev.TrainingProgress):
            # kept per engineer: heartbeats and claims are on different topics, so a replay may
            # bring a heartbeat before the claim that made its sender the owner
            run = self.run(event.experiment_id, event.revision)
            run.beats[event.engineer_id] = max(run.beats.get(event.engineer_id, 0.0), self._seen_at(event))
            run.step = max(run.step, event.step)
            if event.checkpoint_step is not None:
                run.checkpoint_step = max(run.checkpoint_step or 0, event.checkpoint_step)
        elif isinstance(event, ev.ResultsReady):
            self.run(event.experiment_id, event.revision).outcome = "results"
            if event.role == "baseline" and event.step_time_s:
                self.baseline_step_s.setdefault((event.campaign_id, event.profile, event.device), event.step_time_s)
                if event.probe_s:
                    self.baseline_probe_s.setdefault((event.campaign_id, event.profile, event.device), event.probe_s)
            if event.role == "baseline" and (rungs := rung_losses(event.metrics)):
                self.baseline_rungs.setdefault((event.campaign_id, event.profile), rungs)
        elif isinstance(event, ev.TrainingStopped):
            run = self.run(event.experiment_id, event.revision)
            run.outcome = run.outcome or "stopped"
        elif isinstance(event, ev.TrainingFailed):
            run = self.run(event.experiment_id, event.revision)
            run.outcome = run.outcome or "failed"
        return True

    def _apply_claim(self, event: ev.TrainingStarted) -> None:
        run = self.run(event.experiment_id, event.revision)
        won = event.takeover_of == run.owner_id  # the compare-and-swap (see the module docstring)
        claim = Claim(event.event_id, event.engineer_id, event.takeover_of, event.lease_s, self._seen_at(event), won)
        run.claims.append(claim)
        if won:
            run.owner = claim

    # ---------------------------------------------------------------- questions the worker asks
    def is_over(self, run: Run) -> bool:
        """The run needs no (more) training: the lifecycle's answer for its revision."""
        life = self.lives.get(run.experiment_id)
        return run.outcome is not None or (life is not None and life.run_over(run.revision))

    def claimable(self, now: float | None = None) -> list[Run]:
        """Runs an idle engineer may claim now: baselines first (candidates need their step time), then FIFO."""
        now = self.clock() if now is None else now
        ready = [r for r in self.runs.values()
                 if r.proposal is not None and not self.is_over(r)
                 and (r.owner is None or r.lease_expired(now) or self.orphaned(r))]
        return sorted(ready, key=lambda r: (r.proposal.role != "baseline", r.arrival))

    def orphaned(self, run: Run) -> bool:
        """Owned by our engineer_id in a previous life (killed and restarted): ours to resume at once,
        with no need to wait for the lease to expire. Needs a stable engineer_id (the stack sets one)."""
        return run.owner is not None and run.owner.engineer_id == self.engineer_id and run.owner.seen_at < self.born

    def next_claimable(self, now: float | None = None, window: int = 8) -> Run | None:
        """The run to claim: among the oldest `window` ready runs of the first priority class, the one
        this engineer ranks first by rendezvous hashing. Idle engineers then spread over different runs
        instead of all racing for the oldest one (a lost race costs a claim round trip), while the
        order stays close to FIFO."""
        ready = self.claimable(now)
        if not ready:
            return None
        first_class = ready[0].proposal.role == "baseline"
        head = [r for r in ready if (r.proposal.role == "baseline") == first_class][:window]
        return min(head, key=lambda r: hashlib.sha256(
            f"{self.engineer_id}/{r.proposal.experiment_id}/{r.proposal.revision}".encode()).digest())

    def claim_seen(self, experiment_id: str, revision: int, claim_id: str) -> bool:
        return any(c.event_id == claim_id for c in self.run(experiment_id, revision).claims)

    def holds(self, experiment_id: str, revision: int, claim_id: str) -> bool:
        """True while `claim_id` is the run's owning claim (the lock is still ours)."""
        owner = self.run(experiment_id, revision).owner
        return owner is not None and owner.event_id == claim_id

    def reference_step_s(self, proposal: ev.ProposalCreated, device: str) -> float | None:
        """The monitor's reference: the campaign's baseline step time on this profile and device."""
        if proposal.role == "baseline":
            return None
        return self.baseline_step_s.get((proposal.campaign_id, proposal.profile, device))

    def reference_probe_s(self, proposal: ev.ProposalCreated, device: str) -> float | None:
        """The load the baseline ran under (the monitor's probe cost), which scales its step time for the monitor."""
        if proposal.role == "baseline":
            return None
        return self.baseline_probe_s.get((proposal.campaign_id, proposal.profile, device))

    def baseline_rung_loss(self, proposal: ev.ProposalCreated, step: int) -> float | None:
        """Early stopping's reference: the campaign baseline's trusted held-out loss at rung `step`."""
        return self.baseline_rungs.get((proposal.campaign_id, proposal.profile), {}).get(step)

    def mark_over(self, experiment_id: str, revision: int, outcome: str) -> None:
        """Our own result, before it comes back from the log: never claim this run again."""
        run = self.run(experiment_id, revision)
        run.outcome = run.outcome or outcome
