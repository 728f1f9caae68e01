"""The UI in a real headless Chromium, over a real read model: hostile text does not execute, a click on a
genealogy node opens the experiment with its diff, and a page that is open sees a new experiment appear
live (no reload) within 2 s.

Needs the Debian packages `chromium` and `chromium-driver` and `selenium`; skips with the reason otherwise.
"""
from __future__ import annotations

import time

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.support.ui import WebDriverWait

from tests.support.browser import By, browser, console_errors  # noqa: F401 - fixture
from tests.ui.conftest import XSS, project
from tests.ui.test_server import _new_candidate


def _wait_live(driver) -> None:
    WebDriverWait(driver, 10).until(lambda d: d.find_element(By.ID, "live").text == "live")


def test_hostile_text_does_not_execute(browser, ui):
    browser.get_log("browser")
    browser.get(ui.url + "experiment/exp-02")
    _wait_live(browser)
    assert browser.find_element(By.TAG_NAME, "h1").text == XSS           # shown as text
    assert XSS in browser.find_element(By.ID, "motivation").text
    assert XSS in browser.find_element(By.ID, "code").text
    assert browser.find_elements(By.CSS_SELECTOR, "main img") == []
    assert browser.execute_script("return document.scripts.length") == 3  # the shipped ones only
    assert [e for e in console_errors(browser) if "xss" in e["message"]] == []
    assert console_errors(browser) == []


def test_a_click_in_the_genealogy_opens_the_experiment_with_its_diff(browser, ui):
    browser.get(ui.url + "genealogy")
    _wait_live(browser)
    chart = browser.find_element(By.ID, "lineage-plot")
    found = browser.execute_script(
        "const c = echarts.getInstanceByDom(arguments[0]); const s = c.getOption().series[1];"
        "const p = s.data.find(d => d.id === 'exp-05'); return [c.convertToPixel({seriesIndex: 1}, p.value), "
        "s.data.length]", chart)
    (x, y), nodes = found
    assert nodes == 12
    ActionChains(browser).move_to_element_with_offset(chart, int(x - chart.size["width"] / 2),
                                                      int(y - chart.size["height"] / 2)).click().perform()
    WebDriverWait(browser, 10).until(lambda d: d.current_url.endswith("/experiment/exp-05"))
    diff = browser.find_element(By.CSS_SELECTOR, "pre.code.diff")
    assert diff.find_elements(By.CSS_SELECTOR, "span.add") and diff.find_elements(By.CSS_SELECTOR, "span.del")
    curves = browser.execute_script(
        "return echarts.getInstanceByDom(document.getElementById('curves-plot')).getOption().series.length")
    assert curves == 2     # its own curve and its parent's


def test_an_open_page_shows_a_new_experiment_live(browser, ui, data_dir):
    browser.get(ui.url + "leaderboard")
    _wait_live(browser)
    assert "live_candidate" not in browser.find_element(By.ID, "content").text
    browser.execute_script("window.sameDocument = true")
    sent = time.monotonic()
    project(data_dir, _new_candidate("exp-live", "live_candidate"))
    WebDriverWait(browser, 5, poll_frequency=0.05).until(
        lambda d: "live_candidate" in d.find_element(By.ID, "content").text)
    assert time.monotonic() - sent < 2.0
    assert browser.execute_script("return window.sameDocument === true")   # updated in place, not reloaded


def test_a_live_update_keeps_the_zoom_of_the_tree(browser, ui, data_dir):
    browser.get(ui.url + "genealogy")
    _wait_live(browser)
    chart = browser.find_element(By.ID, "lineage-plot")
    browser.execute_script("echarts.getInstanceByDom(arguments[0]).dispatchAction({type: 'dataZoom', dataZoomIndex: 0, "
                           "start: 20, end: 60})", chart)
    project(data_dir, _new_candidate("exp-live", "live_candidate"))
    count = ("const el = document.getElementById('lineage-plot'); const c = el && echarts.getInstanceByDom(el);"
             "return c ? c.getOption().series[1].data.length : 0")
    WebDriverWait(browser, 5, poll_frequency=0.05).until(lambda d: d.execute_script(count) == 13)
    zoom = browser.execute_script("return echarts.getInstanceByDom(document.getElementById('lineage-plot'))"
                                  ".getOption().dataZoom[0]")
    assert (round(zoom["start"]), round(zoom["end"])) == (20, 60)
