"""The work table without Kafka: first claim wins, leases expire, takeovers resume, no double completion."""
from datetime import datetime, timezone

from schemas import events as ev
from services.engineer import handlers
from services.engineer.claims import WorkTable


class Clock:
    def __init__(self, t=1_000_000.0):
        self.t = t

    def __call__(self):
        return self.t


def at(clock):
    return datetime.fromtimestamp(clock.t, timezone.utc)


def proposal(exp="exp-1", revision=0, role="candidate", campaign="c1", profile="cpu-micro"):
    return ev.ProposalCreated(campaign_id=campaign, experiment_id=exp, name=exp, code="class DeltaNet: ...",
                              motivation="m", revision=revision, role=role, profile=profile)


def claim(p, engineer, clock, takeover_of=None, lease_s=60.0):
    e = handlers.claim_event(p, engineer_id=engineer, lease_s=lease_s, device="cpu", takeover_of=takeover_of)
    return e.model_copy(update={"occurred_at": at(clock)})


def beat(p, engineer, clock, step=10):
    return ev.TrainingProgress(campaign_id=p.campaign_id, experiment_id=p.experiment_id, revision=p.revision,
                               engineer_id=engineer, step=step, total_steps=100, checkpoint_step=step,
                               occurred_at=at(clock))


def test_first_claim_in_the_log_wins_for_every_reader():
    clock = Clock()
    p = proposal()
    c_a, c_b = claim(p, "A", clock), claim(p, "B", clock)
    tables = [WorkTable(name, clock=clock) for name in ("A", "B", "C")]
    for t in tables:
        for e in (p, c_a, c_b):
            t.apply(e)
    for t in tables:  # every engineer derives the same owner from the same log
        assert t.holds("exp-1", 0, c_a.event_id) and not t.holds("exp-1", 0, c_b.event_id)
        assert t.run("exp-1", 0).owner_id == "A"
        assert t.next_claimable() is None  # owned and fresh: nothing to claim


def test_unclaimed_proposals_are_claimable_baselines_first_then_fifo():
    t = WorkTable("A", clock=Clock())
    for p in (proposal("x"), proposal("y"), proposal("base", role="baseline"), proposal("z")):
        t.apply(p)
    assert [r.experiment_id for r in t.claimable()] == ["base", "x", "y", "z"]


def test_a_lease_expires_without_heartbeats_and_heartbeats_renew_it():
    clock = Clock()
    t = WorkTable("B", clock=clock)
    p = proposal()
    t.apply(p)
    t.apply(claim(p, "A", clock, lease_s=60))
    clock.t += 50
    t.apply(beat(p, "A", clock, step=20))
    clock.t += 50  # 100 s after the claim but only 50 after the heartbeat
    assert t.next_claimable() is None
    t.apply(beat(p, "B", clock, step=5))  # a heartbeat of a non-owner does not renew the lease
    clock.t += 11
    run = t.next_claimable()
    assert run is not None and run.owner_id == "A" and run.checkpoint_step == 20


def test_a_takeover_wins_once_and_a_stale_takeover_loses():
    clock = Clock()
    t = WorkTable("C", clock=clock)
    p = proposal()
    t.apply(p)
    t.apply(claim(p, "A", clock))
    clock.t += 61
    b = claim(p, "B", clock, takeover_of="A")
    c = claim(p, "C", clock, takeover_of="A")  # raced B for the same dead owner: B is first in the log
    t.apply(b)
    t.apply(c)
    assert t.holds("exp-1", 0, b.event_id) and not t.holds("exp-1", 0, c.event_id)
    assert [cl.won for cl in t.run("exp-1", 0).claims] == [True, True, False]
    # a plain claim (no takeover_of) on an owned run loses too
    late = claim(p, "D", clock)
    t.apply(late)
    assert not t.holds("exp-1", 0, late.event_id)
    assert t.next_claimable() is None  # B's claim is fresh


def test_old_history_replayed_at_start_is_old():
    clock = Clock()
    p = proposal()
    old = claim(p, "A", Clock(clock.t - 3600))  # the owner claimed an hour ago and was never heard of again
    t = WorkTable("B", clock=clock)
    t.apply(p)
    t.apply(old)
    assert t.next_claimable().owner_id == "A"  # expired at once, not lease_s after this engineer started


def test_no_double_completion():
    clock = Clock()
    t = WorkTable("A", clock=clock)
    p = proposal()
    t.apply(p)
    t.apply(claim(p, "A", clock))
    clock.t += 1000
    assert t.next_claimable() is not None
    results = ev.ResultsReady(campaign_id="c1", experiment_id="exp-1", name="exp-1", revision=0)
    t.apply(results)
    assert t.next_claimable() is None  # a finished run is never claimed again, whatever its lease
    assert not t.apply(results)  # duplicates are folded once
    # the local mark (before our own result comes back) has the same effect
    q = proposal("exp-2")
    t.apply(q)
    t.mark_over("exp-2", 0, "results")
    assert t.claimable() == []


def test_a_failed_revision_is_over_and_the_next_revision_is_new_work():
    clock = Clock()
    t = WorkTable("A", clock=clock)
    p0 = proposal()
    t.apply(p0)
    t.apply(claim(p0, "A", clock))
    t.apply(ev.TrainingFailed(campaign_id="c1", experiment_id="exp-1", revision=0, kind="runtime_error", error="x"))
    assert t.claimable() == []
    p1 = proposal(revision=1)
    t.apply(p1)
    run = t.next_claimable()
    assert (run.experiment_id, run.revision, run.owner_id) == ("exp-1", 1, None)
    # a claim of revision 0 does not own revision 1
    assert t.run("exp-1", 1).claims == []


def test_events_of_a_run_may_arrive_before_its_proposal():
    clock = Clock()
    t = WorkTable("B", clock=clock)
    p = proposal()
    t.apply(claim(p, "A", clock))  # different topics: no order between them
    t.apply(p)
    assert t.next_claimable() is None and t.run("exp-1", 0).owner_id == "A"


def test_reference_step_time_is_the_campaign_baseline_on_the_same_profile_and_device():
    t = WorkTable("A", clock=Clock())
    t.apply(ev.ResultsReady(campaign_id="c1", experiment_id="b", name="deltanet", role="baseline",
                            profile="cpu-micro", device="cpu", step_time_s=0.05, probe_s=1e-4))
    t.apply(ev.ResultsReady(campaign_id="c1", experiment_id="b2", name="other", role="baseline",
                            profile="cpu-micro", device="cpu", step_time_s=0.5, probe_s=9e-4))
    assert t.reference_step_s(proposal(), "cpu") == 0.05  # the first baseline result
    assert t.reference_probe_s(proposal(), "cpu") == 1e-4   # and the load it ran under
    assert t.reference_probe_s(proposal(role="baseline"), "cpu") is None
    assert t.reference_step_s(proposal(), "cuda") is None
    assert t.reference_step_s(proposal(campaign="c2"), "cpu") is None
    assert t.reference_step_s(proposal(role="baseline"), "cpu") is None


def test_thin_curve_keeps_200_points_with_both_ends():
    curve = [[i * 10, 5.0 - i * 0.001] for i in range(1, 1001)]
    thin = handlers.thin_curve(curve)
    assert len(thin) == 200 and thin[0] == (10, 4.999) and thin[-1] == (10000, 4.0)
    assert [s for s, _ in thin] == sorted({s for s, _ in thin})
    assert handlers.thin_curve(curve[:5]) == [(s, v) for s, v in curve[:5]]


def test_heartbeats_replayed_before_their_claim_still_count():
    clock = Clock()
    t = WorkTable("B", clock=clock)
    p = proposal()
    old = Clock(clock.t - 100)
    t.apply(p)
    t.apply(beat(p, "A", Clock(clock.t - 5), step=60))  # the progress topic was read first
    t.apply(claim(p, "A", old))
    run = t.run("exp-1", 0)
    assert run.owner_id == "A" and run.checkpoint_step == 60
    assert t.next_claimable() is None  # the heartbeat 5 s ago keeps the 100 s old claim alive
    clock.t += 60
    assert t.next_claimable() is run


def test_a_restarted_engineer_resumes_its_own_run_at_once_and_others_still_wait_for_the_lease():
    clock = Clock()
    p = proposal()
    before = [p, claim(p, "engineer-1", clock), beat(p, "engineer-1", clock, step=40)]
    clock.t += 5                               # engineer-1 is killed -9 and started again
    reborn, other = WorkTable("engineer-1", clock=clock), WorkTable("engineer-2", clock=clock)
    for table in (reborn, other):
        for e in before:
            table.apply(e)
    assert [r.experiment_id for r in reborn.claimable()] == ["exp-1"]   # no lease wait for its own run
    assert other.claimable() == []                                       # the lease still protects it
    again = claim(p, "engineer-1", clock, takeover_of="engineer-1")
    for table in (reborn, other):
        table.apply(again)
    assert reborn.holds("exp-1", 0, again.event_id)
    assert reborn.claimable() == []             # a claim of this life is not an orphan
