"""Issue 27: a restarted lab is the same lab. On the real embedded stack, after each kind of restart, a campaign
completes and every capability still answers: cognition search (hits, not an error), the novelty check (a
duplicate is still rejected), leaderboard, show, tap, replay (digests equal) and report.

One data directory goes through the whole matrix in order, as a user's folder would:
    up -> campaign 1 -> (a) down + up -> (d) kill -9 milvus + restart -> (e) kill -9 broker + restart
    -> (f) kill -9 gateway + restart -> (g) kill -9 analyst and researcher + restart
    -> (b) a second `archlab run` in the same folder, (c) interrupted by Ctrl-C and continued with `--resume`.
The analyst's retrieval and the researcher's novelty memory are exercised by campaign 2, which only completes
when they answer after the restarts above.
"""
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.common.embedded import pid_alive
from tests.support.cli_env import clean_env

pytestmark = [pytest.mark.slow, pytest.mark.integration]
ARCHLAB = [sys.executable, "-m", "services.cli.main"]
RUN = ["run", "--profile", "cpu-micro", "--budget", "1", "--concurrency", "1", "--seed"]


def archlab(*args, env, timeout=300, ok=True):
    out = subprocess.run([*ARCHLAB, *args], env=env, capture_output=True, text=True, timeout=timeout)
    if ok:
        assert out.returncode == 0, f"archlab {' '.join(args)} exited {out.returncode}:\n{out.stdout[-3000:]}\n" \
                                    f"{out.stderr[-3000:]}"
    return out


def stack(env) -> dict:
    return json.loads((Path(env["ARCHLAB_DATA_DIR"]) / "stack.json").read_text())


def kill9(env, name: str) -> None:
    pid = stack(env)["processes"][name]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)


def read_model(env):
    from services.archive.storage import open_store
    from services.common.settings import load_settings

    return open_store(load_settings(Path(env["ARCHLAB_DATA_DIR"])), read_only=True)


def campaign_ids(env) -> list[str]:
    with read_model(env) as store:
        return sorted(c["campaign_id"] for c in store.campaigns())


def novelty_rejects_a_duplicate(env, campaign_id: str) -> None:
    """The researcher's novelty check against the stack's Milvus: an experiment's own motivation and code, under
    a new experiment id, is a duplicate."""
    from services.common.embeddings import Embedder
    from services.common.settings import load_settings
    from services.common.vectors import VectorStore, close_all
    from services.common.vectors import NOVELTY_COLLECTION
    from services.researcher.novelty import NoveltyChecker

    settings = load_settings(Path(env["ARCHLAB_DATA_DIR"]), milvus_uri=stack(env)["milvus"])
    with read_model(env) as store:
        docs = [d for d in store.experiments(campaign_id) if d.get("code") and d.get("role") == "candidate"]
    assert docs, "the campaign has no candidate to repeat"
    embedder = Embedder.from_settings(settings)
    try:
        checker = NoveltyChecker(embedder, VectorStore(settings.milvus_uri, NOVELTY_COLLECTION, embedder.dim))
        verdict = asyncio.run(checker.check(campaign_id=campaign_id, experiment_id="e-restart-duplicate",
                                            name=docs[0]["name"], motivation=docs[0].get("motivation", ""),
                                            code=docs[0]["code"]))
    finally:
        close_all()
    assert verdict.duplicate, verdict
    assert docs[0]["experiment_id"] in verdict.feedback or docs[0]["name"] in verdict.feedback


def capabilities(env, campaign_id: str, tmp_path: Path, label: str) -> None:
    search = archlab("cognition", "search", "fails associative recall over long contexts", env=env)
    assert "Traceback" not in search.stdout + search.stderr, label
    assert re.search(r"\b0\.\d{3}\b", search.stdout), f"{label}: no cognition hit:\n{search.stdout}"
    board = archlab("leaderboard", "--campaign", campaign_id, env=env)
    assert "deltanet" in board.stdout, f"{label}:\n{board.stdout}"
    with read_model(env) as store:
        exp = store.experiments(campaign_id)[0]["experiment_id"]
    shown = archlab("show", exp, env=env)
    assert exp in shown.stdout, label
    export = archlab("export", "--format", "jsonl", "--out", str(tmp_path / f"export-{campaign_id}.jsonl"), env=env)
    assert campaign_id in (tmp_path / f"export-{campaign_id}.jsonl").read_text(), f"{label}: {export.stdout}"
    tap = archlab("tap", "--from-beginning", "--campaign", campaign_id, "--type", "ScoreAssigned", env=env, timeout=120)
    assert len([line for line in tap.stdout.splitlines() if line.strip()]) >= 1, f"{label}: tap read nothing"
    replay = archlab("replay", env=env, timeout=300)
    assert "digests equal" in replay.stdout, f"{label}:\n{replay.stdout[-2000:]}"
    page = tmp_path / f"report-{campaign_id}.html"
    archlab("report", "--campaign", campaign_id, "--out", str(page), env=env, timeout=300)
    assert campaign_id in page.read_text(), label
    novelty_rejects_a_duplicate(env, campaign_id)


@pytest.mark.timeout(2700)   # a whole campaign (or three): longer than the suite's 900 s default
def test_every_capability_survives_every_restart(tmp_path):
    env = clean_env(("ARCHLAB_", "OPENAI_"))
    env.update(ARCHLAB_DATA_DIR=str(tmp_path / "lab"), COLUMNS="200", ARCHLAB_UI_PORT="0")
    archlab("up", env=env)
    try:
        archlab("cognition", "seed", "--direct", env=env)
        first = archlab(*RUN, "1", env=env, timeout=1200)
        assert "campaign completed" in first.stdout, first.stdout[-3000:]
        (c1,) = campaign_ids(env)
        capabilities(env, c1, tmp_path, "after campaign 1")

        archlab("down", env=env)                                    # (a)
        archlab("up", env=env)
        capabilities(env, c1, tmp_path, "after down + up")

        kill9(env, "milvus")                                        # (d)
        archlab("restart", "milvus", env=env)
        kill9(env, "kafka")                                         # (e)
        archlab("restart", "kafka", env=env)
        kill9(env, "kafka-gateway")                                 # (f)
        archlab("restart", "kafka-gateway", env=env)
        for service in ("analyst", "researcher"):                   # (g)
            kill9(env, service)
            archlab("restart", service, env=env)
        capabilities(env, c1, tmp_path, "after kill -9 of milvus, broker, gateway, analyst, researcher")

        # (b) + (c): a second `archlab run` in the same folder, interrupted once it trains, then `--resume`d
        interrupted = subprocess.Popen([*ARCHLAB, *RUN, "2"], env=env, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True)
        seen = ""
        deadline = time.monotonic() + 900
        while "-> training" not in seen and time.monotonic() < deadline and interrupted.poll() is None:
            seen += interrupted.stdout.readline()
        assert "-> training" in seen, f"the second run never trained:\n{seen[-3000:]}"
        interrupted.send_signal(signal.SIGINT)
        try:
            rest, _ = interrupted.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            interrupted.kill()
            rest, _ = interrupted.communicate()
            pytest.fail(f"`archlab run` did not stop within 120 s of Ctrl-C:\n{(seen + rest)[-3000:]}")
        assert interrupted.returncode == 130, (seen + rest)[-3000:]
        assert "archlab run --resume" in rest
        resumed = archlab("run", "--resume", env=env, timeout=1200)
        assert "campaign completed" in resumed.stdout, resumed.stdout[-3000:]
        c2 = json.loads((Path(env["ARCHLAB_DATA_DIR"]) / "campaign.json").read_text())["campaign_id"]
        assert c2 != c1 and campaign_ids(env) == sorted([c1, c2])
        capabilities(env, c2, tmp_path, "after a second campaign in the same folder, interrupted and resumed")
    finally:
        archlab("down", env=env, ok=False)
