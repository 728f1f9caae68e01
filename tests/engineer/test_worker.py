"""The engineer worker on the embedded broker, with a fake runner (tests/engineer/fake_runner.py):
the claim protocol, heartbeats, results, failures, takeover after a lease expiry."""
import asyncio

import pytest

from schemas import events as ev
from services.engineer.worker import Worker, WorkerConfig
from tests.engineer.busutil import Collector, publish, settings_for

pytestmark = pytest.mark.integration
FAKE = dict(runner_module="tests.engineer.fake_runner", preimport=(), lease_s=3.0, heartbeat_s=0.5,
            claim_timeout_s=20)


def proposal(exp, code="# fake: steps=20 step_s=0.01", **kw):
    return ev.ProposalCreated(campaign_id="c1", experiment_id=exp, name=exp, code=code, motivation="m",
                              profile="cpu-micro", **kw)


def make_worker(bootstrap, data_dir, engineer_id, **overrides):
    return Worker(settings_for(bootstrap, data_dir), WorkerConfig(engineer_id=engineer_id, **{**FAKE, **overrides}))


async def test_a_proposal_is_claimed_trained_and_reported_once(kafka_broker, tmp_path):
    worker = make_worker(kafka_broker, tmp_path, "eng-a", profile_overrides={"steps": 30})
    async with Collector(kafka_broker) as log:
        await worker.start()
        try:
            await publish(kafka_broker, proposal("exp-ok", code="# fake: steps=30 step_s=0.05"))
            await log.wait_for(lambda: log.of(ev.ResultsReady))
        finally:
            await worker.stop()
        started = log.of(ev.TrainingStarted, experiment_id="exp-ok")
        assert [(s.engineer_id, s.takeover_of, s.revision) for s in started] == [("eng-a", None, 0)]
        beats = log.of(ev.TrainingProgress, experiment_id="exp-ok")
        assert beats and all(b.engineer_id == "eng-a" and b.total_steps == 30 for b in beats)
        assert [b.step for b in beats] == sorted(b.step for b in beats)
        (res,) = log.of(ev.ResultsReady)
        assert res.engineer_id == "eng-a" and res.steps == 30 and res.final_loss == pytest.approx(5 / 30)
        assert res.loss_curve[0] == (1, 5.0) and len(res.loss_curve) == 30
        assert res.step_time_s == pytest.approx(0.05) and res.metrics == {"fake/acc": 0.5}
        assert res.causation_id == started[0].event_id
        assert worker.completed == [("exp-ok", 0, "results")]


async def test_a_failing_program_yields_training_failed_with_its_traceback(kafka_broker, tmp_path):
    worker = make_worker(kafka_broker, tmp_path, "eng-a")
    async with Collector(kafka_broker) as log:
        await worker.start()
        try:
            await publish(kafka_broker, proposal("exp-bug", code="# fake: steps=10 fail=1 fail_step=3"),
                          proposal("exp-syntax", code="# fake: fail_at_build=1"))
            await log.wait_for(lambda: len(log.of(ev.TrainingFailed)) == 2)
        finally:
            await worker.stop()
        bug = log.of(ev.TrainingFailed, experiment_id="exp-bug")[0]
        assert bug.kind == "runtime_error" and "shape mismatch" in bug.error
        assert "Traceback (most recent call last)" in bug.traceback and "fake_runner.py" in bug.traceback
        assert bug.code == "# fake: steps=10 fail=1 fail_step=3" and bug.evidence["last_step"] == 2
        syntax = log.of(ev.TrainingFailed, experiment_id="exp-syntax")[0]
        assert syntax.kind == "compile_error"
        assert not log.of(ev.ResultsReady)


async def test_two_engineers_share_the_work_and_each_run_completes_once(kafka_broker, tmp_path):
    workers = [make_worker(kafka_broker, tmp_path, f"eng-{i}") for i in range(2)]
    exps = [f"exp-{i}" for i in range(6)]
    async with Collector(kafka_broker) as log:
        for w in workers:
            await w.start()
        try:
            await publish(kafka_broker, *[proposal(e, code="# fake: steps=10 step_s=0.05") for e in exps])
            await log.wait_for(lambda: len(log.of(ev.ResultsReady)) == len(exps), timeout=90)
            await asyncio.sleep(1.0)  # nothing more may come
        finally:
            for w in workers:
                await w.stop()
        assert sorted(r.experiment_id for r in log.of(ev.ResultsReady)) == exps
        done_by = [r.engineer_id for r in log.of(ev.ResultsReady)]
        assert set(done_by) == {"eng-0", "eng-1"}  # an idle engineer took work; none waited behind the other
        for e in exps:  # any claim that lost got no run
            winners = {s.engineer_id for s in log.of(ev.TrainingStarted, experiment_id=e)} & set(done_by)
            assert len(winners) >= 1


async def test_a_dead_engineers_run_is_taken_over_from_its_checkpoint(kafka_broker, tmp_path):
    every5 = {"steps": 60, "log_every": 5, "checkpoint_every": 5}  # as the fake runner checkpoints
    a = make_worker(kafka_broker, tmp_path, "eng-a", profile_overrides=every5)
    b = make_worker(kafka_broker, tmp_path, "eng-b", profile_overrides=every5)
    async with Collector(kafka_broker) as log:
        await a.start()
        try:
            await publish(kafka_broker, proposal("exp-long", code="# fake: steps=60 step_s=0.1"))
            await log.wait_for(lambda: any(p.step >= 12 for p in log.of(ev.TrainingProgress)), timeout=60)
            # eng-a dies: its tasks stop, its sandbox child is killed, it publishes nothing more
            for task in a._tasks:
                task.cancel()
            await b.start()
            await log.wait_for(lambda: log.of(ev.ResultsReady), timeout=90)
            await asyncio.sleep(1.0)
        finally:
            await b.stop()
            await a.stop()
        claims = log.of(ev.TrainingStarted, experiment_id="exp-long")
        assert [(c.engineer_id, c.takeover_of) for c in claims] == [("eng-a", None), ("eng-b", "eng-a")]
        assert claims[1].resumed_from_step >= 10
        (res,) = log.of(ev.ResultsReady)
        assert res.engineer_id == "eng-b" and res.steps == 60
        assert res.loss_curve[0][0] > 10  # the fake runner's curve starts where it resumed
        assert not log.of(ev.TrainingFailed)
