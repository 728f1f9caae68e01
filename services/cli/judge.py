"""`archlab rescore`: recompute every experiment's fitness from the stored results (no retraining)."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from services.cli.console import make_console
from services.common.settings import Settings

console = make_console()


def parse_weights(text: str) -> dict[str, float]:
    """`loss=1,benchmark=2,qualitative=0` -> {"loss": 1.0, ...}; unknown names are an error."""
    allowed = {"loss", "benchmark", "qualitative"}
    weights: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        if name.strip() not in allowed or not value:
            raise typer.BadParameter(f"{part!r}: expected NAME=WEIGHT with NAME in {sorted(allowed)}")
        weights[name.strip()] = float(value)
    if not any(weights.values()):
        raise typer.BadParameter("at least one weight must be non-zero")
    return weights


async def read_results_and_scores(bootstrap: str, campaign_id: str | None):
    from schemas import codec
    from schemas import events as ev
    from schemas.topics import topic_for
    from services.common.log_reader import read_log

    results, scores = [], []
    async for rec in read_log(bootstrap, [topic_for(ev.ResultsReady), topic_for(ev.ScoreAssigned)]):
        try:
            event = codec.decode(rec.value)
        except codec.EventDecodeError:
            continue
        if campaign_id and event.campaign_id != campaign_id:
            continue
        (results if isinstance(event, ev.ResultsReady) else scores).append(event)
    return results, scores


def rescore_cmd(scheme: str = typer.Option(..., help="name of the new weighting, e.g. bench-heavy"),
                weights: str = typer.Option("loss=1,benchmark=1,qualitative=1", help="NAME=WEIGHT,..."),
                baseline: Optional[str] = typer.Option(None, help="experiment id to use as the baseline for all"),
                campaign: Optional[str] = typer.Option(None, help="only this campaign"),
                dry_run: bool = typer.Option(False, "--dry-run", help="print the new ranking, publish nothing"),
                data_dir: Optional[Path] = typer.Option(None, "--data-dir")):
    """Publish new ScoreAssigned events (scheme=NAME, rescore_of=old id) for every stored result."""
    from services.common.bus import publish_once
    from services.common import endpoints
    from lab.judging.rescore import rescore

    settings = Settings()
    if data_dir is not None:
        settings = settings.model_copy(update={"data_dir": data_dir})
    results, old = asyncio.run(read_results_and_scores(endpoints.kafka_bootstrap(settings), campaign))
    if not results:
        console.print("no ResultsReady in the log" + (f" for campaign {campaign}" if campaign else ""))
        raise typer.Exit(1)
    try:
        new = rescore(results, old, parse_weights(weights), baseline_id=baseline, scheme=scheme,
                      seed_noise=settings.judge_seed_noise)
    except ValueError as e:
        console.print(f"[red]{e}[/]")
        raise typer.Exit(2)
    old_fit = {s.experiment_id: s.fitness for s in old if s.rescore_of is None}
    table = Table(title=f"ranking under {scheme} ({weights})")
    for col in ("rank", "experiment", "name", "fitness", "was", "error"):
        table.add_column(col)
    names = {r.experiment_id: r.name for r in results}
    ranked = sorted(new, key=lambda s: (s.fitness is None, -(s.fitness or 0.0), s.experiment_id))
    for i, s in enumerate(ranked, 1):
        was = old_fit.get(s.experiment_id)
        table.add_row(str(i), s.experiment_id[:12], names.get(s.experiment_id, ""),
                      "" if s.fitness is None else f"{s.fitness:.4f}", "" if was is None else f"{was:.4f}",
                      s.error or "")
    console.print(table)
    if not dry_run:
        asyncio.run(publish_once(settings, *new))
        console.print(f"published {len(new)} ScoreAssigned event(s) with scheme {scheme!r}")


def register(app: typer.Typer) -> None:
    app.command("rescore")(rescore_cmd)
