"""A one-stage campaign with replication runs (issue 24: a candidate re-trained unchanged on held-out seeds, mode
"verify" in the exploration stage) is reported as one stage: replication runs are not promotions. CI caught
`archlab run` ending in AttributeError ('NoneType' object has no attribute 'verify_profile') after such a campaign."""
from schemas import events as ev
from services.cli.report import build_report, summarize
from tests.report.fake_campaign import fake_campaign


def with_replication(events: list[ev.Event]) -> list[ev.Event]:
    started = next(e for e in events if isinstance(e, ev.CampaignStarted))
    cid = started.campaign_id
    claim = next(e for e in events if isinstance(e, ev.ResultsReady) and e.role == "candidate")
    code = next(e.code for e in events if isinstance(e, ev.ProposalCreated) and e.experiment_id == claim.experiment_id)
    snap = ev.ProgramSnapshot(experiment_id=claim.experiment_id, name=claim.name, code=code)
    out, reps = list(events[:-1]), []   # before CampaignCompleted
    for k in (1, 2):
        rep = f"{claim.experiment_id}-rep{k}"
        reps.append(rep)
        out += [ev.ParentSampled(campaign_id=cid, experiment_id=rep, mode="verify", parent=snap, seed=1000 + k),
                ev.ProposalCreated(campaign_id=cid, experiment_id=rep, name=claim.name, code=code, role="verify",
                                   motivation="replication"),
                ev.ResultsReady(campaign_id=cid, experiment_id=rep, name=claim.name, role="verify",
                                final_loss=claim.final_loss + 0.01 * k, benchmark=claim.benchmark, metrics={},
                                loss_curve=[(0, 5.0), (100, claim.final_loss)], params=claim.params,
                                tokens=claim.tokens, steps=claim.steps)]
    out.append(ev.ReplicationAssessed(campaign_id=cid, experiment_id=claim.experiment_id, replicates=reps,
                                      seeds=[1001, 1002], verdict="not replicated", reason="no metric better"))
    return out + [events[-1]]


def test_replication_runs_are_not_promotions(tmp_path):
    events = with_replication(fake_campaign(candidates=4, seed=2))
    c = summarize(events)
    assert [x for x in c.experiments.values() if x.kind == "verify"], "the replication runs are in the campaign"
    assert c.promoted == []
    html = build_report(events, tmp_path / "r.html").read_text()
    assert "verified at" not in html   # no verification stage shown for a one-stage campaign
    # the verdict and the sizes beside the baseline's (issue 24: the report shows them like the leaderboard)
    assert "not replicated (– over seeds 1001, 1002)" in html
    base = next(x for x in c.baselines)
    claim = c.experiments[next(iter(c.experiments[k] for k in c.experiments if k.endswith("-rep1"))).experiment_id]
    assert f"{base.params:,} (1.00x)" in html
    ratio = c.experiments[claim.experiment_id.removesuffix("-rep1")].params / base.params
    assert f"({ratio:.2f}x)" in html
