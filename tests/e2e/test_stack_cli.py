"""`archlab up` -> `status` -> `tap --from-beginning` -> `down` as real subprocesses.

Every service process starts and stops cleanly, no orphan is left, no port stays bound.
"""
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from schemas import events as ev
from services.common.bus import make_broker, publish_events
from services.common.embedded import pid_alive, port_open
from services.common.settings import Settings
from tests.support.cli_env import clean_env

pytestmark = [pytest.mark.slow, pytest.mark.integration]
ARCHLAB = [sys.executable, "-m", "services.cli.main"]


def archlab(*args, env, timeout=240):
    return subprocess.run([*ARCHLAB, *args], env=env, capture_output=True, text=True, timeout=timeout)


async def publish(bootstrap, *events):
    broker = make_broker(Settings(kafka_bootstrap=bootstrap))
    await broker.start()
    await publish_events(broker, events)
    await broker.stop()


def test_up_status_tap_down(tmp_path):
    env = clean_env("ARCHLAB_")
    env.update(ARCHLAB_DATA_DIR=str(tmp_path / "lab"), COLUMNS="200")
    up = archlab("up", env=env)
    assert up.returncode == 0, up.stdout + up.stderr
    state = json.loads((tmp_path / "lab" / "stack.json").read_text())
    procs = state["processes"]
    assert {"kafka", "milvus", "archive", "researcher", "engineer-1", "debugger", "judge", "analyst",
            "cognition"} <= set(procs)
    kafka_port = int(state["kafka"].rsplit(":", 1)[1])
    milvus_port = int(state["milvus"].rsplit(":", 1)[1])
    try:
        assert all(pid_alive(pid) for pid in procs.values())
        status = archlab("status", env=env)
        assert status.returncode == 0, status.stderr
        for name in procs:
            assert name in status.stdout
        assert "archlab.parent-sampled" in status.stdout and state["kafka"] in status.stdout
        marker = ev.ExperimentImported(campaign_id="tap-test", experiment_id="imp-1", producer="test",
                                       name="marker", code="x = 1")
        asyncio.run(publish(state["kafka"], marker))
        tap = archlab("tap", "--from-beginning", "--campaign", "tap-test", env=env, timeout=60)
        assert tap.returncode == 0, tap.stderr
        lines = [json.loads(line) for line in tap.stdout.splitlines() if line.strip()]
        assert [e["event_id"] for e in lines] == [marker.event_id]
        assert lines[0]["topic"] == "archlab.experiment-imported" and lines[0]["name"] == "marker"
        again = archlab("up", env=env)  # idempotent: a second `up` does not start a second stack
        assert "already running" in again.stdout
    finally:
        down = archlab("down", env=env)
    assert down.returncode == 0, down.stdout + down.stderr
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(pid_alive(p) for p in procs.values()):
        time.sleep(0.2)
    assert not [n for n, p in procs.items() if pid_alive(p)], "orphan processes left"
    assert not port_open("127.0.0.1", kafka_port) and not port_open("127.0.0.1", milvus_port)
    assert not (tmp_path / "lab" / "stack.json").exists()
