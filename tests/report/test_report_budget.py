"""The report shows spend against the campaign's limits (--max-llm-cost, --max-device-hours)."""
from schemas import events as ev
from services.cli.report import render_html, summarize
from tests.report.fake_campaign import fake_campaign


def _with_limits(events, **limits):
    return [e.model_copy(update={"config": {"budget": limits}}) if isinstance(e, ev.CampaignStarted) else e
            for e in events]


def test_spend_against_the_budget():
    events = fake_campaign()
    usd = sum(e.usage.cost_usd for e in events if getattr(e, "usage", None) is not None)
    device_h = (sum(e.train_s + e.eval_s for e in events if isinstance(e, ev.ResultsReady))
                + sum(e.wall_s for e in events if isinstance(e, ev.TrainingFailed))) / 3600
    assert usd > 0 and device_h > 0
    html = render_html(summarize(_with_limits(events, max_llm_cost_usd=usd * 2, max_device_hours=device_h / 2)))
    assert f"${usd:.2f} / ${usd * 2:.2f}" in html and "50% of --max-llm-cost" in html
    assert f"{device_h:.3f} h / {device_h / 2:g} h" in html and "200% of --max-device-hours" in html
    assert "<div class='card bad'><div class='k'>device budget" in html     # over the limit: marked
    plain = render_html(summarize(events))
    assert "LLM budget" not in plain and "device budget" not in plain
