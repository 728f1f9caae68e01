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

    # no injected element made it into the DOM
    assert browser.find_elements(By.CSS_SELECTOR, "img") == []
    assert browser.execute_script("return document.scripts.length") == 0

    plots = {}
    for plot_id in ("fitness-plot", "lineage-plot", "loss-plot"):
        svg = browser.find_element(By.ID, plot_id)
        rect = browser.execute_script("const r = arguments[0].getBoundingClientRect(); return [r.width, r.height]",
                                      svg)
        assert rect[0] > 100 and rect[1] > 100, (plot_id, rect)
        plots[plot_id] = svg

    points = plots["fitness-plot"].find_elements(By.CSS_SELECTOR, ".pt")
    assert len(points) == len(campaign.scored) == 10
    assert len(plots["fitness-plot"].find_elements(By.CSS_SELECTOR, ".pt.baseline")) == 1
    assert len(plots["fitness-plot"].find_elements(By.CSS_SELECTOR, "path.best-line")) == 1
    nodes = plots["lineage-plot"].find_elements(By.CSS_SELECTOR, "g.node")
    assert len(nodes) == len(campaign.experiments) == 12
    assert {n.get_attribute("data-exp") for n in nodes} == set(campaign.experiments)
    assert len(plots["lineage-plot"].find_elements(By.CSS_SELECTOR, "path.edge")) == 10
    curves = plots["loss-plot"].find_elements(By.CSS_SELECTOR, "path.curve")
    assert len(curves) == 6 and len(plots["loss-plot"].find_elements(By.CSS_SELECTOR, "path.curve.baseline")) == 1
    # every mark is actually laid out (non-zero box), not just present in the DOM
    for mark in points + curves:
        box = browser.execute_script("const b = arguments[0].getBBox(); return [b.width, b.height]", mark)
        assert box[0] > 0 and box[1] > 0
    # the malicious name shows as text
    assert "<script>console.error('xss')</script>" in browser.find_element(By.ID, "benchmark-table").text

    png = full_page_png(browser, tmp_path / "report.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 50_000
    keep = __import__("os").environ.get("ARCHLAB_REPORT_SCREENSHOT")  # to look at it by hand
    if keep:
        shutil.copy(png, keep)
