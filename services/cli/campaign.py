"""`archlab run`: one command runs a real discovery campaign on the embedded stack.

It brings the stack up if none is running, publishes CampaignStarted (or, with --resume, picks up
the last campaign), shows live progress folded from the event log, and ends with the leaderboard
and a self-contained HTML report. Ctrl-C stops cleanly: the log keeps every fact, so --resume
continues with nothing lost or repeated.
"""
from __future__ import annotations

import asyncio
import json
import re
import signal
import time
import uuid
from pathlib import Path
from typing import Optional

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table

from services.cli.console import make_console
from schemas import codec
from schemas import events as ev
from schemas.events import EVENT_TYPES
from schemas.topics import topic_for
from services.cli import progress as exits
from services.cli.progress import TERMINAL, CampaignView, PlainProgress, diagnose, exit_status
from services.common import endpoints
from services.common.cognition_model import GLOBAL_CAMPAIGN
from services.common.log_reader import read_log
from services.common.bus import publish_once
from services.common.settings import Settings, load_settings
from lab.judging.fitness import campaign_seed_noise
from lab.judging.size import DEFAULT_MAX_PARAMS_RATIO

console = make_console()
CLEANUP_S = 5.0          # the log reader's clean-up after Ctrl-C or a stall
DRAIN_S = 5.0            # after CampaignCompleted: the longest the watch waits for its experiments' last events
STALL_MARGIN_S = 300.0   # checks, sandbox start-up, judge and analyst between two events of a campaign


def campaign_file(settings: Settings) -> Path:
    return Path(settings.data_dir) / "campaign.json"


def progress_table(view: CampaignView, started_at: float) -> Group:
    c = view.counts()
    budget = view.started.budget if view.started else "?"
    best = view.best()
    head = Table.grid(padding=(0, 2))
    head.add_row(f"[bold]campaign[/] {view.campaign_id}", f"profile {view.started.profile if view.started else '?'}",
                 f"elapsed {time.monotonic() - started_at:,.0f}s")
    head.add_row(f"in flight [cyan]{view.in_flight()}[/]", f"done [green]{c.get('done', 0)}[/]",
                 f"abandoned [red]{c.get('abandoned', 0)}[/]  score errors {c.get('score_error', 0)}")
    head.add_row(f"rejections {sum(view.rejection_reasons.values())} {dict(view.rejection_reasons)}",
                 f"training failures {sum(view.failure_kinds.values())} {dict(view.failure_kinds)}",
                 f"budget {budget} candidates")
    est = view.estimate_s()
    head.add_row(f"best fitness [bold]{best.fitness:.4f}[/] ({best.name})" if best else "best fitness: -",
                 "per stage: " + ", ".join(f"{k} {v:.0f}s" for k, v in view.stage_means().items()),
                 f"estimate: {est / 60:.0f} min more" if est is not None else "estimate: after the baseline")
    rows = Table(show_lines=False)
    for col in ("experiment", "role", "name", "status", "loss", "bench", "fitness", "rej", "fail"):
        rows.add_column(col)
    for x in list(view.experiments.values())[-12:]:
        rows.add_row(x.experiment_id[-10:], x.role, x.name[:28], x.status,
                     f"{x.final_loss:.3f}" if x.final_loss is not None else "",
                     f"{x.benchmark:.3f}" if x.benchmark is not None else "",
                     f"{x.fitness:.4f}" if x.fitness is not None else "", str(x.rejections), str(x.failures))
    return Group(head, rows)


class LiveDisplay:
    """A terminal: the progress table redrawn in place."""

    def __init__(self, view: CampaignView, started_at: float):
        self.view, self.started_at = view, started_at
        self.live = Live(progress_table(view, started_at), console=console, refresh_per_second=2, transient=False)

    def __enter__(self) -> "LiveDisplay":
        self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.live.__exit__(*exc)

    def event(self, event: ev.Event) -> None:
        self.view.apply(event)
        self.live.update(progress_table(self.view, self.started_at))

    def tick(self) -> None:
        self.live.update(progress_table(self.view, self.started_at))


class PlainDisplay:
    """No terminal (a file, a CI log): one line per state change and a heartbeat every minute."""

    def __init__(self, view: CampaignView, started_at: float, heartbeat_s: float = 60.0):
        self.progress = PlainProgress(view, started_at, heartbeat_s)

    def __enter__(self) -> "PlainDisplay":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def _print(self, lines: list[str]) -> None:
        for line in lines:
            print(line, flush=True)

    def event(self, event: ev.Event) -> None:
        self._print(self.progress.apply(event, time.monotonic()))

    def tick(self) -> None:
        self._print(self.progress.tick(time.monotonic()))


class Stalled(RuntimeError):
    """Nothing happened in the campaign for longer than its limit: the message says what it was waiting for."""


def waiting_for(view: CampaignView) -> str:
    busy = [f"{x.label()} {x.status}" + (f" (step {x.step}/{x.total_steps})" if x.total_steps else "")
            for x in view.experiments.values() if x.status not in TERMINAL]
    return "; ".join(busy) if busy else "the archive to sample the next experiment or complete the campaign"


async def watch(bootstrap: str, view: CampaignView, display, *, timeout_s: float, stall_s: float) -> None:
    """Fold the campaign's events into `view` (through `display`) until CampaignCompleted and every experiment's
    settling event (the last verdicts travel on other topics and can trail the completion: up to DRAIN_S after it,
    so the last candidate's line is printed too). Raises Stalled when no
    event of the campaign arrives for `stall_s` seconds (training reports progress, so only a lost or stuck piece of
    work is that quiet), or when the whole watch passes `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last_event = [time.monotonic(), 0]   # when view.events last changed, and its value then

    async def fold() -> None:
        async for rec in read_log(bootstrap, [topic_for(t) for t in EVENT_TYPES], follow=True, poll_ms=300):
            try:
                display.event(codec.decode(rec.value))
            except codec.EventDecodeError:
                continue
            if view.completed and not any(x.status not in TERMINAL for x in view.experiments.values()):
                return

    task = asyncio.create_task(fold())
    completed_at = None
    # Ctrl-C as a flag the loop below answers within a second, with a bounded clean-up of the log reader: asyncio's
    # own SIGINT handling cancels every task and waits for each without a bound.
    loop, ctrl_c = asyncio.get_running_loop(), asyncio.Event()
    loop.add_signal_handler(signal.SIGINT, ctrl_c.set)
    ctrl_c_waiter = asyncio.create_task(ctrl_c.wait())
    try:
        while not task.done():
            if ctrl_c.is_set():
                raise KeyboardInterrupt
            now = time.monotonic()
            if view.events != last_event[1]:
                last_event[:] = [now, view.events]
            if view.completed:
                completed_at = completed_at or now
                if now - completed_at > DRAIN_S:
                    break
            if now > deadline:
                raise Stalled(f"the campaign did not complete within --timeout {timeout_s:.0f} s; "
                              f"waiting for: {waiting_for(view)}")
            if now - last_event[0] > stall_s:
                raise Stalled(f"nothing happened in the campaign for {now - last_event[0]:.0f} s (the limit, from "
                              f"the profile's time limits, is {stall_s:.0f} s); waiting for: {waiting_for(view)}. "
                              "See `archlab status` and .archlab/logs/; `archlab run --resume` continues.")
            display.tick()
            await asyncio.wait({task, ctrl_c_waiter}, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        ctrl_c_waiter.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=CLEANUP_S)


def stall_limit_s(profile_name: str) -> float:
    """The longest a healthy campaign stays silent: one evaluation (training reports progress, evaluation does
    not) plus a sandbox's checks and start-up, doubled for a loaded machine."""
    from lab.training.profiles import get_profile

    p = get_profile(profile_name)
    return 2 * (p.eval_time_limit_s + STALL_MARGIN_S)


def _budget_config(max_llm_cost: float | None, max_device_hours: float | None) -> dict:
    """CampaignStarted.config for the spending limits (services/archive/budget.py); {} without any."""
    limits = {k: float(v) for k, v in (("max_llm_cost_usd", max_llm_cost), ("max_device_hours", max_device_hours))
              if v}
    return {"budget": limits} if limits else {}


def _promotion_config(profile: str, verify_profile: str | None, promote_top: int | None, promote_any: bool,
                      noise_setting: dict | None = None) -> dict:
    """CampaignStarted.config for two-stage promotion (services/archive/promotion.py); {} without one. Usage errors
    (exit 2) for an unknown verification profile, for --promote-top / --promote-any without --verify-profile and for
    a verification profile equal to --profile."""
    from lab.training.profiles import PROFILES
    from services.cli.choices import one_of

    if verify_profile is not None:
        one_of(verify_profile, PROFILES, "--verify-profile", "profile")
    if verify_profile is None:
        if promote_top is not None:
            raise typer.BadParameter("--promote-top needs --verify-profile (the profile the promoted are re-trained "
                                     "at)", param_hint="--promote-top")
        if promote_any:
            raise typer.BadParameter("--promote-any needs --verify-profile", param_hint="--promote-any")
        return {}
    if verify_profile == profile:
        raise typer.BadParameter(f"the verification profile must differ from --profile ({profile})",
                                 param_hint="--verify-profile")
    return {"promotion": {"verify_profile": verify_profile, "top_k": promote_top or 1,
                          "require_significant": not promote_any,
                          "seed_noise": campaign_seed_noise(verify_profile, noise_setting)}}


CAMPAIGN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_campaign_id(campaign_id: str | None, resume: bool) -> None:
    """--campaign-id: a name that is safe in file names and topics' keys; not with --resume (which names its own)."""
    if campaign_id is None:
        return
    if resume:
        raise typer.BadParameter("--resume continues the recorded campaign: it takes no --campaign-id",
                                 param_hint="--campaign-id")
    if not CAMPAIGN_ID.fullmatch(campaign_id):
        raise typer.BadParameter(f"{campaign_id!r}: 1-64 letters, digits, '.', '_' or '-', starting with a letter "
                                 "or digit", param_hint="--campaign-id")
    if campaign_id == GLOBAL_CAMPAIGN:
        raise typer.BadParameter(f"{campaign_id!r} is the cognition base's own (no campaign): pick another",
                                 param_hint="--campaign-id")


async def campaign_in_log(bootstrap: str, campaign_id: str) -> bool:
    """Whether the log already holds a CampaignStarted of this id (two campaigns of one id would mix their events)."""
    async for record in read_log(bootstrap, [topic_for(ev.CampaignStarted)]):
        try:
            event = codec.decode(record.value)
        except codec.EventDecodeError:
            continue
        if isinstance(event, ev.CampaignStarted) and event.campaign_id == campaign_id:
            return True
    return False


def register(app: typer.Typer) -> None:
    @app.command()
    def run(budget: int = typer.Option(6, min=1, help="candidate experiments to run (baselines not counted)"),
            concurrency: Optional[int] = typer.Option(
                None, min=1, help="experiments in flight at once (default: measured on this machine, cached)"),
            engineers: Optional[int] = typer.Option(None, min=1, help="engineer processes (default: concurrency)"),
            profile: str = typer.Option("cpu-tiny", help="training profile (cpu-micro, cpu-tiny, explore-20m, ...)"),
            seed: int = typer.Option(0, help="campaign seed (sampling and the offline proposer)"),
            start_from: str = typer.Option("deltanet", "--from",
                                           help="comma-separated zoo members measured as baselines/seeds"),
            policy: str = typer.Option("topk-uniform", help="parent policy: topk-uniform | uct | fitness-proportional"),
            cold_start: int = typer.Option(2, min=0, help="candidates drawn from the baselines before the pool opens"),
            resume: bool = typer.Option(False, "--resume", help="continue the last campaign where it stopped"),
            keep_up: bool = typer.Option(False, "--keep-up", help="leave the stack running at the end"),
            timeout: float = typer.Option(6 * 3600, help="give up watching after this many seconds (exit 4)"),
            stall_after: Optional[float] = typer.Option(
                None, "--stall-after", min=1, help="stop (exit 4) when nothing happens in the campaign for this many "
                                                   "seconds (default: from the profile's time limits)"),
            max_llm_cost: Optional[float] = typer.Option(
                None, "--max-llm-cost", min=0, help="USD: no new experiment once LLM spend (in flight counted) "
                                                    "would pass it"),
            max_device_hours: Optional[float] = typer.Option(
                None, "--max-device-hours", min=0, help="device hours: no new experiment once training time "
                                                        "(in flight counted) would pass it"),
            verify_profile: Optional[str] = typer.Option(
                None, "--verify-profile", help="two-stage promotion: when exploration ends, re-train the best "
                                               "candidates at this profile (e.g. cpu-micro -> cpu-tiny)"),
            promote_top: Optional[int] = typer.Option(
                None, "--promote-top", min=1, help="with --verify-profile: how many candidates to promote, the top "
                                                   "by fitness among those significant over seed noise (default 1)"),
            promote_any: bool = typer.Option(
                False, "--promote-any", help="with --verify-profile: promote the top by fitness even when their "
                                             "score is not significant over seed noise"),
            max_params_ratio: float = typer.Option(
                DEFAULT_MAX_PARAMS_RATIO, "--max-params-ratio", min=0,
                help="size-matched search: a candidate may have at most this fraction more parameters than the "
                     "baseline (issue 24)"),
            replicate: int = typer.Option(
                2, "--replicate", min=0, help="re-train a candidate significant after its first run on this many "
                                              "held-out seeds before it counts as a winner (0: never)"),
            campaign_id: Optional[str] = typer.Option(
                None, "--campaign-id", help="name the campaign (default: c- and a random hex); an id this data "
                                            "folder's log already holds is refused. The offline proposer's draws "
                                            "depend on it, so two runs of one id and seed propose the same first "
                                            "children (bench/campaign.py pairs its arms this way)"),
            data_dir: Optional[Path] = typer.Option(None, "--data-dir")):
        """Run a discovery campaign end to end on the embedded stack (offline unless an LLM is configured).

        Exit status: 0 at least one candidate judged (trained and scored, or stopped early at a rung); 1 the
        campaign ended with none (the cause is printed: every baseline failed, every candidate failed, ...);
        2 usage error (bad option, missing data, nothing to resume); 3 preflight failed (`archlab doctor`); 4 stalled: nothing happened for
        longer than --stall-after, or --timeout passed; 130 interrupted (Ctrl-C; `--resume` continues)."""
        from services.archive.policies import POLICIES
        from services.cli import secrets, stack
        from services.cli.choices import each_one_of, one_of
        from lab.training.profiles import PROFILES, get_profile
        from lab.zoo import zoo_names

        one_of(profile, PROFILES, "--profile", "profile")     # names checked before anything starts
        check_campaign_id(campaign_id, resume)
        baselines = each_one_of(start_from, zoo_names(), "--from", "zoo member")
        one_of(policy, POLICIES, "--policy", "parent policy")
        _promotion_config(profile, verify_profile, promote_top, promote_any)   # usage errors before anything starts
        settings = stack.absolute(load_settings(data_dir))
        promotion = _promotion_config(profile, verify_profile, promote_top, promote_any, settings.judge_seed_noise)
        secrets.drop_secrets_from_environment(settings.data_dir)  # execs again without the key (secrets.py)
        from lab.training import datastage

        try:   # a profile trained on staged data runs only once that data is there (datastage.py)
            for name in (profile, verify_profile) if verify_profile else (profile,):
                datastage.require(get_profile(name), settings.data_dir)
        except datastage.DataNotStaged as e:
            console.print(f"[red]{e}[/]")
            raise typer.Exit(exits.EXIT_USAGE)
        from services.cli.doctor import preflight

        if not preflight(settings, console):    # the machine's own checks, before anything starts (doctor.py)
            raise typer.Exit(exits.EXIT_PREFLIGHT)
        if concurrency is None:   # runs x threads measured on this machine, cached (services/engineer/concurrency.py)
            from services.engineer import concurrency as mixes
            try:
                plan = mixes.plan(profile, settings.machine_cache,
                                  progress=lambda m: console.print(f"  • calibrating: {m}"))
                concurrency = plan.concurrency
                console.print(f"[bold]{plan.describe()}[/]")
            except Exception as e:  # noqa: BLE001 - the measurement is an optimisation; two runs is the old default
                concurrency = 2
                console.print(f"[yellow]concurrency calibration failed ({e}); concurrency 2[/]")
        started_here = stack.running_state(settings) is None
        if started_here:
            console.print("[bold]starting the embedded stack[/] (broker, milvus-lite, services)...")
            stack.up(settings, engineers=engineers or concurrency, progress=lambda m: console.print(f"  • {m}"))
        bootstrap = endpoints.kafka_bootstrap(settings)
        from services.cli.ui import ui_url
        console.print(f"web UI: {ui_url(settings.data_dir) or 'not running (start one: archlab ui)'}")
        cfile = campaign_file(settings)
        try:
            if resume:
                if not cfile.exists():
                    console.print(f"[red]nothing to resume[/]: no campaign recorded in {cfile}")
                    raise typer.Exit(exits.EXIT_USAGE)
                recorded = json.loads(cfile.read_text())
                campaign_id, campaign_profile = recorded["campaign_id"], recorded.get("profile", profile)
                console.print(f"resuming campaign [bold]{campaign_id}[/]")
            else:
                if campaign_id is None:
                    campaign_id = "c-" + uuid.uuid4().hex[:10]
                elif asyncio.run(campaign_in_log(bootstrap, campaign_id)):
                    console.print(f"[red]campaign {campaign_id} is already in this data folder's log[/] "
                                  f"({settings.data_dir}): pick another --campaign-id, or continue the last "
                                  "campaign with --resume")
                    raise typer.Exit(exits.EXIT_USAGE)
                started = ev.CampaignStarted(
                    campaign_id=campaign_id, experiment_id=campaign_id, producer="cli", name=campaign_id,
                    profile=profile, budget=budget, concurrency=concurrency, seed=seed, policy=policy,
                    cold_start=cold_start, baselines=baselines,
                    proposer="llm" if settings.llm_configured else "offline",
                    config=_budget_config(max_llm_cost, max_device_hours) | promotion
                    | {"max_params_ratio": max_params_ratio, "replicate": replicate},
                    seed_noise=campaign_seed_noise(profile, settings.judge_seed_noise))
                asyncio.run(publish_once(settings, started))
                campaign_profile = profile
                cfile.write_text(json.dumps({"campaign_id": campaign_id, "profile": profile, "started_at": time.time()}))
                console.print(f"started campaign [bold]{campaign_id}[/]: {budget} candidates, concurrency "
                              f"{concurrency}, profile {profile}, proposer {started.proposer}"
                              + (f"; then the top {promotion['promotion']['top_k']} promoted to {verify_profile}"
                                 if promotion else ""))
            view = CampaignView(campaign_id)
            t0 = time.monotonic()
            display = LiveDisplay(view, t0) if console.is_terminal else PlainDisplay(view, t0)
            with display:
                asyncio.run(watch(bootstrap, view, display, timeout_s=timeout,
                                  stall_s=stall_after or stall_limit_s(campaign_profile)))
            status = exit_status(finish(settings, bootstrap, campaign_id))
        except Stalled as e:
            console.print(f"stalled: {e}", markup=False, highlight=False)
            status = exits.EXIT_STALLED
        except KeyboardInterrupt:
            console.print("\n[yellow]interrupted[/]: stopping cleanly; continue with `archlab run --resume`")
            status = exits.EXIT_INTERRUPTED
        finally:
            if started_here and not keep_up:
                console.print("stopping the embedded stack...")
                stack.down(settings, progress=lambda m: None)
        raise typer.Exit(status)


def finish(settings: Settings, bootstrap: str, campaign_id: str) -> CampaignView:
    """Print the diagnosis and the leaderboard, write the report; returns the campaign's outcome folded from its
    whole log in time order. The live fold is not enough: it stops at CampaignCompleted, and topics are not
    ordered with each other, so facts on other topics may not have been read yet (a resumed campaign that had
    already ended showed no scored candidate)."""
    from services.cli.report import build_report, read_campaign_events

    events, _ = asyncio.run(read_campaign_events(bootstrap, campaign_id))
    outcome = CampaignView(campaign_id)
    for event in sorted(events, key=lambda e: e.occurred_at):
        outcome.apply(event)
    for line in diagnose(outcome):
        console.print(f"diagnosis: {line}", markup=False, highlight=False)
    from services.archive.storage import open_store
    from services.cli.archive import print_leaderboard

    with open_store(settings, read_only=True) as store:
        print_leaderboard(store, campaign_id)
    out = Path(settings.data_dir) / "reports" / f"{campaign_id}.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    build_report(events, out, title=f"archlab campaign {campaign_id}")
    console.print(f"report: [bold]{out}[/]")
    return outcome
