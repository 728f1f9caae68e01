"""Audit commands over the archive's read model: leaderboard, show, lineage, export, replay,
import-asi-arch. They read the database under the data directory, opened read-only (the archive
service is its only writer); replay and import talk to Kafka.
"""
from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table
from rich.tree import Tree
from rich.markup import escape

from lab.judging.size import text as size_text
from services.cli.console import make_console
from services.common.settings import load_settings

console = make_console()

DataDir = typer.Option(None, "--data-dir", help="State directory (default: $ARCHLAB_DATA_DIR or ./.archlab)")


def _open(data_dir: Optional[Path]):
    from services.archive.storage import open_store

    try:
        return open_store(load_settings(data_dir), read_only=True)
    except FileNotFoundError as e:
        console.print(f"[red]{e}[/] (start the stack with `archlab up`, or pass --data-dir)")
        raise typer.Exit(1)


def _num(x, digits: int = 4) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def leaderboard(campaign: Optional[str] = typer.Option(None, help="only this campaign (default: all)"),
                limit: int = typer.Option(50, help="rows"), data_dir: Optional[Path] = DataDir):
    """Experiments ranked by fitness, with its components, loss, benchmark and parent."""
    with _open(data_dir) as store:
        print_leaderboard(store, campaign, limit)


def print_leaderboard(store, campaign: Optional[str] = None, limit: int = 50) -> None:
    """The leaderboard as a rich table (also printed at the end of `archlab run`)."""
    from services.archive import queries

    rows = queries.leaderboard(store, campaign, limit)
    promoted = any(r["verify_experiment_id"] for r in rows)
    table = Table(title=f"leaderboard{' of ' + escape(campaign) if campaign else ''}"
                        + (" (exploration stage)" if promoted else ""))
    for col, justify in (("rank", "right"), ("experiment", "left"), ("name", "left"), ("fitness", "right"),
                         ("loss score", "right"), ("bench score", "right"), ("qualitative", "right"),
                         ("loss", "right"), ("benchmark", "right"), ("params (x base)", "right"),
                         ("FLOPs/token (x base)", "right"), ("replication", "left"), ("parent", "left")):
        table.add_column(col, justify=justify)
    if promoted:
        table.add_column("verify fitness", justify="right")
    for r in rows:
        cells = [str(r["rank"]), escape(r["experiment_id"]), escape(r["name"] or ""), _num(r["fitness"]),
                 _num(r["loss_score"]), _num(r["benchmark_score"]), _num(r["qualitative"]),
                 _num(r["final_loss"]), _num(r["benchmark"]), size_text(r["params"], r["params_ratio"]),
                 size_text(r["flops_per_token"], r["flops_ratio"]), _replication(r),
                 escape(r["parent_name"] or r["parent_id"] or "")]
        if promoted:
            cells.append("" if not r["verify_experiment_id"] else
                         _num(r["verify_fitness"]) if r["verify_fitness"] is not None else r["verify_status"] or "")
        table.add_row(*cells)
    console.print(table if rows else "no scored experiments yet")
    campaigns = [campaign] if campaign else sorted(c["campaign_id"] for c in store.campaigns())
    for cid in campaigns:
        print_two_stage(store, cid)


def _replication(r: dict) -> str:
    """The verdict on held-out seeds and the replicated fitness, or nothing for a candidate never replicated."""
    if not r.get("replication"):
        return ""
    return f"{r['replication']} ({_num(r['replicated_fitness'])})"


def print_two_stage(store, campaign: str) -> None:
    """The verification stage of a two-stage campaign beside its exploration stage (nothing without promotions)."""
    from services.archive import queries

    view = queries.two_stage(store, campaign)
    if view is None:
        return
    table = Table(title=f"two-stage promotion of {escape(campaign)}: {escape(view['explore_profile'] or '?')} "
                        f"-> {escape(view['verify_profile'] or '?')}")
    for col, justify in (("promoted", "right"), ("explored", "left"), ("name", "left"),
                         ("explore rank", "right"), ("explore fitness", "right"), ("significant", "left"),
                         ("verification", "left"), ("status", "left"), ("verify fitness", "right"),
                         ("verify rank", "right"), ("verify loss", "right"), ("verify benchmark", "right")):
        table.add_column(col, justify=justify)
    for r in view["rows"]:
        table.add_row(str(r["promotion_rank"]), escape(r["source_experiment_id"]), escape(r["name"] or ""),
                      str(r["explore_rank"] or "—"), _num(r["explore_fitness"]), _yes(r["explore_significant"]),
                      escape(r["verify_experiment_id"]), r["verify_status"] or "", _num(r["verify_fitness"]),
                      str(r.get("verify_rank") or "—"), _num(r["verify_loss"]), _num(r["verify_benchmark"]))
    console.print(table)
    for b in view["baselines"]:
        console.print(f"baseline at {escape(view['verify_profile'] or '?')}: {escape(b['experiment_id'])} "
                      f"{escape(b['name'] or '')} ({b['status']}), loss {_num(b['final_loss'])}, benchmark "
                      f"{_num(b['benchmark'])}")
    for r in view["rows"]:
        console.print(f"promoted {escape(r['source_experiment_id'])}: {escape(r['why'] or '')}")
    tau = view["tau_b"]
    console.print(f"rank agreement between the stages (Kendall tau-b over {view['pairs']} verified): "
                  + (_num(tau, 3) if tau is not None else "— (needs two verified runs)"))
    if view["completed"]:
        console.print(f"campaign completed: {escape(view['completed'])}")


def _yes(b) -> str:
    return "—" if b is None else ("yes" if b else "no")


def show(experiment: str = typer.Argument(..., help="experiment id"),
         as_json: bool = typer.Option(False, "--json", help="print the full record as JSON"),
         data_dir: Optional[Path] = DataDir):
    """Everything about one experiment: state, results, score, insights, every attempt and rejection."""
    from services.archive import queries

    with _open(data_dir) as store:
        rec = queries.show(store, experiment)
    if rec is None:
        console.print(f"[red]no experiment {escape(experiment)!s}[/]")
        raise typer.Exit(1)
    if as_json:
        print(json.dumps(rec, indent=2, ensure_ascii=False, sort_keys=True))
        return
    d = rec["experiment"]
    results, score, insights = d.get("results") or {}, d.get("score") or {}, d.get("insights") or {}
    console.print(f"[bold]{escape(d['experiment_id'])}[/] {escape(d.get('name') or '')}  "
                  f"status [bold]{d.get('status')}[/]  role {d.get('role')}  "
                  f"campaign {escape(d.get('campaign_id') or '')}")
    console.print(f"parent {escape(d.get('parent_id') or d.get('zoo') or '—')}  references "
                  f"{escape(', '.join(d.get('reference_ids') or []) or '—')}  children {len(rec['children'])}")
    console.print(f"fitness {_num(d.get('fitness'))} (loss {_num(score.get('loss_score'))}, benchmark "
                  f"{_num(score.get('benchmark_score'))}, qualitative {_num(score.get('qualitative'))}, "
                  f"scheme {score.get('scheme') or '—'})  final loss {_num(results.get('final_loss'))}  "
                  f"benchmark {_num(results.get('benchmark'))}")
    size = rec.get("size") or {}
    console.print(f"params {size_text(size.get('params'), size.get('params_ratio'))}  forward FLOPs/token "
                  f"{size_text(size.get('flops_per_token'), size.get('flops_ratio'))}  (x the baseline "
                  f"{escape(size.get('baseline_experiment_id') or '—')}: {size_text(size.get('baseline_params'), None)} "
                  f"params, {size_text(size.get('baseline_flops_per_token'), None)} FLOPs/token)")
    replication = d.get("replication")
    if replication:
        console.print(f"[bold]replication[/] {replication.get('verdict')}: fitness {_num(replication.get('fitness'))} "
                      f"on the first seed, {_num(replication.get('replicated_fitness'))} on held-out seeds "
                      f"{replication.get('seeds')}; {escape(replication.get('reason') or '')}")
    if d.get("motivation"):
        console.print(f"[bold]motivation[/] {escape(d['motivation'])}")
    if d.get("abandoned"):
        console.print(f"[red]abandoned[/]: {escape(str(d['abandoned'].get('reason')))}")
    if insights:
        console.print(f"[bold]insights[/] {escape(insights.get('synthesis') or insights.get('experience') or '')}")
    stages = rec.get("stages")
    if stages:
        promo, x, v = stages.get("promotion") or {}, stages.get("explore") or {}, stages.get("verify") or {}
        if promo:
            console.print(f"[bold]promoted[/] {escape(x.get('experiment_id') or promo.get('source_experiment_id'))}"
                          f" -> {escape(v.get('experiment_id') or '')} at {escape(promo.get('verify_profile') or '')}: "
                          f"{escape(promo.get('why') or '')}")
        for label, b in (("exploration", x), ("verification", v)):
            if b:
                console.print(f"  {label:<12} {escape(b['experiment_id'])} at {escape(b.get('profile') or '?')}: "
                              f"status {b.get('status')}, fitness {_num(b.get('fitness'))}, significant "
                              f"{_yes(b.get('significant'))}, loss {_num(b.get('final_loss'))}, benchmark "
                              f"{_num(b.get('benchmark'))}")
    attempts = Table(title="attempts")
    for col in ("time", "kind", "attempt", "revision", "detail"):
        attempts.add_column(col)
    for a in rec["attempts"]:
        detail = {"proposal": lambda: f"{a.get('name')} ({a.get('origin')})",
                  "rejected": lambda: f"{a.get('reason')}: {a.get('feedback')}",
                  "failure": lambda: f"{a.get('failure_kind')}: {a.get('error')}"}[a["kind"]]()
        attempts.add_row(a["occurred_at"], a["kind"], str(a.get("attempt", "")), str(a.get("revision", "")),
                         escape(detail[:160]))
    console.print(attempts)
    from services.cli.llm_audit import print_llm_requests

    print_llm_requests(console, rec, load_settings(data_dir).data_dir)
    scores = Table(title="scores")
    for col in ("time", "scheme", "fitness", "loss", "benchmark", "qualitative", "note"):
        scores.add_column(col)
    for s in rec["scores"]:
        scores.add_row(s["occurred_at"], escape(s.get("scheme") or ""), _num(s.get("fitness")),
                       _num(s.get("loss_score")), _num(s.get("benchmark_score")), _num(s.get("qualitative")),
                       escape((s.get("error") or s.get("note") or "")[:80]))
    console.print(scores)


def lineage(experiment: str = typer.Argument(..., help="experiment id"),
            depth: int = typer.Option(2, help="generations of descendants to show"),
            data_dir: Optional[Path] = DataDir):
    """Ancestry of an experiment (and its descendants) as a tree."""
    from services.archive import queries

    def label(node: dict) -> str:
        if node.get("missing"):
            return f"[dim]{escape(node['experiment_id'])} (not in the archive)[/]"
        name = node.get("name") or node.get("zoo") or ""
        score = (f"fitness {_num(node['fitness'])}" if node.get("fitness") is not None or node.get("source_fitness")
                 is None else f"source score {_num(node['source_fitness'])}")
        return f"{escape(node['experiment_id'])} {escape(name)} {score} ({node.get('status')})"

    with _open(data_dir) as store:
        chain = queries.ancestry(store, experiment)
        if not chain or chain[-1].get("missing"):
            console.print(f"[red]no experiment {escape(experiment)}[/]")
            raise typer.Exit(1)
        below = queries.descendants(store, experiment, depth)
    tree = Tree(label(chain[0]))
    node = tree
    for anc in chain[1:]:
        node = node.add(label(anc))
    node.label = f"[bold]{node.label}[/]"

    def add(parent: Tree, kids: list[dict]) -> None:
        for k in kids:
            add(parent.add(label(k)), k["children"])

    add(node, below)
    console.print(tree)


def export(fmt: str = typer.Option("jsonl", "--format", help="jsonl | csv"),
           out: Path = typer.Option(..., "--out", help="output file"),
           campaign: Optional[str] = typer.Option(None, help="only this campaign"),
           data_dir: Optional[Path] = DataDir):
    """Export every experiment (jsonl: full records with attempts and scores; csv: one row each)."""
    from services.archive import queries
    from services.cli.choices import one_of

    one_of(fmt, ("jsonl", "csv"), "--format", "format")
    with _open(data_dir) as store:
        n = queries.export(store, out, fmt, campaign)
    console.print(f"wrote {n} experiments to {out}")


def replay(shuffle_seed: Optional[int] = typer.Option(None, help="replay in a shuffled cross-topic order"),
           rescore: Optional[str] = typer.Option(None, "--rescore", help="counterfactual: fitness weights "
                                                  "NAME=W,... (loss, benchmark, qualitative)"),
           policy: Optional[str] = typer.Option(None, "--policy", help="counterfactual: parent policy "
                                                 "(topk-uniform | uct | fitness-proportional)"),
           campaign: Optional[str] = typer.Option(None, help="campaign of the counterfactual (default: latest)"),
           out: Optional[Path] = typer.Option(None, help="the fresh database "
                                              "(default: DATA_DIR/replays/<time>.sqlite)"),
           data_dir: Optional[Path] = DataDir):
    """Rebuild the read model from offset 0 of every topic into a fresh SQLite file and compare digests.

    Publishes nothing and calls no LLM or GPU."""
    from services.archive.policies import POLICIES
    from services.archive.projection import digest
    from services.archive.replay import interleave, read_log_events, replay_events
    from services.archive.storage import SQLiteStore, open_store
    from services.cli.choices import one_of
    from services.cli.judge import parse_weights
    from services.common import endpoints

    if policy is not None:   # the counterfactual's inputs are checked before the log is read
        one_of(policy, POLICIES, "--policy", "parent policy")
    try:
        weights = parse_weights(rescore) if rescore is not None else None
    except (typer.BadParameter, ValueError) as e:  # an unknown weight name, or a value that is no number
        raise typer.BadParameter(str(e), param_hint="--rescore") from None
    settings = load_settings(data_dir)
    bootstrap = endpoints.kafka_bootstrap(settings)
    t = time.perf_counter()
    events, bad = asyncio.run(read_log_events(bootstrap))
    if rescore is not None or policy is not None:
        print_counterfactual(events, campaign, weights, policy)
        return
    read_s = time.perf_counter() - t
    if shuffle_seed is not None:
        events = interleave(events, shuffle_seed)
    out = out or Path(settings.data_dir) / "replays" / f"replay-{time.strftime('%Y%m%d-%H%M%S')}.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(str(out) + suffix).unlink(missing_ok=True)
    with SQLiteStore(out, bulk=True) as fresh:
        stats = replay_events(events, fresh)
        replayed = digest(fresh)
    console.print(f"read {len(events):,} events in {read_s:.1f}s ({bad} undecodable); applied {stats.applied:,}, "
                  f"duplicates {stats.duplicates:,}; {stats.events_per_s:,.0f} events/s into {out}")
    console.print(f"replay digest {replayed}")
    with SQLiteStore(out, read_only=True) as rebuilt:   # both stages of a two-stage campaign, as the log rebuilt them
        for camp in sorted(c["campaign_id"] for c in rebuilt.campaigns()):
            print_two_stage(rebuilt, camp)
    wait_for_archive(bootstrap)
    try:
        with open_store(settings, read_only=True) as live_store:
            live = digest(live_store)
    except FileNotFoundError:
        console.print("no live database to compare with")
        return
    console.print(f"live   digest {live}")
    if live == replayed:
        console.print("[green]digests equal[/]: the database is exactly the projection of the log")
    else:
        console.print("[red]digests differ[/] (is the archive still catching up? compare `archlab status` lag)")
        raise typer.Exit(1)


def wait_for_archive(bootstrap: str, timeout: float = 60.0) -> None:
    """Let the live archive finish what is in the log (its consumer-group lag reaches 0) before its
    digest is compared with the replay's: right after a campaign, a few events may still be in flight."""
    from services.cli.stack import group_lag

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if asyncio.run(group_lag(bootstrap)).get("archive", 0) == 0:
                time.sleep(1.0)  # the last event's projection is committed after its offset
                return
        except Exception:  # noqa: BLE001 - no group info: compare anyway
            return
        time.sleep(0.5)
    console.print("[yellow]the archive still lags behind the log; comparing anyway[/]")


def print_counterfactual(events, campaign: Optional[str], weights: Optional[dict[str, float]],
                         policy: Optional[str]) -> None:
    """`replay --rescore/--policy`: re-run scoring and parent selection of a finished campaign from the log
    (`weights` parsed and `policy` checked by the caller)."""
    from schemas import events as ev
    from services.archive.counterfactual import counterfactual

    starts = sorted((e for e in events if isinstance(e, ev.CampaignStarted)), key=lambda e: e.occurred_at)
    if not starts:
        console.print("[red]no campaign in the log[/]")
        raise typer.Exit(1)
    campaign = campaign or starts[-1].campaign_id
    try:
        cf = counterfactual(events, campaign, weights=weights, policy=policy)
    except ValueError as e:
        console.print(f"[red]{escape(str(e))}[/]")
        raise typer.Exit(2)
    table = Table(title=f"counterfactual leaderboard of {escape(campaign)}: scheme {cf.scheme}, policy {cf.policy}")
    for col in ("rank", "was", "move", "experiment", "name", "fitness now", "fitness was"):
        table.add_column(col)
    before, after = dict(cf.original), dict(cf.counterfactual)
    for exp_id, was, now in cf.rank_changes():
        move = "" if was is None or now is None else (f"[green]+{was - now}[/]" if was > now else
                                                        f"[red]{was - now}[/]" if now > was else "=")
        table.add_row(str(now or "—"), str(was or "—"), move, escape(exp_id), escape(cf.names.get(exp_id, "")),
                      _num(after.get(exp_id)), _num(before.get(exp_id)))
    console.print(table)
    tau = cf.kendall_tau()
    console.print(f"Kendall tau between the leaderboards: {_num(tau, 3)}; "
                  f"top-1 {'unchanged' if cf.original[:1] == cf.counterfactual[:1] else 'changed'}")
    if cf.decisions:
        changed = [d for d in cf.decisions if d.actual_parent != d.counterfactual_parent]
        console.print(f"parent decisions: {len(cf.decisions)} replayed, {len(changed)} would differ "
                      f"(agreement {cf.agreement:.0%})")
        for d in changed[:20]:
            console.print(f"  {escape(d.experiment_id)}: parent {escape(cf.names.get(d.actual_parent, d.actual_parent))}"
                          f" -> {escape(cf.names.get(d.counterfactual_parent or '', d.counterfactual_parent or '—'))}")


def import_asi_arch(file: Path = typer.Argument(..., exists=True, dir_okay=False, help="106.json"),
                    campaign: str = typer.Option("asi-arch", help="campaign id of the imported experiments"),
                    dry_run: bool = typer.Option(False, help="print what would be published"),
                    data_dir: Optional[Path] = DataDir):
    """Publish the published ASI-Arch programs as ExperimentImported events (with their lineage)."""
    from services.archive.importer import imported_events, load_records
    from services.common import endpoints
    from services.common.bus import ensure_topics, publish_once

    events = imported_events(load_records(file), campaign)
    with_parent = sum(1 for e in events if e.parent_id in {x.experiment_id for x in events})
    if dry_run:
        console.print(f"{len(events)} experiments, {with_parent} with their parent among them")
        return
    settings = load_settings(data_dir)

    async def publish() -> None:
        await ensure_topics(endpoints.kafka_bootstrap(settings), settings.partitions, settings.replication_factor)
        await publish_once(settings, *events, client_id="archlab-import")

    asyncio.run(publish())
    console.print(f"published {len(events)} ExperimentImported events ({with_parent} with their parent among them)")


def register(app: typer.Typer) -> None:
    app.command()(leaderboard)
    app.command()(show)
    app.command()(lineage)
    app.command()(export)
    app.command()(replay)
    app.command("import-asi-arch")(import_asi_arch)
