"""Small hand-written event helpers for archive tests (explicit times, so orders are under control)."""
from datetime import datetime, timedelta, timezone

from schemas import events as ev

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)
CAMP = "camp"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def mk(cls, exp: str, t: float, campaign: str = CAMP, **fields):
    return cls(campaign_id=campaign, experiment_id=exp, occurred_at=at(t), producer="test", **fields)


def snap(exp: str, name: str | None = None, code: str = "x = 1") -> ev.ProgramSnapshot:
    return ev.ProgramSnapshot(experiment_id=exp, name=name or exp, code=code)


def experiment_life(exp: str, parent: str, t0: float = 0.0, fitness: float = 0.5, campaign: str = CAMP,
                    fail_first: bool = False) -> list[ev.Event]:
    """A whole candidate life: sampled, one rejection, proposal(s), training, results, score, insights."""
    out = [mk(ev.ParentSampled, exp, t0, campaign, parent=snap(parent), references=[snap("r1"), snap("r2")]),
           mk(ev.ProposalRejected, exp, t0 + 1, campaign, attempt=1, reason="duplicate", feedback="repeats r1"),
           mk(ev.ProposalCreated, exp, t0 + 2, campaign, name=f"{exp}-v0", code="v0", motivation="m", attempt=2,
              parent_id=parent)]
    revision = 0
    if fail_first:
        out += [mk(ev.TrainingStarted, exp, t0 + 3, campaign, engineer_id="e1"),
                mk(ev.TrainingFailed, exp, t0 + 4, campaign, kind="runtime_error", error="boom"),
                mk(ev.ProposalCreated, exp, t0 + 5, campaign, name=f"{exp}-v1", code="v1", motivation="m",
                   attempt=2, revision=1, origin="debugger", parent_id=parent)]
        revision = 1
    out += [mk(ev.TrainingStarted, exp, t0 + 6, campaign, engineer_id="e1", revision=revision),
            mk(ev.TrainingProgress, exp, t0 + 7, campaign, engineer_id="e1", step=50, total_steps=100, loss=2.0,
               revision=revision),
            mk(ev.ResultsReady, exp, t0 + 8, campaign, name=f"{exp}-v{revision}", revision=revision, final_loss=1.3,
               benchmark=0.6, metrics={"acc": 0.6}),
            mk(ev.ScoreAssigned, exp, t0 + 9, campaign, fitness=fitness, loss_score=0.4, benchmark_score=0.6),
            mk(ev.InsightsStored, exp, t0 + 10, campaign, synthesis="works", experience="gates help",
               cognition_ids=["cog-1"])]
    return out
