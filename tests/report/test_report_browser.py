"""The report in a real headless Chromium: it loads without console errors, the plots render with
the right number of marks, and a full-page screenshot is taken.

Needs the Debian packages `chromium` and `chromium-driver` and the `selenium` package; skips with
the reason when they are absent.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from services.cli.report import build_report, summarize
from tests.report.fake_campaign import fake_campaign

from tests.support.browser import By, browser, console_errors, full_page_png  # noqa: F401 - fixture


def test_console_errors_are_detected(browser, tmp_path):
    """The log check itself can fail: a page that logs an error is caught."""
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><head><link rel='icon' href='data:,'></head>"
                    "<body><script>console.error('deliberate')</script></body></html>")
    browser.get_log("browser")  # drain
    browser.get(page.as_uri())
    errors = console_errors(browser)
    assert any("deliberate" in e["message"] for e in errors), errors


def test_report_renders_in_chromium(browser, tmp_path):
    events = fake_campaign(malicious_name="<script>console.error('xss')</script><img src=x onerror=alert(1)>")
    campaign = summarize(events)
    out = build_report(events, tmp_path / "report.html")
    browser.get_log("browser")  # drain what earlier pages logged
    browser.get(out.as_uri())
    assert "archlab report" in browser.title
    assert console_errors(browser) == []

    # no injected element made it into the DOM; the only scripts are the chart library's two
    assert browser.find_elements(By.CSS_SELECTOR, "img") == []
    assert browser.execute_script("return document.scripts.length") == 2

    # each chart is drawn by the shared library (a canvas of real size) with the right number of marks
    counts = {}
    for plot_id in ("fitness-plot", "lineage-plot", "loss-plot"):
        el = browser.find_element(By.ID, plot_id)
        canvas = el.find_element(By.TAG_NAME, "canvas")
        assert canvas.size["width"] > 100 and canvas.size["height"] > 100, plot_id
        counts[plot_id] = browser.execute_script(
            "return echarts.getInstanceByDom(arguments[0]).getOption().series.map(s => [s.name, s.data.length])", el)
    fitness = dict(counts["fitness-plot"])
    assert fitness["candidate"] + fitness["baseline"] == len(campaign.scored) == 10 and fitness["baseline"] == 1
    assert fitness["best so far"] == 9
    lineage = dict(counts["lineage-plot"])
    assert lineage["experiments"] == len(campaign.experiments) == 12
    assert lineage["edges"] == 3 * 10     # a segment and a break per parent link
    assert len(counts["loss-plot"]) == 6
    # the canvas is painted: not one uniform colour
    painted = browser.execute_script(
        "const c = arguments[0].querySelector('canvas'); const d = c.getContext('2d').getImageData(0, 0, c.width, "
        "c.height).data; const s = new Set(); for (let i = 0; i < d.length; i += 4000) s.add(d[i] + ',' + d[i+1]); "
        "return s.size", browser.find_element(By.ID, "fitness-plot"))
    assert painted > 3
    # the malicious name shows as text
    assert "<script>console.error('xss')</script>" in browser.find_element(By.ID, "benchmark-table").text

    png = full_page_png(browser, tmp_path / "report.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 50_000
    keep = __import__("os").environ.get("ARCHLAB_REPORT_SCREENSHOT")  # to look at it by hand
    if keep:
        shutil.copy(png, keep)
