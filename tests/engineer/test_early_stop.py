"""Early stopping (issue 23): the weights at a rung are scored by the trusted scorer; the baseline's rung loss is
recorded in its result; a candidate worse than it there by more than the margin is stopped with TrainingStopped,
which ends the experiment without being a failure."""
from pathlib import Path

import pytest

from lab.lifecycle import Lifecycle
from schemas import events as ev
from services.engineer import handlers
from services.engineer.claims import WorkTable, rung_losses
from services.engineer.worker import Worker, WorkerConfig
from tests.engineer.busutil import Collector, publish, settings_for
from tests.engineer.programs import source

# garbage added to the residual stream (deterministic and causal: the scorer's probe accepts it): far worse early
HOPELESS = source("deltanet").replace(
    "return self.o(o.transpose(1, 2).reshape(B, T, D)), None, None",
    "return self.o(o.transpose(1, 2).reshape(B, T, D)) + 5.0 * torch.sin(997.0 * hidden_states), None, None")
assert HOPELESS != source("deltanet")


def proposal(exp, code, **kw):
    return ev.ProposalCreated(campaign_id="c1", experiment_id=exp, name=exp, code=code, motivation="m",
                              profile="cpu-micro", **kw)


STOPPED = {"rung": 1, "step": 80, "total_steps": 800, "heldout_loss": 3.9, "baseline_loss": 2.5,
           "seed_noise": 0.05, "noises": 2.0}


def test_a_stop_ends_the_experiment_without_a_failure_and_the_baseline_rungs_are_read_back():
    p = proposal("exp-x", "code")
    stopped = handlers.stopped_event(p, STOPPED, engineer_id="eng-a", causation_id="claim", wall_s=12.0)
    assert stopped.step == 80 and "rung 1" in stopped.reason and "2 seed noises" in stopped.reason
    assert stopped.event_id == handlers.stopped_event(p, STOPPED, engineer_id="eng-b", causation_id="c",
                                                      wall_s=1.0).event_id   # one fact, whoever publishes it
    life = Lifecycle()
    for e in (p, stopped):
        life.apply(e)
    assert life.status == "stopped" and life.ended and life.run_over(0) and not life.has("failed")

    table = WorkTable("eng-a")
    table.apply(p)
    table.apply(stopped)
    assert not table.claimable()      # never trained again
    base = ev.ResultsReady(campaign_id="c1", experiment_id="exp-b", name="b", role="baseline", profile="cpu-micro",
                           metrics={"rung/80/heldout_loss": 2.5, "mqar_recall/acc": 0.5, "rung/x/heldout_loss": 1})
    table.apply(base)
    assert rung_losses(base.metrics) == {80: 2.5}
    assert table.baseline_rung_loss(p, 80) == 2.5 and table.baseline_rung_loss(p, 160) is None
    assert table.baseline_rung_loss(proposal("exp-y", "code").model_copy(update={"campaign_id": "c2"}), 80) is None


def test_rungs_fall_on_loss_curve_points_inside_the_run(tmp_path):
    from lab.training.profiles import get_profile
    w = Worker(settings_for("127.0.0.1:1", tmp_path), WorkerConfig(engineer_id="e", rung_fracs=(0.25, 0.5, 1.0)))
    assert w.rung_steps(get_profile("cpu-tiny")) == (160, 320)       # 650 steps, log_every 10
    assert w.rung_steps(get_profile("cpu-micro", steps=5, log_every=5, checkpoint_every=5)) == ()


@pytest.mark.slow
@pytest.mark.integration
async def test_a_hopeless_candidate_is_stopped_at_its_rung_and_the_baseline_is_not(kafka_broker, tmp_path):
    # cpu-micro's own seed noise (1.4) is a plateau's; here a margin of 2 x 0.05 at the rung, at 1/10 of 400 steps
    overrides = {"steps": 400, "eval_examples": 32, "seed_noise": {"loss": 0.05}}
    w = Worker(settings_for(kafka_broker, tmp_path),
               WorkerConfig(engineer_id="eng-a", lease_s=30, heartbeat_s=1.0, profile_overrides=overrides,
                            rung_fracs=(0.1,), stop_noises=2.0))
    async with Collector(kafka_broker) as log:
        await w.start()
        try:
            await publish(kafka_broker, proposal("exp-base", source("deltanet"), role="baseline"))
            await log.wait_for(lambda: log.of(ev.ResultsReady) or log.of(ev.TrainingFailed), timeout=400)
            await publish(kafka_broker, proposal("exp-bad", HOPELESS))
            await log.wait_for(lambda: log.of(ev.TrainingStopped) or log.of(ev.ResultsReady, experiment_id="exp-bad")
                               or log.of(ev.TrainingFailed), timeout=400)
        finally:
            await w.stop()
    assert not log.of(ev.TrainingFailed), log.of(ev.TrainingFailed)[0].log_tail
    (base,) = log.of(ev.ResultsReady)
    assert base.steps == 400 and 0 < base.metrics["rung/40/heldout_loss"] < 10   # recorded for later candidates
    (stop,) = log.of(ev.TrainingStopped)
    assert (stop.experiment_id, stop.rung, stop.step, stop.total_steps) == ("exp-bad", 1, 40, 400)
    assert stop.baseline_loss == base.metrics["rung/40/heldout_loss"]
    assert stop.heldout_loss > stop.baseline_loss + 2 * 0.05
    # it waited at the rung for the verdict (runner.Job.rung_go): not one step past it
    assert max(b.step for b in log.of(ev.TrainingProgress, experiment_id="exp-bad")) <= 40


def test_a_stopped_run_costs_its_wall_time_in_the_device_budget():
    from types import SimpleNamespace

    from services.archive.budget import device_s

    doc = {"experiment_id": "exp-x"}
    life = Lifecycle.of(doc)
    p = proposal("exp-x", "code")
    claim = ev.TrainingStarted(campaign_id="c1", experiment_id="exp-x", engineer_id="eng-a", lease_s=60,
                               proposal_event_id=p.event_id)
    for e in (p, claim, handlers.stopped_event(p, STOPPED, engineer_id="eng-a", causation_id="c", wall_s=12.0)):
        life.apply(e)
    doc["stopped"] = {"wall_s": 12.0}
    doc["progress"] = {"revision": 0, "elapsed_s": 10.0}   # the last heartbeat: not counted on top
    assert device_s(SimpleNamespace(attempts=lambda eid: []), doc) == 12.0


def test_the_margin_at_a_rung_is_the_seed_noise_measured_at_that_step():
    from lab.training.profiles import get_profile
    tiny = get_profile("cpu-tiny")
    w = Worker(settings_for("127.0.0.1:1", Path("unused")), WorkerConfig(engineer_id="e"))
    rungs = w.rung_steps(tiny)
    assert rungs == (260, 320, 490)                              # the defaults: 0.4, 1/2 and 3/4 of 650 steps
    assert all(step in tiny.rung_loss_noise for step in rungs)   # each with its own measured noise
    # leaving the plateau the seeds spread: at 1/2 the noise is about twice the final loss's, at 1/4 far more
    assert tiny.loss_noise_at(320) > 1.5 * tiny.seed_noise["loss"]
    assert tiny.loss_noise_at(160) > 10 * tiny.seed_noise["loss"]
    assert tiny.loss_noise_at(160) > tiny.loss_noise_at(260) > tiny.loss_noise_at(320)   # the spread closes
    assert tiny.loss_noise_at(330) == tiny.seed_noise["loss"]    # not measured there: the final loss's
    # another curve (other steps) does not inherit the noises measured on this one
    assert get_profile("cpu-tiny", steps=980).loss_noise_at(490) == tiny.seed_noise["loss"]
    assert get_profile("cpu-tiny", eval_examples=32).loss_noise_at(320) == tiny.loss_noise_at(320)
    assert get_profile("cpu-micro").loss_noise_at(40) == get_profile("cpu-micro").seed_noise["loss"]


def test_a_run_waits_at_its_rung_for_the_go_ahead_and_trains_on_without_one(tmp_path, monkeypatch):
    """Job.rung_go: the run saves the rung's weights, says so, and trains no further step until the engineer's
    go-ahead appears (here 1 s later); without one it trains on after RUNG_WAIT_S."""
    import threading
    import time

    from lab.training import runner

    def job(name, go):
        return runner.TrainJob(code=source("deltanet"), profile="cpu-micro", seed=0, workdir=str(tmp_path / name),
                               evaluate=False, rungs=[4], rung_go=go,
                               profile_overrides={"steps": 8, "log_every": 2, "checkpoint_every": 8,
                                                  "eval_examples": 8})

    go = tmp_path / "rung-{step}.go"
    stamps: dict[int, float] = {}

    def give_go() -> None:
        stamps["go"] = time.monotonic()
        Path(str(go).format(step=4)).touch()

    def progress(step, **_) -> None:
        stamps[step] = time.monotonic()
        if step == 2:   # the go-ahead 1 s after step 2, while the run waits at step 4
            threading.Timer(1.0, give_go).start()
    out = runner.run_job(job("a", str(go)), on_progress=progress)
    assert out.steps == 8 and (tmp_path / "a" / "rung-4" / runner.WEIGHTS_NAME).is_file()
    assert stamps[4] >= stamps["go"] >= stamps[2] + 1.0   # step 4's progress (after its rung) only after the go-ahead

    monkeypatch.setattr(runner, "RUNG_WAIT_S", 0.5)
    t0 = time.monotonic()
    out = runner.run_job(job("b", str(tmp_path / "never-{step}.go")))
    assert out.steps == 8 and time.monotonic() - t0 >= 0.5
