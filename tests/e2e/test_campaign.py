"""`archlab run` end to end on the embedded stack, as a user runs it: a real (small) campaign with
real training, then the report in Chromium and a replay that reproduces the database digest."""
import subprocess
import sys
from pathlib import Path

import pytest

from services.archive import queries
from services.archive.projection import status_of
from services.archive.storage import SQLiteStore
from tests.support.browser import By, browser, console_errors  # noqa: F401 - fixture
from tests.support.cli_env import clean_env

pytestmark = [pytest.mark.slow, pytest.mark.integration]
ARCHLAB = [sys.executable, "-m", "services.cli.main"]
TERMINAL = {"done", "abandoned", "rejected-only", "failed"}


def archlab(*args, env, timeout):
    return subprocess.run([*ARCHLAB, *args], env=env, capture_output=True, text=True, timeout=timeout)


def lab_env(tmp_path: Path) -> dict:
    env = clean_env(("ARCHLAB_", "OPENAI_"))
    env.update(ARCHLAB_DATA_DIR=str(tmp_path / "lab"), COLUMNS="200")
    return env


def test_archlab_run_small_campaign(tmp_path, browser):
    env = lab_env(tmp_path)
    budget = 4
    run = archlab("run", "--profile", "cpu-micro", "--budget", str(budget), "--concurrency", "2",
                  "--keep-up", "--timeout", "1500", env=env, timeout=1800)
    try:
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        assert "leaderboard" in run.stdout and "report:" in run.stdout
        db = tmp_path / "lab" / "archive.sqlite"
        with SQLiteStore(db, read_only=True) as store:
            docs = store.experiments()
            candidates = [d for d in docs if d.get("role") != "baseline" and d["campaign_id"] != "global"]
            baselines = [d for d in docs if d.get("role") == "baseline"]
            assert len(candidates) == budget, [d["experiment_id"] for d in candidates]
            assert len(baselines) == 1 and baselines[0]["name"] == "deltanet"
            assert all(status_of(d) in TERMINAL for d in docs), [(d["experiment_id"], d.get("status"))
                                                                         for d in docs]
            board = queries.leaderboard(store)
            assert len(board) >= 2 and all(r["fitness"] is not None for r in board)
            assert any(r["role"] == "candidate" for r in board)
        report = next((tmp_path / "lab" / "reports").glob("*.html"))
        browser.get(report.as_uri())
        assert console_errors(browser) == []
        charts = browser.find_elements(By.CSS_SELECTOR, "div.chart canvas")   # the shared chart library, drawn
        assert len(charts) >= 3 and all(s.size["width"] > 0 and s.size["height"] > 0 for s in charts[:3])
        replay = archlab("replay", "--shuffle-seed", "7", env=env, timeout=300)
        assert replay.returncode == 0, replay.stdout + replay.stderr
        assert "digests equal" in replay.stdout
        # A second campaign may not take the first one's id: the two would mix their events in one log.
        again = archlab("run", "--profile", "cpu-micro", "--budget", "1", "--concurrency", "2",
                        "--campaign-id", candidates[0]["campaign_id"], env=env, timeout=300)
        out = " ".join(again.stdout.split())
        assert again.returncode == 2, again.stdout[-3000:] + again.stderr[-3000:]
        assert f"campaign {candidates[0]['campaign_id']} is already in this data folder's log" in out
        with SQLiteStore(db, read_only=True) as store:
            assert len(store.experiments()) == len(docs), "the refused run started nothing"
    finally:
        down = archlab("down", env=env, timeout=180)
        assert down.returncode == 0, down.stdout + down.stderr
