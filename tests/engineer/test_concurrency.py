"""Concurrency and threads from measurement (issue 23): the plan's choice, the core share, the child's threads."""
import os
import subprocess
import sys

import torch

from lab.training.profiles import get_profile
from lab.training.runner import build_model, make_batch_fn, threads_reader
from lab.training.train import train
from services.engineer import concurrency as cc
from services.engineer.concurrency import CoreShare, Mix, choose, mixes
from tests.engineer.helpers import layer_class


def test_the_mixes_fill_the_cores():
    assert mixes(1) == [Mix(1, 1)]
    assert mixes(2) == [Mix(1, 1), Mix(1, 2), Mix(2, 1)]
    assert mixes(8) == [Mix(1, 1), Mix(1, 8), Mix(2, 4), Mix(4, 2), Mix(8, 1)]


def test_choice_follows_the_measured_totals():
    # issue 23's machine: two runs at 1.25x one run alone, a second thread worth less -> 2 runs, lone run 1 thread
    assert choose({"1x1": 12000, "1x2": 12300, "2x1": 15000}, 2) == (2, 1, 1)
    # a second thread pays for a lone run, two runs pay more -> 2 runs of 1, a lone run gets 2
    assert choose({"1x1": 10000, "1x2": 16000, "2x1": 19000}, 2) == (2, 1, 2)
    # two runs do not beat one run on two threads by the margin -> one run on both cores
    assert choose({"1x1": 10000, "1x2": 16000, "2x1": 16400}, 2) == (1, 2, 2)
    # nothing pays: one run, one thread
    assert choose({"1x1": 10000, "1x2": 9000, "2x1": 10100}, 2) == (1, 1, 1)


def test_core_share_counts_live_runs_only(tmp_path):
    a = CoreShare(tmp_path, "eng-a", cores=2, lone_threads=2, host="h")
    b = CoreShare(tmp_path, "eng-b", cores=2, lone_threads=2, host="h")
    a.enter()
    assert a.running() == 1 and a.threads() == 2          # alone: the free core too
    b.enter()
    assert a.running() == 2 and a.threads() == b.threads() == 1   # two runs: one core each, never 3 threads
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / "running" / "h" / "eng-killed").write_text(dead.stdout.strip())   # a killed engineer's leftover
    assert a.running() == 2
    b.leave()
    assert a.threads() == 2
    assert CoreShare(tmp_path, "eng-c", cores=2, lone_threads=1, host="h").threads() == 1  # plan: 2nd thread not worth it


def test_training_follows_the_thread_share_between_steps(tmp_path):
    """The child's loop reads its share before every step: a lone run's 2 threads drop to 1 when a run starts."""
    profile = get_profile("cpu-micro", steps=20, log_every=5, checkpoint_every=10)
    torch.manual_seed(0)
    model = build_model(layer_class("deltanet"), profile)
    share = tmp_path / cc.THREADS_FILE
    cc.write_threads(tmp_path, 2)
    seen = []

    def on_progress(step, **kw):
        seen.append((step, torch.get_num_threads()))
        if step == 10:
            cc.write_threads(tmp_path, 1)   # the next run started

    before = torch.get_num_threads()
    try:
        out = train(model, profile, make_batch_fn(profile, seed=0), seed=0, device="cpu", on_progress=on_progress,
                    threads=threads_reader(str(share)))
    finally:
        torch.set_num_threads(before)
    assert seen == [(5, 2), (10, 2), (15, 1), (20, 1)]
    assert out.loss_curve[-1][1] < out.loss_curve[0][1]
    share.write_text("garbage")   # unreadable: the current count stands
    assert threads_reader(str(share))() == torch.get_num_threads()
    assert threads_reader(None) is None


def test_a_plan_is_measured_once_and_cached(tmp_path, monkeypatch):
    calls = []

    def fake_measure(profile, mix, **kw):
        calls.append(mix)
        return {"1x1": 100.0, "1x2": 120.0, "2x1": 150.0}[mix.label]

    monkeypatch.setattr(cc, "measure_mix", fake_measure)
    first = cc.plan("cpu-micro", tmp_path, cores=2)
    assert (first.concurrency, first.threads, first.lone_threads, first.cached) == (2, 1, 2, False)
    assert "concurrency 2" in first.describe() and "2x1 150" in first.describe()
    again = cc.plan("cpu-micro", tmp_path, cores=2)
    assert again.cached and again.tokens_per_s == first.tokens_per_s and len(calls) == 3
    assert cc.load_plan(tmp_path, "cpu-tiny", 2) is None     # per profile
    cc.plan("cpu-micro", tmp_path, cores=2, refresh=True)
    assert len(calls) == 6


def test_a_mix_is_really_measured():
    """Two real runs of the zoo's DeltaNet on cpu-micro, timed over the same window: a positive total."""
    total = cc.measure_mix("cpu-micro", Mix(2, 1), window_s=1.0, timeout_s=240)
    assert total > 1000


async def test_the_worker_takes_its_step_time_from_the_plan_without_a_calibration_child(tmp_path, monkeypatch):
    """Start-up per candidate: with a plan measured at start-up, the engineer's first claim spawns no second
    calibration child; the step time is the per-run speed at the planned concurrency (the slower, safer one)."""
    from lab.training import calibrate
    from lab.training.profiles import get_profile
    from services.engineer.worker import Worker, WorkerConfig
    from tests.engineer.busutil import settings_for

    monkeypatch.setattr(cc, "measure_mix", lambda profile, mix, **kw: {"1x1": 4000.0, "1x2": 3000.0,
                                                                        "2x1": 6000.0}[mix.label])
    cc.plan("cpu-tiny", tmp_path)   # on this machine's core count

    async def no_child(*a, **kw):
        raise AssertionError("a calibration child was started")

    monkeypatch.setattr(calibrate, "calibrate", no_child)
    w = Worker(settings_for("127.0.0.1:1", tmp_path), WorkerConfig(engineer_id="e"))
    plan = cc.load_plan(tmp_path, "cpu-tiny")
    per_run = plan.tokens_per_s[f"{plan.concurrency}x{plan.threads}"] / plan.concurrency
    assert await w.calibrated_step_s("cpu-tiny") == get_profile("cpu-tiny").tokens_per_step / per_run


async def test_a_lone_run_trains_in_the_sandbox_on_its_share_of_the_cores(kafka_broker, tmp_path, monkeypatch):
    """The real runner under the sandbox with a plan that gives a lone run 2 threads: the share is written into
    the child's scratch, the child reads it there, and the run ends with its result."""
    import json

    import pytest

    from schemas import events as ev
    from services.engineer.worker import Worker, WorkerConfig
    from tests.engineer.busutil import Collector, publish, settings_for
    from tests.engineer.programs import source

    if cc.usable_cores() < 2:
        pytest.skip("one core: a lone run has no free core to get")
    monkeypatch.setattr(cc, "measure_mix", lambda profile, mix, **kw: {"1x1": 100.0, "1x2": 190.0,
                                                                        "2x1": 200.0}.get(mix.label, 1.0))
    cc.plan("cpu-micro", tmp_path, cores=cc.usable_cores())
    w = Worker(settings_for(kafka_broker, tmp_path),
               WorkerConfig(engineer_id="eng-a", heartbeat_s=1.0, keep_scratch=True, rung_fracs=(),
                            profile_overrides={"steps": 40, "eval_examples": 16}))
    p = ev.ProposalCreated(campaign_id="c1", experiment_id="exp-lone", name="d", code=source("deltanet"),
                           motivation="m", profile="cpu-micro", role="baseline")
    async with Collector(kafka_broker) as log:
        await w.start()
        try:
            await publish(kafka_broker, p)
            await log.wait_for(lambda: log.of(ev.ResultsReady) or log.of(ev.TrainingFailed), timeout=300)
        finally:
            await w.stop()
    assert not log.of(ev.TrainingFailed), log.of(ev.TrainingFailed)[0].log_tail
    (scratch,) = (tmp_path / "scratch" / "eng-a").iterdir()
    want = min(cc.load_plan(tmp_path, "cpu-micro").lone_threads, cc.usable_cores())
    assert (scratch / cc.THREADS_FILE).read_text() == str(want)
    assert json.loads((scratch / "job.json").read_text())["threads_file"] == str(scratch / cc.THREADS_FILE)
    assert not list((tmp_path / "running").rglob("eng-a"))   # the run left the share when it ended


def test_a_run_is_scored_with_its_share_of_the_cores_when_scoring_starts(tmp_path, monkeypatch):
    """A run that started alone on both cores is scored beside the next run's training: its scoring asks for the
    share then (2026-12-05: two forward children on 2 threads each beside a training run took 77-115 s to score,
    against 5-8 s for the others)."""
    from lab.sandbox import Limits, SandboxResult
    from lab.training import scoring

    seen = {}
    monkeypatch.setattr(scoring, "run_python_module", lambda *a, **kw: SandboxResult(
        True, "ok", 0, result={"final_loss": 2.0, "autocast": "fp32"}))
    monkeypatch.setattr(scoring, "score", lambda job, scratch, *, limits, **kw: (
        seen.setdefault("threads", limits.threads), ({"final_loss": 2.1, "metrics": {}, "benchmark": 0.5, "eval_s": 1.0},
                                                     SandboxResult(True, "ok", 0)))[1])
    job = {"profile": "cpu-micro", "evaluate": False}
    share = iter([1])
    scoring.run_and_score("m", [], job=job, scratch=tmp_path, limits=Limits(threads=2),
                          score_threads=lambda: next(share))
    assert seen["threads"] == 1
    seen.clear()
    scoring.run_and_score("m", [], job=job, scratch=tmp_path, limits=Limits(threads=2))
    assert seen["threads"] == 2
