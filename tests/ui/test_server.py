"""The UI server over a real read model (the archive's projection writing SQLite): escaping, the token,
read-only access, no file outside the package's static list, sorting and filtering, and live updates."""
from __future__ import annotations

import hashlib
import http.client
import json
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from html import unescape

import pytest

from schemas import events as ev
from services.ui.charts import TreeNode, chart_div, lineage_layout
from services.ui.readmodel import DB_FILE, ReadModel
from services.ui.server import UIServer, serve
from tests.report.fake_campaign import CAMPAIGN
from tests.ui.conftest import XSS, project

PAGES = ["/", "/campaign", "/leaderboard", "/genealogy", "/fitness", "/experiment/exp-02", "/experiment/exp-05",
         "/compare?ids=exp-01,exp-02", "/leaderboard?sort=name&desc=0"]


def get(url: str, headers: dict | None = None) -> tuple[int, bytes, dict]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def test_every_page_renders_and_escapes_hostile_text(ui):
    """exp-02's name, motivation and code carry <script> and an onerror attribute: they come out as text."""
    for path in PAGES:
        status, body, headers = get(ui.url.rstrip("/") + path)
        assert status == 200, path
        html = body.decode()
        assert "<script>console.error" not in html and "<img src=x" not in html, path
        assert "script-src 'self'" in headers["Content-Security-Policy"]
    html = get(ui.url + "experiment/exp-02")[1].decode()
    assert html.count("&lt;script&gt;console.error(&#x27;xss&#x27;)&lt;/script&gt;&quot;&gt;&lt;img") >= 3  # name, motivation, code
    # the only <script> elements are the three shipped files
    assert html.count("<script") == 3


def test_chart_data_is_json_in_an_escaped_attribute():
    div = chart_div("x", {"name": XSS})
    assert "<script" not in div and "<img" not in div
    spec = json.loads(unescape(div.split('data-spec="', 1)[1].rsplit('"', 1)[0]))
    assert spec["name"] == XSS


def test_leaderboard_sorts_and_filters(ui):
    def fitness_column(query: str) -> list[float]:
        html = get(ui.url + "leaderboard?" + query)[1].decode()
        rows = html.split("<tbody>")[1].split("</tbody>")[0].split("<tr>")[1:]
        return [float(c) for r in rows for c in [r.split("<td>")[4].split("</td>")[0]] if c != "–"]

    down = fitness_column("campaign=" + CAMPAIGN)
    assert len(down) == 10 and down == sorted(down, reverse=True) and down[0] > down[-1]
    assert fitness_column("sort=fitness&desc=0") == sorted(down)
    only = get(ui.url + "leaderboard?status=abandoned")[1].decode()
    assert "/experiment/exp-03'" in only and "/experiment/exp-01'" not in only
    assert "1 of 12 experiments" in only
    first = get(ui.url + "leaderboard?limit=5")[1].decode()
    assert first.split("<tbody>")[1].count("<tr>") == 5 and "the first 5 shown" in first and "limit=0" in first


def test_experiment_page_shows_diff_text_and_events(ui):
    html = get(ui.url + "experiment/exp-05")[1].decode()
    assert "class='code diff'" in html and "<span class='add'>" in html   # against its parent's code
    assert "TrainingFailed" in html and "ResultsReady" in html and "ScoreAssigned" in html
    events = html.split("id='events'")[1]
    whens = [c.split("</td>")[0] for c in events.split("<tr><td>")[1:]]
    assert whens == sorted(whens)                                       # in order
    assert "gates help recall" in html                                  # the analyst's text
    assert get(ui.url + "experiment/nope")[0] == 404


def test_a_token_is_checked_on_every_request_and_the_stream(data_dir):
    server = serve(ReadModel(data_dir), "127.0.0.1", 0, token="s3cret")
    try:
        for path in ("", "leaderboard", "static/charts.js", "events", "experiment/exp-01"):
            assert get(server.url + path)[0] == 401, path
            assert get(server.url + path, {"Authorization": "Bearer wrong"})[0] == 401, path
        assert get(server.url + "leaderboard", {"Authorization": "Bearer s3cret"})[0] == 200
        status, _, headers = get(server.url + "leaderboard?token=s3cret")
        assert status == 200 and "archlab_ui=s3cret" in headers["Set-Cookie"] and "HttpOnly" in headers["Set-Cookie"]
        assert get(server.url + "genealogy", {"Cookie": "archlab_ui=s3cret"})[0] == 200
        assert get(server.url + "genealogy", {"Cookie": "archlab_ui=s3cre"})[0] == 401
    finally:
        server.shutdown()
        server.server_close()


def test_a_non_loopback_bind_needs_a_token(data_dir):
    with pytest.raises(ValueError, match="token"):
        UIServer(("0.0.0.0", 0), ReadModel(data_dir), None)


def test_read_only_and_no_path_outside_the_static_list(ui, data_dir):
    db = data_dir / DB_FILE
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    for path in PAGES:
        get(ui.url.rstrip("/") + path)
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    with pytest.raises(sqlite3.OperationalError):
        ReadModel(data_dir).connect().execute("DELETE FROM experiments")
    conn = http.client.HTTPConnection(*ui.server_address[:2], timeout=5)
    conn.request("POST", "/leaderboard", body=b"x")
    assert conn.getresponse().status == 405
    secret = data_dir / "secret.txt"
    secret.write_text("not for the browser")
    for path in ("static/../secret.txt", "static/%2e%2e/secret.txt", "static/..%2fsecret.txt", "static/ui.py",
                 "static/", "secret.txt", "static//etc/passwd", "static/%2Fetc%2Fpasswd"):
        status, body, _ = get(ui.url + path)
        assert status == 404 and b"not for the browser" not in body and b"root:" not in body, path


def test_lineage_layout_is_iterative_and_centres_parents():
    chain = [TreeNode(f"e{i}", f"e{i}", f"e{i - 1}" if i else None) for i in range(5000)]
    pos = lineage_layout(chain)
    assert pos["e4999"] == (4999, 0.0)
    fork = [TreeNode("r", "r", None), TreeNode("a", "a", "r"), TreeNode("b", "b", "r"), TreeNode("c", "c", "c")]
    pos = lineage_layout(fork)
    assert pos["r"] == (0, 0.5) and {pos["a"][1], pos["b"][1]} == {0.0, 1.0} and pos["c"][0] == 0


def _new_candidate(exp: str, name: str) -> list[ev.Event]:
    base = dict(campaign_id=CAMPAIGN, experiment_id=exp, producer="test")
    parent = ev.ProgramSnapshot(experiment_id="exp-base", name="deltanet", code="x = 1")
    return [ev.ParentSampled(**base, mode="explore", parent=parent),
            ev.ProposalCreated(**base, name=name, code="x = 2", motivation="live", parent_id="exp-base")]


def test_a_new_event_reaches_an_open_stream_within_two_seconds(ui, data_dir):
    received: list[tuple[float, list]] = []

    def listen() -> None:
        conn = http.client.HTTPConnection(*ui.server_address[:2], timeout=10)
        conn.request("GET", "/events")
        resp = conn.getresponse()
        event = None
        while True:
            line = resp.fp.readline().decode()
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event == "change":
                received.append((time.monotonic(), json.loads(line.split(":", 1)[1])))
                if any(e["type"] == "ProposalCreated" for e in received[-1][1]):
                    return
            elif not line:
                return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    time.sleep(1.0)   # the stream is open and the watcher has seen the current state
    sent = time.monotonic()
    project(data_dir, _new_candidate("exp-live", "live_candidate"))
    listener.join(5)
    assert received, "no change event within 5 s"
    assert received[0][0] - sent < 2.0
    # the two events may reach the stream in one change or two (the watcher can poll between their commits)
    assert [e["type"] for _, events in received for e in events] == ["ParentSampled", "ProposalCreated"]
    fragment = get(ui.url + "leaderboard?fragment=1")[1].decode()
    assert "live_candidate" in fragment and "<html" not in fragment


def test_ui_before_the_archive_exists(tmp_path):
    server = serve(ReadModel(tmp_path), "127.0.0.1", 0)
    try:
        status, body, _ = get(server.url)
        assert status == 200 and b"No campaign in the archive yet" in body
        assert get(server.url + "leaderboard")[0] == 200 and get(server.url + "genealogy")[0] == 200
        assert not (tmp_path / DB_FILE).exists()     # reading never creates the file
    finally:
        server.shutdown()
        server.server_close()


def test_an_open_stream_on_a_quiet_read_model_costs_nothing(ui):
    """A stream waits on the watcher; it must not spin (it did once: the watcher's first look moved the
    sequence without events, and the stream asked again at once, for ever)."""
    conn = http.client.HTTPConnection(*ui.server_address[:2], timeout=10)
    conn.request("GET", "/events")
    resp = conn.getresponse()
    assert resp.fp.readline().startswith(b"event: hello")
    time.sleep(1.0)                              # the watcher has looked at the read model
    cpu0, wall0 = time.process_time(), time.monotonic()
    time.sleep(2.0)
    used = (time.process_time() - cpu0) / (time.monotonic() - wall0)
    conn.close()
    assert used < 0.05, f"{used:.1%} of a core while nothing happens"


def test_imported_programs_have_their_genealogy(tmp_path):
    """ASI-Arch programs imported outside any campaign are a group of their own, with their lineage."""
    from services.archive.importer import imported_events

    records = [{"name": f"prog{i}", "program": f"x = {i}", "motivation": "m", "index": i, "parent": i - 1 if i else None,
                "result": {}, "score": 0.1 * i, "summary": ""} for i in range(4)]
    project(tmp_path, imported_events(records))
    server = serve(ReadModel(tmp_path), "127.0.0.1", 0)
    try:
        page = get(server.url + "genealogy?campaign=asi-arch")[1].decode()
        assert "campaign=asi-arch" in page
        spec = json.loads(unescape(page.split('data-spec="', 1)[1].split('"', 1)[0]))
        assert sorted(p["id"] for p in spec["points"]) == [f"asi-arch-{i}" for i in range(4)]
        assert len([e for e in spec["edges"] if e is None]) == 3          # three parent links
    finally:
        server.shutdown()
        server.server_close()


def test_the_confirmed_filter_follows_the_verification_runs(data_dir):
    """Confirmed: exp-06's replication on held-out seeds was confirmed, exp-08's was not; in a two-stage campaign
    exp-01's verification run is significant (confirmed), exp-04's is not."""
    def verify_run(source: str, significant: bool) -> list[ev.Event]:
        base = dict(campaign_id=CAMPAIGN, experiment_id=f"{CAMPAIGN}-verify-{source}", producer="test")
        return [ev.ParentSampled(**base, mode="verify", stage="verify",
                                 parent=ev.ProgramSnapshot(experiment_id=source, name=source, code="x = 1")),
                ev.ScoreAssigned(**base, fitness=0.5, significant=significant)]

    def replication(source: str, verdict: str) -> ev.Event:   # held-out seeds (issue 24): the verdict is on the candidate
        return ev.ReplicationAssessed(campaign_id=CAMPAIGN, experiment_id=source, producer="test", replicates=["r1"],
                                      verdict=verdict)

    project(data_dir, verify_run("exp-01", True) + verify_run("exp-04", False)
            + [replication("exp-06", "confirmed"), replication("exp-08", "not replicated")])
    server = serve(ReadModel(data_dir), "127.0.0.1", 0)
    try:
        yes = get(server.url + "leaderboard?confirmed=yes")[1].decode()
        no = get(server.url + "leaderboard?confirmed=no")[1].decode()
        assert "/experiment/exp-01'" in yes and "/experiment/exp-06'" in yes and "2 of 14" in yes
        assert "/experiment/exp-04'" in no and "/experiment/exp-08'" in no and "2 of 14" in no
        page = get(server.url + "experiment/exp-06")[1].decode()
        assert "confirmed, fitness" in page and "ReplicationAssessed" in page
    finally:
        server.shutdown()
        server.server_close()


def test_without_a_token_only_loopback_names_are_served(ui):
    """DNS rebinding: a page of evil.example re-bound to 127.0.0.1 sends Host: evil.example."""
    assert get(ui.url + "leaderboard", {"Host": "evil.example"})[0] == 401
    assert get(ui.url + "events", {"Host": f"evil.example:{ui.server_address[1]}"})[0] == 401
    assert get(ui.url + "leaderboard", {"Host": f"localhost:{ui.server_address[1]}"})[0] == 200
