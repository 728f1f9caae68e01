"""Promotion rule: top K by fitness among the candidates significant over seed noise; stage agreement."""
import math

from schemas import events as ev
from services.archive import promotion
from services.archive.projection import apply
from services.archive.storage.sqlite import SQLiteStore
from tests.archive.events import mk, snap


def _candidate(store, exp, fitness, significant, role="candidate"):
    for e in (mk(ev.ParentSampled, exp, 1, parent=snap("p"), mode="baseline" if role == "baseline" else "explore"),
              mk(ev.ResultsReady, exp, 2, name=exp, role=role, final_loss=1.0, benchmark=0.5),
              mk(ev.ScoreAssigned, exp, 3, fitness=fitness, significant=significant)):
        apply(store, e)


def test_top_k_among_the_significant(tmp_path):
    store = SQLiteStore(tmp_path / "a.sqlite")
    apply(store, mk(ev.CampaignStarted, "camp", 0))
    _candidate(store, "a", 0.9, False)      # best fitness but within seed noise: not promoted
    _candidate(store, "b", 0.7, True)
    _candidate(store, "c", 0.8, True)
    _candidate(store, "d", 0.7, True)       # tie with b: experiment id decides
    _candidate(store, "e", 0.6, None)       # significance unknown: not promoted
    _candidate(store, "base", 0.95, True, role="baseline")
    got = promotion.promotion_candidates(store, "camp", 2)
    assert [(p.experiment_id, p.rank, p.eligible) for p in got] == [("c", 1, 3), ("b", 2, 3)]
    assert "significant over seed noise" in got[0].why and "0.8000" in got[0].why
    assert [p.experiment_id for p in promotion.promotion_candidates(store, "camp", 10)] == ["c", "b", "d"]
    assert promotion.promotion_candidates(store, "camp", 0) == []
    assert promotion.verify_id("camp", "c") == "camp-verify-c"


def test_stage_agreement():
    assert promotion.stage_agreement([(0.9, 0.8), (0.5, 0.4), (0.1, 0.2)]) == 1.0
    assert promotion.stage_agreement([(0.9, 0.1), (0.5, 0.4), (0.1, 0.8)]) == -1.0
    assert promotion.stage_agreement([(0.9, 0.1)]) is None
    assert math.isclose(promotion.stage_agreement([(3, 1), (2, 3), (1, 2)]), -1 / 3)   # 1 concordant, 2 discordant


# ---------------------------------------------------------------- the second stage, scheduled (scheduler.py)
import pytest  # noqa: E402

from services.archive import queries, scheduler  # noqa: E402
from services.archive.budget import profile_run_s  # noqa: E402
from services.archive.pool import elite_pool  # noqa: E402
from services.archive.projection import digest  # noqa: E402
from services.archive.replay import interleave, replay_events  # noqa: E402
from tests.archive.events import CAMP  # noqa: E402
from tests.archive.test_scheduler import _h, fake_lab, run_campaign  # noqa: E402

VERIFY = "cpu-tiny"


def two_stage_lab(significant=lambda e: _h(e.experiment_id, "sig") < 0.6, fail_verify_baseline=False,
                  stop_verify=False):
    """fake_lab, plus what the second stage needs: the researcher passes a promoted program through unchanged
    (role "verify"), the engineer trains at the sampled profile, the judge says whether a score is significant."""
    def lab(e: ev.Event) -> list[ev.Event]:
        if isinstance(e, ev.ParentSampled) and e.stage == "verify":
            if e.mode == "baseline" and fail_verify_baseline:
                return [e.caused(ev.ExperimentAbandoned, producer="researcher", reason="baseline_failed_checks")]
            return [e.caused(ev.ProposalCreated, producer="researcher", name=e.parent.name, code=e.parent.code,
                             motivation="m", role="baseline" if e.mode == "baseline" else "verify",
                             origin="zoo" if e.mode == "baseline" else "promoted", profile=e.profile)]
        if isinstance(e, ev.ProposalCreated) and stop_verify and e.role == "verify":   # early stopping at a rung
            return [e.caused(ev.TrainingStarted, producer="engineer", engineer_id="e1", profile=e.profile),
                    e.caused(ev.TrainingStopped, producer="engineer", engineer_id="e1", rung=1, step=320,
                             total_steps=650, heldout_loss=2.5, baseline_loss=1.9, seed_noise=0.055, noises=4.0)]
        if isinstance(e, ev.ProposalCreated):   # no training failure in these tests: every program trains
            return [e.caused(ev.TrainingStarted, producer="engineer", engineer_id="e1", profile=e.profile),
                    e.caused(ev.ResultsReady, producer="engineer", name=e.name, role=e.role, profile=e.profile,
                             final_loss=1 + _h(e.experiment_id, "loss"), benchmark=_h(e.experiment_id, "b"))]
        if isinstance(e, ev.ResultsReady):
            return [e.caused(ev.ScoreAssigned, producer="judge", fitness=round(_h(e.experiment_id, "fit"), 4),
                             significant=significant(e))]
        return fake_lab(e)
    return lab


def _started(promotion=None, **kw):
    fields = dict(profile="cpu-micro", budget=6, concurrency=2, seed=3, cold_start=2, baselines=["deltanet", "gla"],
                  config={"promotion": {"verify_profile": VERIFY, "top_k": 2, "require_significant": True,
                                        **(promotion or {})}})
    fields.update(kw)
    return mk(ev.CampaignStarted, CAMP, 0, **fields)


def _ended_at(log, exp_id):
    return max(i for i, e in enumerate(log) if e.experiment_id == exp_id
               and isinstance(e, (ev.InsightsStored, ev.ExperimentAbandoned)))


async def test_a_verification_run_stopped_early_is_said_so_at_completion(tmp_path):
    live = SQLiteStore(tmp_path / "live.sqlite")
    log = await run_campaign(live, _started(), lab=two_stage_lab(stop_verify=True))
    [done] = [e for e in log if isinstance(e, ev.CampaignCompleted)]
    assert done.reason == (f"budget spent; top 2 promoted to {VERIFY}, 0 verified: 2 stopped early (worse than the "
                           "baseline at a rung, step 320, 320)")


async def test_exploration_then_promotion_then_verification_then_completion(tmp_path):
    live = SQLiteStore(tmp_path / "live.sqlite")
    log = await run_campaign(live, _started(), lab=two_stage_lab())
    promoted = [e for e in log if isinstance(e, ev.ExperimentPromoted)]
    explore = [e for e in log if isinstance(e, ev.ParentSampled) and e.mode == "explore"]
    assert len(explore) == 6
    # the rule: the top 2 by fitness among the candidates whose score is significant
    want = promotion.promotion_candidates(live, CAMP, 2)
    assert len(want) == 2 and [(p.source_experiment_id, p.rank) for p in promoted] == \
        [(w.experiment_id, w.rank) for w in want]
    assert all(p.experiment_id == promotion.verify_id(CAMP, p.source_experiment_id) for p in promoted)
    assert all(p.verify_profile == VERIFY and p.explore_profile == "cpu-micro" and p.significant is True
               and "significant over seed noise" in p.why and p.exploration == "budget spent" and p.explored == 8
               for p in promoted)
    assert promoted[0].event_id == ev.derived_id(CAMP, "ExperimentPromoted", promoted[0].experiment_id)
    # decided once exploration had ended: after every explored experiment's end, and no exploration after it
    first_promotion = log.index(promoted[0])
    assert all(_ended_at(log, e.experiment_id) < first_promotion for e in explore)
    assert not any(isinstance(e, ev.ParentSampled) and e.stage == "explore" for e in log[first_promotion:])
    # the verification profile's baseline (only the reference, the first baseline) comes with the promotion
    base_id = scheduler.verify_baseline_id(CAMP, "deltanet")
    assert base_id == "camp-verify-camp-base-deltanet"
    [vbase] = [e for e in log if isinstance(e, ev.ParentSampled) and e.experiment_id == base_id]
    assert (vbase.mode, vbase.stage, vbase.profile) == ("baseline", "verify", VERIFY)
    assert log.index(vbase) == first_promotion + 2
    # the promoted runs: after the baseline there ended, at the verification profile, the explored code unchanged
    runs = [e for e in log if isinstance(e, ev.ParentSampled) and e.mode == "verify"]
    assert [r.experiment_id for r in runs] == [p.experiment_id for p in promoted]
    assert all(log.index(r) > _ended_at(log, base_id) and r.profile == VERIFY and r.stage == "verify" for r in runs)
    assert all(r.parent.experiment_id == p.source_experiment_id and r.parent.code == live.get_experiment(
        p.source_experiment_id)["code"] for r, p in zip(runs, promoted))
    # completion last, once the verification runs ended, saying what happened
    done = [e for e in log if isinstance(e, ev.CampaignCompleted)]
    assert len(done) == 1 and all(_ended_at(log, r.experiment_id) < log.index(done[0]) for r in runs)
    assert done[0].reason == f"budget spent; top 2 promoted to {VERIFY}, 2 verified"
    assert done[0].experiments == 2 + 6 + 1 + 2
    # the read model: stages, roles, the verification runs out of the exploration pool and leaderboard
    for p in promoted:
        doc = live.get_experiment(p.experiment_id)
        assert (doc["role"], doc["stage"], doc["verifies"], doc["status"]) == \
            ("verify", "verify", p.source_experiment_id, "done")
        assert doc["promotion"]["why"] == p.why and doc["parent_id"] is None and doc["fitness"] is not None
    assert live.get_experiment(base_id)["stage"] == "verify" and live.get_experiment(base_id)["role"] == "baseline"
    assert not {m.experiment_id for m in elite_pool(live, CAMP)} & ({p.experiment_id for p in promoted} | {base_id})
    board = queries.leaderboard(live, CAMP)
    assert not any(r["experiment_id"].startswith("camp-verify-") for r in board)
    by_id = {r["experiment_id"]: r for r in board}
    for p in promoted:
        assert by_id[p.source_experiment_id]["verify_experiment_id"] == p.experiment_id
        assert by_id[p.source_experiment_id]["verify_fitness"] == live.get_experiment(p.experiment_id)["fitness"]
    view = queries.two_stage(live, CAMP)
    assert [r["source_experiment_id"] for r in view["rows"]] == [p.source_experiment_id for p in promoted]
    assert view["verify_profile"] == VERIFY and view["explore_profile"] == "cpu-micro" and view["pairs"] == 2
    assert view["tau_b"] == promotion.stage_agreement([(r["explore_fitness"], r["verify_fitness"])
                                                        for r in view["rows"]])
    assert [b["experiment_id"] for b in view["baselines"]] == [base_id]
    shown = queries.show(live, promoted[0].source_experiment_id)["stages"]
    assert shown["stage"] == "explore" and shown["verify"]["experiment_id"] == promoted[0].experiment_id
    shown = queries.show(live, promoted[0].experiment_id)["stages"]
    assert shown["stage"] == "verify" and shown["explore"]["experiment_id"] == promoted[0].source_experiment_id
    assert shown["verify"]["profile"] == VERIFY and shown["explore"]["profile"] == "cpu-micro"
    # nothing more to decide; a replay in another cross-topic order rebuilds the same database
    assert scheduler.schedule(live, CAMP) == [] and live.pending_local() == []
    fresh = SQLiteStore(tmp_path / "replay.sqlite")
    replay_events(interleave(log, 11), fresh)
    assert digest(fresh) == digest(live)
    assert queries.two_stage(fresh, CAMP) == view


async def test_verification_runs_respect_the_concurrency(tmp_path):
    store = SQLiteStore(tmp_path / "a.sqlite")
    log = await run_campaign(store, _started(promotion={"top_k": 3, "require_significant": False}, concurrency=1),
                             lab=two_stage_lab())
    runs = [e.experiment_id for e in log if isinstance(e, ev.ParentSampled) and e.mode == "verify"]
    assert len(runs) == 3
    for a, b in zip(runs, runs[1:]):   # one in flight: the next is sampled only once the previous ended
        assert _ended_at(log, a) < next(i for i, e in enumerate(log) if isinstance(e, ev.ParentSampled)
                                        and e.experiment_id == b)


async def test_nothing_significant_completes_at_once_and_says_so(tmp_path):
    store = SQLiteStore(tmp_path / "a.sqlite")
    log = await run_campaign(store, _started(), lab=two_stage_lab(significant=lambda e: False))
    assert not any(isinstance(e, ev.ExperimentPromoted) or getattr(e, "stage", "") == "verify" for e in log)
    [done] = [e for e in log if isinstance(e, ev.CampaignCompleted)]
    assert done.reason == f"budget spent; nothing promoted to {VERIFY}: no candidate significant over seed noise"
    assert done.experiments == 8 and queries.two_stage(store, CAMP) is None


async def test_promote_any_promotes_by_fitness_alone(tmp_path):
    store = SQLiteStore(tmp_path / "a.sqlite")
    log = await run_campaign(store, _started(promotion={"require_significant": False}),
                             lab=two_stage_lab(significant=lambda e: False))
    promoted = [e for e in log if isinstance(e, ev.ExperimentPromoted)]
    scored = sorted((d for d in store.experiments(CAMP) if d["role"] == "candidate" and d["stage"] == "explore"
                     and d["fitness"] is not None), key=lambda d: (-d["fitness"], d["experiment_id"]))
    assert [p.source_experiment_id for p in promoted] == [d["experiment_id"] for d in scored[:2]]
    assert all(p.require_significant is False and "not required" in p.why and "not significant" in p.why
               for p in promoted)
    assert log[-1].type == "CampaignCompleted" and "top 2 promoted" in log[-1].reason


async def test_a_failed_verification_baseline_completes_without_training_the_promoted(tmp_path):
    store = SQLiteStore(tmp_path / "a.sqlite")
    log = await run_campaign(store, _started(), lab=two_stage_lab(fail_verify_baseline=True))
    assert [e for e in log if isinstance(e, ev.ExperimentPromoted)]
    assert not any(isinstance(e, ev.ParentSampled) and e.mode == "verify" for e in log)
    [done] = [e for e in log if isinstance(e, ev.CampaignCompleted)]
    assert "none trained: the baseline deltanet failed at cpu-tiny" in done.reason and done.experiments == 9
    assert {d["status"] for d in store.experiments(CAMP) if d.get("promotion")} == {"promoted"}


async def test_spending_limits_promote_only_what_fits(tmp_path):
    bound_h = profile_run_s(VERIFY) / 3600       # no run at the verification profile yet: its time limits
    assert bound_h > 0
    store = SQLiteStore(tmp_path / "a.sqlite")
    started = _started(promotion={"top_k": 3, "require_significant": False})
    started = started.model_copy(update={"config": {**started.config, "budget": {"max_device_hours": 2.5 * bound_h}}})
    log = await run_campaign(store, started, lab=two_stage_lab())
    assert len([e for e in log if isinstance(e, ev.ExperimentPromoted)]) == 1   # baseline + 1 run fit, + 2 do not
    assert log[-1].type == "CampaignCompleted" and "top 1 promoted" in log[-1].reason
    store2 = SQLiteStore(tmp_path / "b.sqlite")
    tight = started.model_copy(update={"config": {**started.config, "budget": {"max_device_hours": 1.5 * bound_h}}})
    log = await run_campaign(store2, tight, lab=two_stage_lab())
    assert not any(isinstance(e, ev.ExperimentPromoted) for e in log)
    assert "nothing promoted to cpu-tiny: device budget" in log[-1].reason


@pytest.mark.parametrize("order", ["promoted first", "sampled first"])
def test_projection_of_a_promotion_in_any_order(tmp_path, order):
    store = SQLiteStore(tmp_path / "a.sqlite")
    apply(store, mk(ev.CampaignStarted, "camp", 0))
    vid = promotion.verify_id("camp", "src")
    promoted = mk(ev.ExperimentPromoted, vid, 1, source_experiment_id="src", name="gated", verify_profile=VERIFY,
                  rank=1, eligible=3, top_k=1, fitness=0.8, significant=True, why="rank 1 of 3")
    sampled = mk(ev.ParentSampled, vid, 2, mode="verify", stage="verify", profile=VERIFY,
                 parent=snap("src", "gated", code="y = 2"))
    events = [promoted, sampled] if order == "promoted first" else [sampled, promoted]
    apply(store, events[0])
    if order == "promoted first":
        assert store.get_experiment(vid)["status"] == "promoted"
    apply(store, events[1])
    doc = store.get_experiment(vid)
    assert (doc["status"], doc["role"], doc["stage"], doc["verifies"], doc["name"], doc["code"]) == \
        ("sampled", "verify", "verify", "src", "gated", "y = 2")
    assert doc["parent_id"] is None and doc["promotion"]["why"] == "rank 1 of 3"
    assert store.children("src") == []


async def test_leaderboard_and_show_commands_print_both_stages(tmp_path):
    from typer.testing import CliRunner

    from services.cli.main import app

    with SQLiteStore(tmp_path / "archive.sqlite") as store:
        log = await run_campaign(store, _started(), lab=two_stage_lab())
        view = queries.two_stage(store, CAMP)
    promoted = [e for e in log if isinstance(e, ev.ExperimentPromoted)]
    runner = CliRunner()
    r = runner.invoke(app, ["leaderboard", "--campaign", CAMP, "--data-dir", str(tmp_path)], env={"COLUMNS": "250"})
    assert r.exit_code == 0, r.output
    out = r.output
    assert "(exploration stage)" in out and "verify fitness" in out
    assert f"two-stage promotion of {CAMP}: cpu-micro -> cpu-tiny" in out
    assert all(p.experiment_id in out and p.why in out for p in promoted)
    assert "baseline at cpu-tiny: camp-verify-camp-base-deltanet" in out
    tau = view["tau_b"]
    assert f"Kendall tau-b over 2 verified): {tau:.3f}" in out and "top 2 promoted to cpu-tiny, 2 verified" in out
    r = runner.invoke(app, ["show", promoted[0].experiment_id, "--data-dir", str(tmp_path)], env={"COLUMNS": "250"})
    assert r.exit_code == 0, r.output
    assert f"promoted {promoted[0].source_experiment_id} -> {promoted[0].experiment_id} at cpu-tiny" in r.output
    assert "exploration" in r.output and "at cpu-micro" in r.output and "verification" in r.output
