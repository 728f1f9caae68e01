"""The engineer end to end on the embedded broker with the real runner (profile cpu-micro):
results with a real loss curve and lm-eval scores, a bug's traceback, the debugger's fix through the
scripted LLM, and a kill -9 of an engineer mid-run with two engineers up."""
import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from schemas import events as ev
from services.debugger.main import build as build_debugger
from services.engineer.worker import Worker, WorkerConfig
from tests.engineer.busutil import Collector, publish, settings_for
from tests.engineer.programs import source
from tests.support.scripted_llm import scripted_llm  # noqa: F401  (fixture)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
SHORT = {"steps": 40, "eval_examples": 32}
BUGGY = source("deltanet").replace("return self.o(o.transpose(1, 2).reshape(B, T, D)), None, None",
                                   "return self.o(o.reshape(B, T, 7)), None, None")
assert BUGGY != source("deltanet")


def proposal(exp, code, **kw):
    return ev.ProposalCreated(campaign_id="c1", experiment_id=exp, name=exp, code=code, motivation="delta rule",
                              profile="cpu-micro", **kw)


def worker(bootstrap, data_dir, engineer_id, **kw):
    return Worker(settings_for(bootstrap, data_dir),
                  WorkerConfig(engineer_id=engineer_id, lease_s=20, heartbeat_s=1.0, profile_overrides=SHORT, **kw))


async def test_a_proposal_trains_for_real_and_results_carry_curve_and_lm_eval_scores(kafka_broker, tmp_path):
    w = worker(kafka_broker, tmp_path, "eng-a")
    async with Collector(kafka_broker) as log:
        await w.start()
        try:
            await publish(kafka_broker, proposal("exp-delta", source("deltanet"), role="baseline"))
            await log.wait_for(lambda: log.of(ev.ResultsReady) or log.of(ev.TrainingFailed), timeout=240)
        finally:
            await w.stop()
    assert not log.of(ev.TrainingFailed), log.of(ev.TrainingFailed)[0].log_tail
    (res,) = log.of(ev.ResultsReady)
    assert res.role == "baseline" and res.steps == 40 and res.tokens == 40 * 32 * 64 and res.device == "cpu"
    assert [s for s, _ in res.loss_curve] == [10, 20, 30, 40]
    # final_loss is the trusted scorer's held-out loss (scoring.py), near the end of the training curve
    assert res.loss_curve[-1][1] < res.loss_curve[0][1]
    assert res.final_loss == pytest.approx(res.loss_curve[-1][1], abs=0.3)
    assert res.metrics["train/claimed_final_loss"] == res.loss_curve[-1][1]
    assert {"mqar_recall/acc", "mqar_mc/acc"} <= set(res.metrics) and 0 <= res.benchmark <= 1
    # the monitor's step cost on a CPU is the training process's CPU time: at most its wall time
    assert 0 < res.step_time_s <= 1.05 * res.train_s / 40 and res.params > 10_000
    beats = log.of(ev.TrainingProgress)
    assert beats and max(b.step for b in beats) <= 40 and all(b.engineer_id == "eng-a" for b in beats)
    assert not any((tmp_path / "scratch" / "eng-a").iterdir())  # scratch removed, checkpoints kept
    assert (tmp_path / "checkpoints" / "exp-delta" / "rev0" / "latest.pt").exists()


async def test_a_bug_fails_with_its_traceback_and_the_debuggers_fix_trains_as_revision_1(
        kafka_broker, tmp_path, scripted_llm):
    scripted_llm.reply_json({"diagnosis": "reshape to a wrong width", "changes": "reshape to (B, T, D)",
                             "code": source("deltanet")})
    w = worker(kafka_broker, tmp_path / "eng", "eng-a")
    debugger = build_debugger(scripted_llm.settings(tmp_path / "dbg", kafka_bootstrap=kafka_broker, partitions=4))
    async with Collector(kafka_broker) as log:
        await w.start()
        await debugger.start()
        try:
            await publish(kafka_broker, proposal("exp-bug", BUGGY))
            await log.wait_for(lambda: log.of(ev.ResultsReady) or log.of(ev.ExperimentAbandoned), timeout=300)
        finally:
            await debugger.stop()
            await w.stop()
    (failure,) = log.of(ev.TrainingFailed)
    assert failure.revision == 0 and failure.kind == "runtime_error" and failure.code == BUGGY
    assert "Traceback (most recent call last)" in failure.traceback and "<program" in failure.traceback
    assert "reshape(B, T, 7)" in failure.traceback  # the program's own line, via linecache
    assert "reshape(B, T, 7)" in scripted_llm.prompt(0)
    fix = log.of(ev.ProposalCreated, revision=1)[0]
    assert fix.origin == "debugger" and fix.code == source("deltanet")
    (res,) = log.of(ev.ResultsReady)
    assert res.revision == 1 and res.experiment_id == "exp-bug" and res.final_loss < 5
    assert [c.revision for c in log.of(ev.TrainingStarted)] == [0, 1]
    assert not log.of(ev.ExperimentAbandoned)


def start_engineer(bootstrap, data_dir, engineer_id, log_dir):
    env = {**os.environ, "ARCHLAB_KAFKA_BOOTSTRAP": bootstrap, "ARCHLAB_DATA_DIR": str(data_dir),
           "ARCHLAB_PARTITIONS": "4", "ARCHLAB_ENGINEER_LEASE_S": "6", "ARCHLAB_ENGINEER_HEARTBEAT_S": "1"}
    out = open(log_dir / f"{engineer_id}.log", "wb")
    return subprocess.Popen([sys.executable, "-m", "services.engineer.main", "--engineer-id", engineer_id],
                            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


def sandbox_children_of(engineer_id):
    """Pids of live sandbox children started by `engineer_id` (their job path names its scratch dir)."""
    pids = []
    for d in Path("/proc").iterdir():
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "lab.sandbox" in cmd and f"/scratch/{engineer_id}/" in cmd:
            pids.append(int(d.name))
    return pids


async def test_kill_9_of_an_engineer_mid_run_the_experiment_completes_exactly_once(kafka_broker, tmp_path):
    data_dir = tmp_path / "data"  # shared by both engineers: checkpoints survive the killed one
    procs = {e: start_engineer(kafka_broker, data_dir, e, tmp_path) for e in ("eng-a", "eng-b")}
    try:
        async with Collector(kafka_broker) as log:
            await asyncio.sleep(3.0)
            await publish(kafka_broker, proposal("exp-kill", source("deltanet")))  # cpu-micro: 200 steps
            await log.wait_for(lambda: any(p.checkpoint_step for p in log.of(ev.TrainingProgress)), timeout=180)
            victim = log.of(ev.TrainingStarted)[0].engineer_id
            survivor = ({"eng-a", "eng-b"} - {victim}).pop()
            procs[victim].send_signal(signal.SIGKILL)
            procs[victim].wait(timeout=10)
            await asyncio.sleep(1.0)
            assert sandbox_children_of(victim) == []  # its training child died with it (PR_SET_PDEATHSIG)
            await log.wait_for(lambda: log.of(ev.ResultsReady) or log.of(ev.TrainingFailed), timeout=240)
            await asyncio.sleep(3.0)  # a second completion would arrive now
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
    assert not log.of(ev.TrainingFailed), (tmp_path / f"{survivor}.log").read_text()[-3000:]
    (res,) = log.of(ev.ResultsReady)  # exactly once
    claims = log.of(ev.TrainingStarted)
    assert (claims[0].engineer_id, claims[-1].engineer_id, claims[-1].takeover_of) == (victim, survivor, victim)
    assert claims[-1].resumed_from_step >= 50
    assert res.engineer_id == survivor and res.steps == 200
    assert [s for s, _ in res.loss_curve][:2] == [10, 20]  # the curve before the takeover came with the checkpoint
