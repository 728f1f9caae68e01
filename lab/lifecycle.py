"""An experiment's lifecycle, folded from its events: the one definition every reader uses.

    life = Lifecycle()
    for event in events_of_one_experiment:      # any order: status is a precedence over facts
        life.apply(event)
    life.status    # sampled | proposing | training | failed | scoring | score_error | analysing | done
                   # | abandoned | rejected-only | promoted
    life.ended     # the campaign's slot is free: analysed (with its result and score in), or abandoned
    life.run_over(revision)   # no engineer should train this revision (any more)

The archive's projection stores `facts` and `revisions` in its document (so it is rebuilt by a
replay like every other field), the report, the live progress view, the scheduler and the
engineer's work table fold the same events through this class. A new event that changes an
experiment's state gets one line in `FACT_OF`, and its meaning in `status`.

The states, in the order they usually happen:

    sampled -> proposing (rejections so far) -> training (a proposal passed the checks: queued or
    running) -> failed (the latest revision failed; the debugger may still revise it) -> training
    (revision n+1) -> scoring (results, no score yet) -> analysing (scored) -> done (insights)

A verification run (two-stage promotion) starts one step earlier: promoted (the archive chose it; its
ParentSampled comes once the verification profile's baseline is measured) -> sampled -> ...

and the other endings: score_error (results whose score has no fitness), abandoned (no result will
come), rejected-only (abandoned before any proposal passed the checks), stopped (early stopping at a rung:
worse than the baseline there by more than the set margin; issue 23). A result outranks an
abandonment: what was measured stays measured. An imported program is done.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from schemas import events as ev

STATUSES = ("promoted", "sampled", "proposing", "training", "failed", "scoring", "score_error", "analysing", "done",
            "abandoned", "rejected-only", "stopped")
# an engineer or a researcher still has work (promoted: a verification run waits for its profile's baseline)
IN_FLIGHT = ("promoted", "sampled", "proposing", "training", "failed")
SETTLED = ("done", "abandoned", "rejected-only", "score_error", "stopped")  # nothing more is expected by default

# the fact each event records (a ScoreAssigned records "scored" or "score_error", see apply)
FACT_OF: dict[type, str] = {
    ev.ParentSampled: "sampled",
    ev.ExperimentPromoted: "promoted",
    ev.ExperimentImported: "imported",
    ev.ProposalRejected: "rejected",
    ev.ProposalCreated: "proposed",
    ev.TrainingStarted: "started",
    ev.TrainingFailed: "failed",
    ev.TrainingStopped: "stopped",   # early stopping at a rung (issue 23): ended, not a failure
    ev.ResultsReady: "results",
    ev.InsightsStored: "insights",
    ev.ExperimentAbandoned: "abandoned",
}
REVISIONED = ("proposed", "started", "failed", "results")   # facts that also keep their latest revision


def concerns(event: ev.Event) -> bool:
    """Whether the event changes an experiment's lifecycle (campaign events and heartbeats do not)."""
    return type(event) in FACT_OF or isinstance(event, ev.ScoreAssigned)


def new_revisions() -> dict[str, int]:
    return {name: -1 for name in REVISIONED}


@dataclass
class Lifecycle:
    """The facts about one experiment. `facts` and `revisions` may be a stored document's own dicts:
    the fold then updates the document in place (the archive's projection does this)."""
    facts: dict[str, bool] = field(default_factory=dict)
    revisions: dict[str, int] = field(default_factory=new_revisions)

    @classmethod
    def of(cls, doc: dict) -> "Lifecycle":
        """The lifecycle stored in an archive document (`facts`, `revisions`), folded in place."""
        return cls(doc.setdefault("facts", {}), doc.setdefault("revisions", new_revisions()))

    def apply(self, event: ev.Event) -> str | None:
        """Fold one event in; returns the fact it recorded (None for an event that changes no state)."""
        if isinstance(event, ev.ScoreAssigned):
            # a late score (rescore_of) that has a fitness clears an error; other rescorings change nothing
            if event.fitness is not None:
                self.facts["scored"] = True
                return "scored"
            if event.rescore_of is None:
                self.facts["score_error"] = True
                return "score_error"
            return None
        fact = FACT_OF.get(type(event))
        if fact is None:
            return None
        self.facts[fact] = True
        if fact in REVISIONED:
            self.revisions[fact] = max(self.revisions.get(fact, -1), event.revision)
        return fact

    def has(self, fact: str) -> bool:
        return bool(self.facts.get(fact))

    @property
    def status(self) -> str:
        """The status as a precedence over facts (never over arrival order)."""
        has, rev = self.has, self.revisions
        if has("insights") or (has("imported") and not has("proposed")):
            return "done"
        if has("results"):
            if has("scored"):
                return "analysing"
            return "score_error" if has("score_error") else "scoring"
        if has("stopped"):
            return "stopped"
        if has("abandoned"):
            return "rejected-only" if has("rejected") and not has("proposed") else "abandoned"
        if has("failed") and rev.get("failed", -1) >= rev.get("proposed", -1):
            return "failed"
        if has("proposed"):
            return "training"
        if has("rejected"):
            return "proposing"
        return "promoted" if has("promoted") and not has("sampled") else "sampled"

    @property
    def ended(self) -> bool:
        """The experiment holds no more of the campaign's budget: it was abandoned, or its insights are stored and
        the result and score they were made from are folded in too. Topics are not ordered with each other, so
        a reader of several (the archive) may see an InsightsStored before its ResultsReady or ScoreAssigned; a
        decision taken then (promotion, "n verified") would miss the result."""
        if self.has("abandoned") or self.has("stopped"):
            return True
        return self.has("insights") and self.has("results") and (self.has("scored") or self.has("score_error"))

    def run_over(self, revision: int) -> bool:
        """Revision `revision` needs no (more) training: the experiment has a result, this revision (or a
        later one) failed, or a later revision was proposed."""
        return (self.has("results") or self.has("stopped") or self.revisions.get("failed", -1) >= revision
                or self.revisions.get("proposed", -1) > revision)
