"""Issue 22: a campaign that cannot make progress says why (the first cause, verbatim) and exits non-zero; the
campaign's wall time is estimated once the baseline has trained; a log has whole tables."""
import asyncio
import io
import time
from datetime import datetime, timedelta, timezone
import subprocess
import sys

import pytest
from rich.table import Table

from schemas import events as ev
from services.cli.console import LOG_WIDTH, make_console
from services.cli.progress import (EXIT_NOTHING_SCORED, EXIT_OK, CampaignView, PlainProgress, diagnose,
                                   exit_status)

C = "c-outcome"


def sampled(exp: str, mode: str = "baseline") -> ev.ParentSampled:
    return ev.ParentSampled(campaign_id=C, experiment_id=exp, producer="archive", mode=mode,
                            parent=ev.ProgramSnapshot(experiment_id="zoo-deltanet", name="deltanet", code="x = 1"))


def test_a_baseline_that_cannot_run_is_named_with_its_first_cause_and_the_run_fails():
    view = CampaignView(C)
    view.apply(ev.CampaignStarted(campaign_id=C, experiment_id=C, producer="cli", name=C, profile="cpu-micro",
                                  budget=2, concurrency=1))
    view.apply(sampled("e-deltanet"))
    why = ("no OS sandbox: bwrap: Can't mount proc on /newroot/proc: Operation not permitted; refusing to run "
           "untrusted code")
    view.apply(ev.ProposalRejected(campaign_id=C, experiment_id="e-deltanet", producer="researcher", attempt=1,
                                   reason="sandbox", feedback=why))
    view.apply(ev.ProposalRejected(campaign_id=C, experiment_id="e-deltanet", producer="researcher", attempt=2,
                                   reason="sandbox", feedback="a later, different message"))
    view.apply(ev.ExperimentAbandoned(campaign_id=C, experiment_id="e-deltanet", producer="researcher",
                                      reason="baseline_failed_checks"))
    view.apply(ev.CampaignCompleted(campaign_id=C, experiment_id=C, producer="archive",
                                    reason="no parent to sample: every baseline failed and there are no roots"))
    lines = diagnose(view)
    text = "\n".join(lines)
    assert "no candidate was scored" in text
    assert f"baseline deltanet could not run: proposal rejected (sandbox): {why}" in text   # the first, verbatim
    assert "a later, different message" not in text
    assert "archlab doctor" in text
    assert exit_status(view) == EXIT_NOTHING_SCORED


def test_a_failed_training_shows_the_last_lines_of_the_child_and_a_scored_candidate_exits_zero():
    view = CampaignView(C)
    view.apply(ev.CampaignStarted(campaign_id=C, experiment_id=C, producer="cli", name=C, profile="cpu-micro",
                                  budget=1, concurrency=1))
    view.apply(sampled("e-base"))
    view.apply(ev.TrainingFailed(campaign_id=C, experiment_id="e-base", producer="engineer", kind="crashed",
                                 error="the child exited 1",
                                 log_tail="\n".join(f"line {i}" for i in range(30)) + "\nImportError: no fla"))
    view.apply(ev.ExperimentAbandoned(campaign_id=C, experiment_id="e-base", producer="debugger", reason="revisions"))
    view.apply(ev.CampaignCompleted(campaign_id=C, experiment_id=C, producer="archive", reason="no parent"))
    text = "\n".join(diagnose(view))
    assert "training failed (crashed): the child exited 1" in text
    assert "ImportError: no fla" in text and "line 29" in text and "line 3\n" not in text   # the tail, not all
    assert exit_status(view) == EXIT_NOTHING_SCORED

    view.apply(sampled("e-cand", mode="explore"))
    view.apply(ev.ScoreAssigned(campaign_id=C, experiment_id="e-cand", producer="judge", fitness=0.4))
    assert exit_status(view) == EXIT_OK


def baseline_sampled():
    """A campaign of 6 candidates, 2 at a time, whose baseline was sampled at t0."""
    view = CampaignView(C)
    progress = PlainProgress(view, started_at=0.0)
    progress.apply(ev.CampaignStarted(campaign_id=C, experiment_id=C, producer="cli", name=C, profile="cpu-tiny",
                                      budget=6, concurrency=2), 0.0)
    t0 = datetime(2026, 12, 2, 12, 0, 0, tzinfo=timezone.utc)
    progress.apply(sampled("e-base").model_copy(update={"occurred_at": t0}), 1.0)
    return view, progress, t0


def test_the_estimate_comes_once_the_baseline_has_trained():
    view, progress, t0 = baseline_sampled()
    assert view.estimate_s() is None
    lines = progress.apply(ev.ResultsReady(campaign_id=C, experiment_id="e-base", producer="engineer", name="deltanet",
                                           role="baseline", final_loss=1.0, benchmark=0.8, train_s=100.0, eval_s=10.0,
                                           occurred_at=t0 + timedelta(seconds=120)), 130.0)
    est = [line for line in lines if "estimate" in line]
    assert len(est) == 1
    # 6 candidates, 2 at a time, 120 s each alone (sampled to results), 1.6x slower when sharing: 3 rounds x 192 s
    assert abs(view.estimate_s() - 3 * 120 * 1.6) < 1e-6
    assert "at most about 10 min more" in est[0] and "stopped early" in est[0]


def test_a_reused_baseline_says_so_and_the_estimate_counts_its_first_training():
    view, progress, t0 = baseline_sampled()
    lines = progress.apply(ev.ResultsReady(campaign_id=C, experiment_id="e-base", producer="engineer", name="deltanet",
                                           role="baseline", final_loss=1.0, benchmark=0.8, train_s=100.0, eval_s=10.0,
                                           weights_from="c-old/e-base", occurred_at=t0 + timedelta(seconds=20)), 30.0)
    assert any("weights reused from c-old/e-base" in line for line in lines), lines
    # scored in 20 s, but a candidate trains: 20 + the first run's 100 s, 3 rounds, 1.6x when sharing
    assert abs(view.estimate_s() - 3 * 120 * 1.6) < 1e-6


def test_without_a_terminal_tables_are_printed_whole():
    console = make_console()          # pytest captures stdout: no terminal
    assert console.width == LOG_WIDTH
    buf = io.StringIO()
    console.file = buf
    table = Table()
    for col in ("experiment", "name", "fitness"):
        table.add_column(col)
    table.add_row("c-d4e5f6a7b8-e0003", "delta-v2x-swish-with-a-long-name-8f3a2b1c", "0.978123")
    console.print(table)
    assert "delta-v2x-swish-with-a-long-name-8f3a2b1c" in buf.getvalue() and "…" not in buf.getvalue()


def test_run_help_names_the_exit_codes():
    out = subprocess.run([sys.executable, "-m", "services.cli.main", "run", "--help"], capture_output=True,
                         text=True, timeout=120, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    for code in ("0 at least one candidate", "1 the campaign ended with none", "2 usage error",
                 "3 preflight failed", "4 stalled", "130 interrupted"):
        assert code in " ".join(out.stdout.split()), out.stdout


@pytest.mark.integration
def test_a_campaign_with_nothing_happening_stops_and_says_what_it_waited_for(kafka_broker):
    """The last net of issue 27: a real log in which the campaign's baseline was sampled and then nothing came."""
    from services.cli.campaign import PlainDisplay, Stalled, watch
    from services.common.bus import publish_once
    from services.common.settings import Settings

    started = ev.CampaignStarted(campaign_id=C, experiment_id=C, producer="cli", name=C, profile="cpu-micro",
                                 budget=1, concurrency=1)
    asyncio.run(publish_once(Settings(kafka_bootstrap=kafka_broker), started, sampled("e-stuck")))
    view = CampaignView(C)
    t0 = time.monotonic()
    with pytest.raises(Stalled) as stalled:
        asyncio.run(watch(kafka_broker, view, PlainDisplay(view, t0), timeout_s=300, stall_s=4))
    assert time.monotonic() - t0 < 60
    assert view.started is not None                   # it did read the log, then waited
    assert "nothing happened in the campaign for" in str(stalled.value)
    assert "e-stuck deltanet (baseline) sampled" in str(stalled.value)


def test_a_verb_that_fails_prints_cause_and_what_to_do_and_keeps_the_traceback_in_the_log(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "COLUMNS": "200", "ARCHLAB_DATA_DIR": str(tmp_path / "lab")}
    out = subprocess.run([sys.executable, "-m", "services.cli.main", "tap", "--from-beginning"], capture_output=True,
                         text=True, timeout=120, env=env)
    assert out.returncode == 1
    assert "Traceback" not in out.stdout + out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("error: StackNotRunning: no Kafka broker")
    assert lines[1].startswith("what to do: start the stack with `archlab up`")
    assert "Traceback" in (tmp_path / "lab" / "logs" / "cli.log").read_text()
    debug = subprocess.run([sys.executable, "-m", "services.cli.main", "tap", "--from-beginning", "--debug"],
                           capture_output=True, text=True, timeout=120, env=env)
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_a_campaign_whose_every_candidate_was_stopped_at_a_rung_exits_zero_and_says_so():
    view = CampaignView(C)
    view.apply(ev.CampaignStarted(campaign_id=C, experiment_id=C, producer="cli", name=C, profile="cpu-tiny",
                                  budget=2, concurrency=2))
    view.apply(sampled("e-base"))
    view.apply(ev.ScoreAssigned(campaign_id=C, experiment_id="e-base", producer="judge", fitness=0.5))
    assert exit_status(view) == EXIT_NOTHING_SCORED    # a scored baseline is not a judged candidate
    for exp in ("e-c0", "e-c1"):
        view.apply(sampled(exp, mode="explore"))
        view.apply(ev.TrainingStopped(campaign_id=C, experiment_id=exp, producer="engineer", engineer_id="e", rung=1,
                                      step=320, total_steps=650, heldout_loss=2.4, baseline_loss=1.87,
                                      seed_noise=0.055, noises=4.0, reason="worse than the baseline"))
    view.apply(ev.CampaignCompleted(campaign_id=C, experiment_id=C, producer="archive", reason="budget spent"))
    assert exit_status(view) == EXIT_OK
    text = "\n".join(diagnose(view))
    assert "all 2 were stopped early" in text and "no candidate was scored" not in text


@pytest.mark.integration
def test_the_watch_folds_a_verdict_that_trails_the_campaigns_completion(kafka_broker, capsys):
    """The archive completes the campaign on the last candidate's TrainingStopped; that event lives on another topic
    and can reach the CLI after the CampaignCompleted. The watch waits for it (at most DRAIN_S): the last candidate's
    line is printed and the view counts it ended (a make-run campaign once ended with no line for its sixth)."""
    from services.cli.campaign import PlainDisplay, watch
    from services.common.bus import publish_once
    from services.common.settings import Settings

    camp = C + "-trailing"
    settings = Settings(kafka_bootstrap=kafka_broker)

    def mine(e):
        return e.model_copy(update={"campaign_id": camp})

    started = ev.CampaignStarted(campaign_id=camp, experiment_id=camp, producer="cli", name=camp,
                                 profile="cpu-micro", budget=1, concurrency=1)
    x = "e-last"
    proposal = ev.ProposalCreated(campaign_id=camp, experiment_id=x, producer="researcher", name="delta-x",
                                  code="x = 1", motivation="m", profile="cpu-micro")
    claim = ev.TrainingStarted(campaign_id=camp, experiment_id=x, producer="engineer", engineer_id="eng-1")
    completed = ev.CampaignCompleted(campaign_id=camp, experiment_id=camp, producer="archive", reason="budget spent")
    stopped = ev.TrainingStopped(campaign_id=camp, experiment_id=x, producer="engineer", engineer_id="eng-1", rung=1,
                                 step=40, total_steps=400, heldout_loss=3.9, baseline_loss=2.5, seed_noise=0.05,
                                 noises=4.0, reason="rung 1")
    asyncio.run(publish_once(settings, started, mine(sampled(x, "explore")), proposal, claim, completed))

    async def trailing() -> None:
        await asyncio.sleep(1.5)
        await publish_once(settings, stopped)

    async def both() -> None:
        view = CampaignView(camp)
        await asyncio.gather(watch(kafka_broker, view, PlainDisplay(view, time.monotonic()), timeout_s=120,
                                   stall_s=60), trailing())
        return view
    view = asyncio.run(both())
    assert view.completed and view.experiments[x].status == "stopped"
    assert "stopped early at rung 1" in capsys.readouterr().out
