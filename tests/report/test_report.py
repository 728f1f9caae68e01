"""build_report / summarize on the fake campaign: counts, scheme selection, lineage, escaping."""
from __future__ import annotations

import json
import re
from html import unescape
from html.parser import HTMLParser

import pytest

from schemas import events as ev
from services.cli.report import build_report, summarize
from services.ui.charts import color_for
from tests.report.fake_campaign import CAMPAIGN, FAKE, fake_campaign

def chart_specs(html: str) -> dict[str, dict]:
    """The spec of every chart of a page, by element id (charts.py writes them as escaped JSON attributes)."""
    return {m.group(1): json.loads(unescape(m.group(2)))
            for m in re.finditer(r"<div id='([^']+)' class='chart'[^>]*data-spec=\"([^\"]*)\"", html)}


EVIL = "<script>alert('x')</script><img src=x onerror=alert(1)>"


class Tags(HTMLParser):
    """Counts the real elements of a page (what a browser would build, not text that looks like tags)."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def count(self, tag: str, cls: str | None = None) -> int:
        return sum(1 for t, a in self.tags if t == tag and (cls is None or cls in (a.get("class") or "").split()))


def parse(html: str) -> Tags:
    p = Tags()
    p.feed(html)
    return p


@pytest.fixture(scope="module")
def events():
    return fake_campaign()


def test_counts_of_the_fake_campaign(events):
    c = summarize(events)
    n = c.counts()
    assert c.campaign_id == CAMPAIGN
    assert n["experiments"] == FAKE["experiments"](10) == 12
    assert n["candidates"] == 10
    assert n["scored"] == FAKE["scored"](10) == 10
    assert n["done"] == 9                       # every candidate but the abandoned exp-03
    assert n["abandoned"] == FAKE["abandoned"]
    assert n["failed_runs"] == FAKE["failed_runs"]
    assert n["failed_experiments"] == 2 and n["recovered"] == 1
    assert n["rejections"] == FAKE["rejections"]
    assert n["in_flight"] == 0
    statuses = {x.experiment_id: x.status for x in c.experiments.values()}
    assert statuses["exp-03"] == "abandoned" and statuses["exp-imp"] == "done"   # the lifecycle (lab/lifecycle.py)
    assert statuses["exp-05"] == "done"
    assert [b.experiment_id for b in c.baselines] == ["exp-base"]
    assert c.experiments["exp-imp"].kind == "imported"


def test_latest_score_of_the_scheme_is_used(events):
    c = summarize(events)
    # the baseline was re-scored late under "paper": the latest wins
    assert c.experiments["exp-base"].fitness == 0.5
    # "no-qualitative" scores are ignored for "paper", and used when asked for
    other = summarize(events, scheme="no-qualitative")
    for eid, x in c.experiments.items():
        if x.fitness is not None and eid != "exp-base":
            s = x.score
            assert other.experiments[eid].fitness == pytest.approx(
                round((s.loss_score + s.benchmark_score) / 2, 4), abs=1e-3)
            assert other.experiments[eid].fitness != x.fitness
    assert summarize(events, scheme="nonexistent").scored == []


def test_best_and_costs(events):
    c = summarize(events)
    best = c.best
    assert best is not None and best.kind == "candidate"
    assert best.fitness == max(x.fitness for x in c.candidates if x.fitness is not None)
    assert c.baseline_for(best).experiment_id == "exp-base"
    usage = [e.usage for e in events if isinstance(e, (ev.ProposalCreated, ev.ProposalRejected, ev.ScoreAssigned,
                                                      ev.InsightsStored)) and e.usage is not None]
    assert sum(x.cost.cost_usd for x in c.experiments.values()) == pytest.approx(sum(u.cost_usd for u in usage))
    assert sum(x.cost.calls for x in c.experiments.values()) == sum(u.calls for u in usage)
    results = [e for e in events if isinstance(e, ev.ResultsReady)]
    assert sum(x.compute_s for x in c.experiments.values()) == pytest.approx(
        sum(r.train_s + r.eval_s for r in results))


def test_lineage_parents(events):
    c = summarize(events)
    for x in c.candidates:
        assert x.parent_id in c.experiments, (x.experiment_id, x.parent_id)
    assert c.experiments["exp-base"].parent_id is None and c.experiments["exp-imp"].parent_id is None


def test_report_marks_match_the_log(events, tmp_path):
    out = build_report(events, tmp_path / "r.html", title="Demo report")
    html = out.read_text()
    tags = parse(html)
    c = summarize(events)
    assert "<title>Demo report — archlab report</title>" in html
    specs = chart_specs(html)
    assert len(specs["fitness-plot"]["points"]) == len(c.scored) == 10
    assert sum(p["baseline"] for p in specs["fitness-plot"]["points"]) == 1
    assert len(specs["lineage-plot"]["points"]) == len(c.experiments) == 12
    assert {p["id"] for p in specs["lineage-plot"]["points"]} == set(c.experiments)
    assert len(specs["loss-plot"]["series"]) == 6     # top 5 candidates + the baseline
    assert tags.count("tr") > 10
    for section in ("summary", "fitness", "lineage", "loss", "benchmarks", "problems", "cost", "parameters"):
        assert f"id='{section}'" in html
    # failure/rejection excerpts and reasons are shown
    assert "loss is NaN at step 310" in html and "revisions exhausted" in html and "causality" in html
    # self-contained: nothing fetched from anywhere; the only scripts are the chart library's two, allowed by hash
    assert tags.count("script") == 2
    assert not re.search(r"(src|href)\s*=\s*['\"]?(https?:)?//", html)
    assert "default-src 'none'" in html and html.count("'sha256-") == 2


def test_untrusted_text_is_escaped(tmp_path):
    events = fake_campaign(malicious_name=EVIL)
    code = ev.ProposalRejected(campaign_id=CAMPAIGN, experiment_id="exp-evil", attempt=1, reason="syntax",
                               name="x' onmouseover='alert(2)", feedback="</pre></td><script>alert(3)</script>")
    html = build_report(events + [code], tmp_path / "r.html").read_text()
    tags = parse(html)
    assert tags.count("script") == 2 and tags.count("img") == 0      # the chart library's two
    assert not any("onmouseover" in a or "onerror" in a for _, attrs in tags.tags for a in attrs)
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert "&lt;/pre&gt;&lt;/td&gt;&lt;script&gt;alert(3)" in html
    body = html[:html.index("</main>")]                                 # what events wrote, before the library
    assert "<script" not in body.lower()
    assert any(p["name"] == EVIL for p in chart_specs(html)["lineage-plot"]["points"])   # as data, not markup


def test_empty_and_partial_logs(tmp_path):
    with pytest.raises(ValueError):
        build_report([], tmp_path / "r.html")
    # a campaign that just started: no scores, no curves, still a valid page
    started = ev.CampaignStarted(campaign_id="c1", experiment_id="c1", budget=4)
    sampled = ev.ParentSampled(campaign_id="c1", experiment_id="e1",
                               parent=ev.ProgramSnapshot(experiment_id="zoo:deltanet", name="deltanet", code=""),
                               mode="baseline")
    out = build_report([started, sampled], tmp_path)
    assert out.name == "report-c1.html"
    html = out.read_text()
    assert "no scored experiment yet" in html and "no loss curve yet" in html
    assert "0 / 4" in html


def test_other_campaigns_are_left_out(events, tmp_path):
    stranger = ev.ResultsReady(campaign_id="other", experiment_id="exp-zz", name="stranger", final_loss=0.1)
    c = summarize(events + [stranger], campaign_id=CAMPAIGN)
    assert "exp-zz" not in c.experiments
    assert summarize(events + [stranger]).campaign_id == CAMPAIGN  # the campaign that has a CampaignStarted


def test_chart_colours():
    assert color_for(None) == "#c8ccd2"
    assert color_for(0.0) == "#440154" and color_for(1.0) == "#fde725"


def test_non_finite_numbers_do_not_break_the_page(events, tmp_path):
    nan = float("nan")
    bad = [ev.ResultsReady(campaign_id=CAMPAIGN, experiment_id="exp-nan", name="nan_net", final_loss=nan,
                           loss_curve=[(10, nan), (20, float("inf")), (30, 2.0)]),
           ev.ScoreAssigned(campaign_id=CAMPAIGN, experiment_id="exp-nan", fitness=nan)]
    c = summarize(events + bad)
    assert c.experiments["exp-nan"].fitness is None and len(c.scored) == 10
    html = build_report(events + bad, tmp_path / "r.html").read_text()
    body = html[:html.index("</main>")]        # the page without the chart library's code
    assert "nan_net" in body and "NaN," not in body and "Infinity" not in body
