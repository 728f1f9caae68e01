"""The UI against a real stack: the embedded broker, the archive as its own process (`python -m
services.archive.main`, as `archlab up` runs it) writing the read model, and the UI serving it to a
headless Chromium. A page opened before the campaign starts (no read model yet) shows the campaign's
first experiments appear without a reload, each within 2 s of its event being published.

Needs chromium + chromium-driver + selenium (skips otherwise) and runs the real broker (integration).
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from selenium.webdriver.support.ui import WebDriverWait

from schemas import events as ev
from services.common.bus import publish_once
from services.common.settings import Settings
from services.ui.readmodel import ReadModel
from services.ui.server import serve
from tests.support.browser import By, browser  # noqa: F401 - fixture

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _start_archive(data_dir: Path, bootstrap: str) -> subprocess.Popen:
    env = dict(os.environ, ARCHLAB_DATA_DIR=str(data_dir), ARCHLAB_KAFKA_BOOTSTRAP=bootstrap, OMP_NUM_THREADS="1",
               ARCHLAB_PARTITIONS="4")
    log = (data_dir / "archive.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "services.archive.main"], cwd=ROOT, env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 90
    while b'"service started"' not in (data_dir / "archive.log").read_bytes():
        assert proc.poll() is None and time.monotonic() < deadline, (data_dir / "archive.log").read_text()[-2000:]
        time.sleep(0.2)
    return proc


def _shows(driver, experiment_id: str, within: float) -> float:
    """Seconds until the page's content links to the experiment (fails after `within`)."""
    t0 = time.monotonic()
    WebDriverWait(driver, within, poll_frequency=0.05).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, f"#content a[href='/experiment/{experiment_id}']"))
    return time.monotonic() - t0


def test_an_open_page_follows_a_campaign_on_a_real_stack(browser, kafka_broker, tmp_path):
    server = serve(ReadModel(tmp_path), "127.0.0.1", 0)
    archive = None
    try:
        browser.get(server.url + "leaderboard")       # before the campaign: there is no read model yet
        WebDriverWait(browser, 10).until(lambda d: d.find_element(By.ID, "live").text == "live")
        browser.execute_script("window.sameDocument = true")
        archive = _start_archive(tmp_path, kafka_broker)
        settings = Settings(data_dir=tmp_path, kafka_bootstrap=kafka_broker)

        asyncio.run(publish_once(settings, ev.CampaignStarted(campaign_id="c1", experiment_id="c1", budget=1,
                                                              baselines=["deltanet"], name="live campaign")))
        _shows(browser, "c1-base-deltanet", 30)        # the archive samples the baseline; the page shows it

        candidate = ev.ProposalCreated(campaign_id="c1", experiment_id="c1-cand-1", name="first_candidate",
                                       code="x = 1", motivation="the first one", parent_id="c1-base-deltanet")
        asyncio.run(publish_once(settings, candidate))
        assert _shows(browser, "c1-cand-1", 10) < 2.0
        assert "first_candidate" in browser.find_element(By.ID, "content").text
        assert browser.execute_script("return window.sameDocument === true")   # no reload
    finally:
        if archive is not None:
            archive.terminate()
            archive.wait(30)
        server.shutdown()
        server.server_close()
