"""`archlab up` starts the UI as one of the stack's processes and prints its address; the UI shows what
the stack's archive applies; `archlab down` stops it. Real subprocesses, a whole embedded stack."""
import asyncio
import json
import re
import subprocess
import sys
import time
import urllib.request

import pytest

from schemas import events as ev
from services.common.bus import publish_once
from services.common.embedded import pid_alive
from services.common.settings import Settings
from tests.support.cli_env import clean_env

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def archlab(*args, env, timeout=240):
    return subprocess.run([sys.executable, "-m", "services.cli.main", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_up_starts_the_ui_and_down_stops_it(tmp_path):
    env = clean_env("ARCHLAB_")
    env.update(ARCHLAB_DATA_DIR=str(tmp_path / "lab"), COLUMNS="200", ARCHLAB_UI_PORT="0")
    up = archlab("up", env=env)
    assert up.returncode == 0, up.stdout + up.stderr
    state = json.loads((tmp_path / "lab" / "stack.json").read_text())
    try:
        assert "ui" in state["processes"]
        url = re.search(r"web UI: (http://127\.0\.0\.1:\d+/)", up.stdout).group(1)
        marker = ev.ExperimentImported(campaign_id="ui-test", experiment_id="imp-ui", producer="test",
                                       name="marker_program", code="x = 1")
        asyncio.run(publish_once(Settings(data_dir=tmp_path / "lab", kafka_bootstrap=state["kafka"]), marker))
        deadline, page = time.monotonic() + 60, ""
        while "marker_program" not in page and time.monotonic() < deadline:
            time.sleep(0.5)
            page = urllib.request.urlopen(url + "genealogy?campaign=ui-test", timeout=10).read().decode()
        assert "marker_program" in page
        # the embedding map reads the researcher's novelty memory on the stack's Milvus: a proposal appears there
        proposal = ev.ProposalCreated(campaign_id="ui-test", experiment_id="prop-ui", producer="test",
                                      name="marker_proposal", code="x = 2", motivation="a gated delta rule with decay")
        asyncio.run(publish_once(Settings(data_dir=tmp_path / "lab", kafka_bootstrap=state["kafka"]), proposal))
        deadline = time.monotonic() + 60
        while "1 accepted proposals" not in page and time.monotonic() < deadline:
            time.sleep(0.5)
            page = urllib.request.urlopen(url + "embedding?campaign=ui-test", timeout=10).read().decode()
        assert "1 accepted proposals" in page and "prop-ui" in page, page[-2000:]
    finally:
        down = archlab("down", env=env)
    assert down.returncode == 0, down.stdout + down.stderr
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and pid_alive(state["processes"]["ui"]):
        time.sleep(0.2)
    assert not pid_alive(state["processes"]["ui"])
