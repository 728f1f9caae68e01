"""`archlab zoo list | bench` and `archlab evaluate FILE`: the architecture zoo, the validity of the
CPU proxy, and a researcher's own layer file judged like a proposal (no campaign, no Kafka)."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from services.cli.console import make_console
from services.common.settings import load_settings

console = make_console()
SHORT = {"mqar_recall/acc": "recall", "mqar_mc/acc": "mc", "benchmark": "benchmark", "final_loss": "loss",
         "bytes_bpb/bits_per_byte": "bpb", "stdlib_mc/acc": "text mc"}
zoo_app = typer.Typer(help="The architecture zoo: classic token mixers as baselines and seeds.",
                      no_args_is_help=True)
DataDir = typer.Option(None, "--data-dir", help="State directory (default: $ARCHLAB_DATA_DIR or ./.archlab)")


def _names(csv: str | None) -> list[str]:
    return [n.strip() for n in (csv or "").split(",") if n.strip()]


def _fmt(x: float | None, digits: int = 4) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


# ---------------------------------------------------------------- zoo list

@zoo_app.command("list")
def list_cmd():
    """The zoo's members: core op, mechanisms, citation."""
    from lab.zoo import ZOO

    table = Table(title="architecture zoo")
    for col in ("name", "core op", "quadratic", "mechanisms", "citation"):
        table.add_column(col, overflow="fold")
    for m in ZOO.values():
        table.add_row(m.name, m.core_op, "yes" if m.quadratic else "", ", ".join(m.mechanisms), m.citation)
    console.print(table)


# ---------------------------------------------------------------- zoo bench

def print_validity(report) -> None:
    """Tables of a ValidityReport: per profile, members (best first) x metrics as mean +- spread."""
    from lab.training.battery import TASKS as BATTERY_TASKS
    from lab.tools.validity import HIGHER_IS_BETTER, JUDGE_METRICS

    for prof, members in report.summary.items():
        metric = report.rankings[prof]["metric"]
        battery = sorted({k for s in members.values() for k in s if k.split("/")[0] in BATTERY_TASKS},
                         key=lambda k: BATTERY_TASKS.index(k.split("/")[0]))
        metrics = [m for m in (metric, "mqar_mc/acc", "benchmark", "final_loss", "bytes_bpb/bits_per_byte",
                               "stdlib_mc/acc", *battery) if any(m in s for s in members.values())]
        metrics = list(dict.fromkeys(metrics))
        seeds = sorted({r.seed for r in report.records if r.profile == prof and r.error is None})
        table = Table(title=f"{prof}: ranked by {metric} ({'higher' if HIGHER_IS_BETTER.get(metric, True) else 'lower'}"
                            f" is better), seeds {seeds}; mean ± half-range [seed values]")
        table.add_column("rank")
        table.add_column("member")
        for m in metrics:
            table.add_column(SHORT.get(m, m), justify="right")
        for rank, member in enumerate(report.rankings[prof]["order"], 1):
            s = members[member]
            table.add_row(str(rank), member, *[
                f"{s[m].mean:.3f}±{s[m].spread:.3f} [{' '.join(f'{v:.3f}' for v in s[m].seeds)}]" if m in s else ""
                for m in metrics])
        console.print(table)
        tau = report.tau.get(prof)
        if tau and tau["tau_b"] is not None:
            console.print(f"Kendall tau-b vs the literature's recall order ({', '.join(tau['members'])}): "
                          f"[bold]{tau['tau_b']:+.3f}[/]")
        noise = report.noise.get(prof, {})
        if noise.get("pooled"):
            shown = [m for m in metrics if m in noise["pooled"]]
            t = Table(title=f"{prof}: seed noise = mean |difference| between seeds")
            t.add_column("member")
            for m in shown:
                t.add_column(SHORT.get(m, m), justify="right")
            for member, v in noise["per_member"].items():
                t.add_row(member, *[_fmt(v.get(m)) for m in shown])
            t.add_row("[bold]pooled (mean)[/]", *[_fmt(noise["pooled"][m]) for m in shown])
            t.add_row("median", *[_fmt(noise["median"][m]) for m in shown])
            console.print(t)
    failed = [r for r in report.records if r.error]
    for r in failed:
        console.print(f"[red]failed[/] {r.member} seed {r.seed} ({r.profile}): {r.error}")
    for prof, room in (report.headroom or {}).items():
        console.print(f"{prof} headroom: {room['baseline']} benchmark {room['baseline_benchmark']:.3f}; "
                      f"{room['tasks_with_gap']}/{room['tasks']} tasks leave it >= {room['gap']} below the best member ("
                      + ", ".join(f"{t.split('/')[0]} {v['gap']:+.3f} {v['best_member']}"
                                  for t, v in room["per_task"].items())
                      + f"); best {room['best_member']} by {room['best_margin']:+.3f} = "
                      + (f"{room['best_margin_in_noise']:.1f}x" if room["best_margin_in_noise"] else "?x")
                      + f" the baseline's seed noise {_fmt(room['baseline_noise']['benchmark'])}; seconds per run: "
                      + ", ".join(f"{m} {v:.0f}" for m, v in sorted(room["seconds_per_run"].items()))
                      + ("; CPU seconds per run: " + ", ".join(
                          f"{m} {v:.0f}" for m, v in sorted(room["cpu_seconds_per_run"].items()))
                         if room.get("cpu_seconds_per_run") else ""))
        if room.get("fitness"):
            console.print(f"{prof} fitness vs {room['baseline']} (the judge's formula, scales = 10 x its seed noise): "
                          + ", ".join(f"{m} {v['fitness']:.3f}" for m, v in
                                      sorted(room["fitness"].items(), key=lambda kv: -kv[1]["fitness"])))
    if report.judge_seed_noise:
        console.print(f"judge setting ({report.noise_pool} of the seed noise of "
                      + ", ".join(f"{k}={v}" for k, v in JUDGE_METRICS.items()) + "):\n"
                      f"  ARCHLAB_JUDGE_SEED_NOISE='{json.dumps(report.judge_seed_noise)}'")
    console.print(f"wall time {report.wall_s:.0f} s")


@zoo_app.command("bench")
def bench(members: str = typer.Option(None, "--members", help="comma-separated zoo members (default: all)"),
          seeds: str = typer.Option("0,1,2", "--seeds", help="comma-separated seeds (two or more give the seed noise)"),
          steps: Optional[int] = typer.Option(None, "--steps", help="training steps (default: the profile's); "
                                              "an override is reported as profile+steps=N and not used by the judge"),
          profile: str = typer.Option("cpu-tiny", "--profile",
                                      help="comma-separated profiles, e.g. cpu-tiny (the battery), cpu-mqar (MQAR "
                                           "recall alone) or cpu-bytes (the byte-level LM alone)"),
          jobs: int = typer.Option(1, "--jobs", min=1, help="runs trained in parallel (worker processes)"),
          threads: int = typer.Option(1, "--threads", min=1, help="torch threads per run"),
          json_out: Optional[Path] = typer.Option(None, "--json-out", help="write the whole report as JSON here"),
          cache: bool = typer.Option(True, "--cache/--no-cache", help="reuse and store results in data_dir/zoo-cache"),
          quiet: bool = typer.Option(False, "--quiet", help="no per-step progress lines"),
          noise_pool: str = typer.Option("baseline", "--noise-pool", help="the judge's seed noise: the baseline's "
                                         "own (deltanet), or pooled over members: mean (conservative) or median"),
          data_dir: Optional[Path] = DataDir):
    """Validity of the proxy: train zoo members x seeds, rank them, Kendall tau vs the literature, seed noise."""
    from lab.tools.validity import NOISE_POOLS, ZooCache, run_validity
    from lab.training.profiles import PROFILES
    from lab.zoo import zoo_names
    from services.cli.choices import each_one_of, one_of

    names = each_one_of(members, zoo_names(), "--members", "zoo member") or zoo_names()
    profiles = each_one_of(profile, PROFILES, "--profile", "profile")
    one_of(noise_pool, NOISE_POOLS, "--noise-pool", "noise pool")
    seed_list = [int(s) for s in _names(seeds)]
    store = ZooCache(load_settings(data_dir).data_dir / "zoo-cache") if cache else None
    console.print(f"training {len(names)} member(s) x {len(seed_list)} seed(s) on {profile}"
                  + (f", {steps} steps" if steps else "") + f", {jobs} in parallel")

    def on_record(rec, done, total):
        what = "failed: " + rec.error if rec.error else ", ".join(
            f"{k} {rec.values[k]:.3f}" for k in ("mqar_recall/acc", "bytes_bpb/bits_per_byte", "benchmark", "final_loss")
            if k in rec.values)
        console.print(f"[{done}/{total}] {rec.member} seed {rec.seed} {rec.profile}"
                      f"{' (cached)' if rec.cached else f' {rec.train_s + rec.eval_s:.0f} s'}: {what}")

    report = run_validity(names, seed_list, profiles, steps=steps, jobs=jobs, threads=threads,
                          cache=store, verbose=not quiet, noise_pool=noise_pool, on_record=on_record)
    print_validity(report)
    if json_out is not None:
        json_out.write_text(json.dumps(report.to_json(), indent=1))
        console.print(f"report written to {json_out}")


# ---------------------------------------------------------------- evaluate

def print_evaluation(result) -> None:
    if result.rejected is not None:
        r = result.rejected
        console.print(f"[red bold]rejected by the sanity checks: {r['reason']}[/]\n{r['feedback']}")
        evidence = {k: v for k, v in (r.get("evidence") or {}).items() if k != "traceback"}
        if evidence:
            console.print("evidence: " + json.dumps(evidence, default=str))
        if (r.get("evidence") or {}).get("traceback"):
            console.print(r["evidence"]["traceback"])
        return
    table = Table(title=f"{result.path} on {result.profile}, seed {result.seed}; fitness vs {result.baseline} "
                        "(judge's formula, no qualitative component)")
    for col in ("name", "source", "recall", "mc", "benchmark", "final loss", "params", "train s", "loss score",
                "bench score", "fitness", "significant"):
        table.add_column(col, justify="left" if col in ("name", "source") else "right")
    for r in result.rows:
        if not r.ok:
            f = r.failure or {}
            table.add_row(r.name, r.source, f"[red]failed: {f.get('kind')}[/]", "", "", "", "", "", "", "", "", "")
            continue
        table.add_row(r.name, r.source, _fmt(r.metrics.get("mqar_recall/acc"), 3), _fmt(r.metrics.get("mqar_mc/acc"), 3),
                      _fmt(r.benchmark, 3), _fmt(r.final_loss), str(r.params or ""), _fmt(r.train_s, 0),
                      _fmt(r.loss_score, 3), _fmt(r.benchmark_score, 3), _fmt(r.fitness, 3),
                      "" if r.significant is None else ("yes" if r.significant else "no"))
    console.print(table)
    for r in result.rows:
        if not r.ok:
            f = r.failure or {}
            console.print(f"[red]{r.name}: training failed ({f.get('kind')}): {f.get('error')}[/]")
            if f.get("evidence"):
                console.print("evidence: " + json.dumps(f["evidence"], default=str))
            if f.get("traceback"):
                console.print(f["traceback"][-1500:])
        elif r.note:
            console.print(f"{r.name}: {r.note}")


def evaluate_cmd(file: Path = typer.Argument(..., exists=True, dir_okay=False, help="a layer program (.py)"),
                 profile: str = typer.Option("cpu-tiny", "--profile", help="cpu-micro (seconds) or cpu-tiny "
                                             "(minutes; the proxy that ranks like the literature)"),
                 seed: int = typer.Option(0, "--seed"),
                 compare: str = typer.Option("deltanet", "--compare", help="comma-separated zoo members to list "
                                             "next to the file"),
                 baseline: str = typer.Option("deltanet", "--baseline", help="the zoo member fitness is relative to"),
                 steps: Optional[int] = typer.Option(None, "--steps", help="override the profile's training steps"),
                 cache: bool = typer.Option(True, "--cache/--no-cache", help="reuse zoo results in data_dir/zoo-cache"),
                 json_out: Optional[Path] = typer.Option(None, "--json-out", help="write the result as JSON here"),
                 data_dir: Optional[Path] = DataDir):
    """Run a layer file through the lab's sanity checks, sandboxed training and evaluation, next to zoo members."""
    from dataclasses import asdict

    from lab.tools.evaluate_file import evaluate_file
    from lab.training.profiles import PROFILES
    from lab.zoo import zoo_names
    from services.cli.choices import each_one_of, one_of

    one_of(profile, PROFILES, "--profile", "profile")
    compared = each_one_of(compare, zoo_names(), "--compare", "zoo member")
    one_of(baseline, zoo_names(), "--baseline", "zoo member")
    settings = load_settings(data_dir)

    def progress(name: str, update: dict) -> None:
        if "stage" in update:
            console.print(f"[green]•[/] {name}: {update['stage']}")
        elif update.get("step") and update.get("total_steps") and (
                update["step"] % max(10, update["total_steps"] // 10) == 0 or update["step"] == update["total_steps"]):
            console.print(f"  {name} step {update['step']}/{update['total_steps']} loss {update.get('loss', 0):.3f}")

    result = evaluate_file(file, profile=profile, seed=seed, compare=compared, baseline=baseline,
                           data_dir=settings.data_dir, steps=steps, seed_noise=settings.judge_seed_noise,
                           use_cache=cache, progress=progress)
    print_evaluation(result)
    if json_out is not None:
        json_out.write_text(json.dumps(asdict(result), indent=1, default=str))
    if not result.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(zoo_app, name="zoo")
    app.command("evaluate")(evaluate_cmd)
