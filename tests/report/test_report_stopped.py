"""An early-stopped candidate (issue 23's TrainingStopped) is shown in the report and on the progress line, as a
stop at a rung with both losses, not as a failure."""
from schemas import events as ev
from services.cli.progress import CampaignView, PlainProgress
from services.cli.report import build_report
from tests.report.fake_campaign import fake_campaign


def stopped_event(events: list[ev.Event]) -> ev.TrainingStopped:
    started = next(e for e in events if isinstance(e, ev.CampaignStarted))
    victim = next(e for e in events if isinstance(e, ev.ProposalCreated) and e.role == "candidate")
    return ev.TrainingStopped(campaign_id=started.campaign_id, experiment_id=victim.experiment_id, producer="engineer",
                              rung=1, step=160, total_steps=650, heldout_loss=4.91, baseline_loss=4.40,
                              seed_noise=0.028, noises=4.0, reason="worse than the baseline at the rung")


def test_the_report_shows_a_stop_at_a_rung(tmp_path):
    events = fake_campaign(candidates=3, seed=1)
    stop = stopped_event(events)
    html = build_report(events + [stop], tmp_path / "r.html").read_text()
    assert "early stop at rung 1 (step 160/650)" in html
    assert "held-out loss 4.9100 vs the baseline&#x27;s 4.4000" in html or "held-out loss 4.9100 vs the baseline's 4.4000" in html
    assert "stopped early" in html


def test_the_progress_line_says_where_and_why_it_stopped():
    events = fake_campaign(candidates=3, seed=1)
    stop = stopped_event(events)
    view = CampaignView(stop.campaign_id)
    progress = PlainProgress(view, started_at=0.0)
    for e in events:
        if not isinstance(e, (ev.ResultsReady, ev.ScoreAssigned, ev.InsightsStored, ev.CampaignCompleted)) \
                or e.experiment_id != stop.experiment_id:
            progress.apply(e, 1.0)
    lines = progress.apply(stop, 2.0)
    assert any("stopped early at rung 1 (step 160/650): held-out loss 4.9100 vs the baseline's 4.4000" in line
               for line in lines), lines
