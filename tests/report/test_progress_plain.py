"""`archlab run` without a terminal: a line per state change, a heartbeat, and a diagnosis of
failures that were not the program's fault."""
from schemas import events as ev
from services.cli.progress import CampaignView, PlainProgress, diagnose
from tests.report.fake_campaign import CAMPAIGN, fake_campaign


def test_every_state_change_is_one_line_and_the_heartbeat_is_periodic():
    view = CampaignView(CAMPAIGN)
    progress = PlainProgress(view, started_at=0.0, heartbeat_s=60)
    lines = []
    for i, event in enumerate(fake_campaign(candidates=8)):
        lines += progress.apply(event, now=float(i))
    assert any("-> done" in line for line in lines)
    assert any("-> abandoned" in line for line in lines)
    assert any("training failed" in line for line in lines)
    assert any("proposal rejected" in line for line in lines)
    assert lines[-1].endswith("campaign completed: budget spent") or "campaign completed" in lines[-1]
    done = [x for x in view.experiments.values() if x.status == "done"]
    assert sum("-> done" in line for line in lines) == len(done)
    assert progress.tick(now=30.0) == []            # not a minute yet
    beat = progress.tick(now=61.0)
    assert len(beat) == 1 and "candidates ended" in beat[0]
    assert progress.tick(now=62.0) == []


def test_a_baseline_killed_by_its_time_limit_is_diagnosed_with_its_speed():
    c, exp = "camp-x", "camp-x-base-deltanet"
    view = CampaignView(c)
    events = [
        ev.CampaignStarted(campaign_id=c, experiment_id=c, producer="t", budget=2),
        ev.TrainingStarted(campaign_id=c, experiment_id=exp, producer="t", engineer_id="engineer-1",
                           calibrated_step_s=0.25, wall_limit_s=1320),
        ev.TrainingProgress(campaign_id=c, experiment_id=exp, producer="t", engineer_id="engineer-1", step=412,
                            total_steps=1000, tokens_per_s=2336.0),
        ev.TrainingFailed(campaign_id=c, experiment_id=exp, producer="t", kind="timeout", wall_s=1320,
                          error="wall-time limit of 1320 s exceeded"),
        ev.ExperimentAbandoned(campaign_id=c, experiment_id=exp, producer="t", reason="timeout (no revision)"),
        ev.CampaignCompleted(campaign_id=c, experiment_id=c, producer="t", reason="no parent to sample"),
    ]
    for e in events:
        view.apply(e)
    lines = diagnose(view)
    assert any("timeout after 1320 s at step 412/1000, 2,336 tokens/s" in line and "--profile cpu-micro" in line
               for line in lines), lines
    assert any("limit was 1320 s, set from the engineer's calibrated 0.250 s per step" in line for line in lines)
    assert any("no candidate was scored" in line and "no parent to sample" in line for line in lines)


def test_the_report_carries_the_same_diagnosis(tmp_path):
    from services.cli.report import build_report
    c, exp = "camp-y", "camp-y-base-deltanet"
    events = [
        ev.CampaignStarted(campaign_id=c, experiment_id=c, producer="t", budget=1),
        ev.TrainingStarted(campaign_id=c, experiment_id=exp, producer="t", engineer_id="engineer-1"),
        ev.TrainingProgress(campaign_id=c, experiment_id=exp, producer="t", engineer_id="engineer-1", step=99,
                            total_steps=500, tokens_per_s=1234.0),
        ev.TrainingFailed(campaign_id=c, experiment_id=exp, producer="t", kind="timeout", wall_s=700,
                          error="wall-time limit of 700 s exceeded"),
        ev.ExperimentAbandoned(campaign_id=c, experiment_id=exp, producer="t", reason="timeout"),
    ]
    html = build_report(events, tmp_path / "r.html").read_text()
    assert "id='diagnosis'" in html and "timeout after 700 s at step 99/500, 1,234 tokens/s" in html
