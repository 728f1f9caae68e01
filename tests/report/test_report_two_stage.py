"""Two-stage promotion in the report and the live progress: both stages side by side, with the rank agreement.
The log is a whole two-stage campaign driven through the real archive handler (tests/archive/test_promotion.py)."""
import re

from schemas import events as ev
from services.archive.promotion import stage_agreement
from services.archive.storage.sqlite import SQLiteStore
from services.cli.progress import CampaignView, PlainProgress
from services.cli.report import render_html, stage_tau, summarize
from tests.archive.events import CAMP
from tests.archive.test_promotion import _started, two_stage_lab
from tests.archive.test_scheduler import run_campaign


async def _log(tmp_path, **kw):
    return await run_campaign(SQLiteStore(tmp_path / "a.sqlite"), _started(**kw), lab=two_stage_lab())


async def test_the_report_shows_both_stages_and_their_agreement(tmp_path):
    log = await _log(tmp_path, promotion={"top_k": 3, "require_significant": False})
    c = summarize(log)
    promoted = [e for e in log if isinstance(e, ev.ExperimentPromoted)]
    assert [x.experiment_id for x in c.promoted] == [p.experiment_id for p in promoted] and len(promoted) == 3
    fit = {e.experiment_id: e.fitness for e in log if isinstance(e, ev.ScoreAssigned)}
    tau = stage_agreement([(fit[p.source_experiment_id], fit[p.experiment_id]) for p in promoted])
    assert stage_tau(c) == tau
    html = render_html(c)
    section = html[html.index("<section id='verification'>"):]
    section = section[:section.index("</section>")]
    assert "Two-stage promotion: cpu-micro → cpu-tiny" in section and f"<b id='stage-tau'>{tau:+.3f}</b>" in section
    for p in promoted:
        row = re.search(f"<tr data-exp='{p.experiment_id}'>.*?</tr>", section).group(0)
        assert p.source_experiment_id in row and f"{fit[p.source_experiment_id]:.4f}" in row
        assert f"{fit[p.experiment_id]:.4f}" in row and "not required" in row
    assert "baseline at cpu-tiny" in section and "camp-verify-camp-base-deltanet" in section
    assert "top 3 promoted to cpu-tiny, 3 verified" in section
    assert "verified at cpu-tiny" in html                    # the summary card
    # the exploration sections keep to the exploration stage (one profile's metrics, one lineage)
    bench = html[html.index("<section id='benchmarks'>"):]
    bench = bench[:bench.index("</section>")]
    assert "camp-verify-" not in bench
    assert all(x.stage == "explore" for x in c.scored) and not any(x.kind == "verify" for x in c.explored)


async def test_nothing_promoted_is_said_in_the_report(tmp_path):
    log = await run_campaign(SQLiteStore(tmp_path / "a.sqlite"), _started(),
                             lab=two_stage_lab(significant=lambda e: False))
    html = render_html(summarize(log))
    assert "<p class='note' id='nothing-promoted'>nothing was promoted.</p>" in html
    assert "nothing promoted to cpu-tiny: no candidate significant over seed noise" in html


async def test_progress_lines_show_the_promotion_and_the_verification(tmp_path):
    log = await _log(tmp_path)
    progress = PlainProgress(CampaignView(CAMP), 0.0, heartbeat_s=1.0)
    lines = [line for e in log for line in progress.apply(e, 5.0)]
    promoted = [e for e in log if isinstance(e, ev.ExperimentPromoted)]
    for p in promoted:
        assert any("(verify): new -> promoted to cpu-tiny" in line and p.source_experiment_id in line and p.why in line
                   for line in lines)
        assert any(p.experiment_id[-10:] in line and "(verify): analysing -> done" in line for line in lines)
    assert lines[-1].endswith("campaign completed: budget spent; top 2 promoted to cpu-tiny, 2 verified")
    assert "verification runs ended 2/2" in progress.tick(10.0)[0]
