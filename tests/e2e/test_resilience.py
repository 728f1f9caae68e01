"""Resilience end to end: during a campaign on the embedded stack, kill -9 one of two engineers,
restart the broker (SIGINT, same port and data) and kill -9 + restart the archive. The campaign
still finishes with every experiment accounted for exactly once."""
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from schemas import codec
from schemas import events as ev
from schemas.events import EVENT_TYPES
from schemas.topics import topic_for
from services.common.bus import publish_once
from services.common.log_reader import read_log
from services.common.settings import Settings
from tests.support.cli_env import clean_env

pytestmark = [pytest.mark.slow, pytest.mark.integration]
ARCHLAB = [sys.executable, "-m", "services.cli.main"]


def archlab(*args, env, timeout=300):
    out = subprocess.run([*ARCHLAB, *args], env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"archlab {' '.join(args)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
    return out


def log_events(bootstrap: str, campaign_id: str) -> list[ev.Event]:
    async def read():
        out = []
        async for rec in read_log(bootstrap, [topic_for(t) for t in EVENT_TYPES]):
            e = codec.decode(rec.value)
            if e.campaign_id == campaign_id:
                out.append(e)
        return out
    for _ in range(5):  # the broker may be restarting
        try:
            return asyncio.run(read())
        except Exception:  # noqa: BLE001
            time.sleep(2)
    return asyncio.run(read())


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(3)
    raise TimeoutError(what)


def test_engineer_broker_and_archive_failures_lose_nothing(tmp_path):
    env = clean_env(("ARCHLAB_", "OPENAI_"))
    env.update(ARCHLAB_DATA_DIR=str(tmp_path / "lab"), ARCHLAB_ENGINEER_LEASE_S="20", COLUMNS="200")
    archlab("up", "--engineers", "2", env=env, timeout=300)
    stack_file = tmp_path / "lab" / "stack.json"
    try:
        state = json.loads(stack_file.read_text())
        bootstrap = state["kafka"]
        campaign = "c-resilience"
        started = ev.CampaignStarted(campaign_id=campaign, experiment_id=campaign, producer="test",
                                     profile="cpu-micro", budget=3, concurrency=2, cold_start=1, seed=3)
        asyncio.run(publish_once(Settings(kafka_bootstrap=bootstrap), started))

        # 1. kill -9 the engineer that is training something, mid-run.
        def training_engineer():
            progress = [e for e in log_events(bootstrap, campaign)
                        if isinstance(e, ev.TrainingProgress) and e.step > 0]
            return progress[-1].engineer_id if progress else None
        victim = wait_until(training_engineer, 600, "no training progress")
        os.kill(json.loads(stack_file.read_text())["processes"][victim], signal.SIGKILL)

        # 2. restart the broker (SIGINT: it snapshots), same port and data.
        archlab("restart", "kafka", env=env)

        # 3. kill -9 the archive, then start it again.
        os.kill(json.loads(stack_file.read_text())["processes"]["archive"], signal.SIGKILL)
        archlab("restart", "archive", env=env)

        def completed():
            return any(isinstance(e, ev.CampaignCompleted) for e in log_events(bootstrap, campaign))
        wait_until(completed, 1500, "campaign did not complete")
        events = log_events(bootstrap, campaign)
    finally:
        subprocess.run([*ARCHLAB, "down"], env=env, capture_output=True, timeout=300)

    by_type = defaultdict(dict)  # type -> event_id -> event (redeliveries share an id)
    for e in events:
        by_type[e.type][e.event_id] = e
    sampled = defaultdict(set)
    for e in by_type["ParentSampled"].values():
        sampled[e.experiment_id].add(e.event_id)
    candidates = [x for x in sampled if "-c" in x]
    assert len(candidates) == 3, sorted(sampled)
    assert all(len(ids) == 1 for ids in sampled.values()), "a slot was sampled twice"
    ends = defaultdict(list)
    for t in ("InsightsStored", "ExperimentAbandoned"):
        for e in by_type[t].values():
            ends[e.experiment_id].append(t)
    assert {x: len(v) for x, v in ends.items() if len(v) != 1} == {}, "an experiment ended twice"
    assert set(ends) == set(sampled), f"unaccounted: {set(sampled) ^ set(ends)}"
    results = defaultdict(int)
    for e in by_type["ResultsReady"].values():
        results[(e.experiment_id, e.revision)] += 1
    assert all(n == 1 for n in results.values()), f"trained twice to completion: {results}"
    takeovers = [e for e in by_type["TrainingStarted"].values() if e.takeover_of]
    assert any(t.takeover_of == victim for t in takeovers), "the killed engineer's run was not taken over"
