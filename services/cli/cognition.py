"""`archlab cognition ...`: import a corpus, add a paper, publish the seed, search, count.

Writes go through CognitionIngested events by default (the cognition service upserts them, and
a replay rebuilds the base); `--direct` upserts into the vector store from this process instead
(no broker needed: tools, offline setups, benchmarks).
"""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from services.cli.console import make_console
from services.common.bus import publish_once
from services.common.settings import Settings, load_settings

console = make_console()
cognition_app = typer.Typer(help="The cognition base: papers' design knowledge, searched by shortcomings.",
                            no_args_is_help=True)
DataDir = typer.Option(None, "--data-dir", help="State directory (default: $ARCHLAB_DATA_DIR or ./.archlab)")
Direct = typer.Option(False, "--direct", help="upsert into the vector store here instead of publishing events")


def ingest(settings: Settings, entries, *, direct: bool, usage=None) -> None:
    """Publish CognitionIngested events for `entries`, or upsert them directly."""
    from services.common.cognition_model import to_event

    if not entries:
        return
    if direct:
        from services.common.cognition_base import CognitionBase

        base = CognitionBase.from_settings(settings)
        base.upsert(list(entries))
        console.print(f"upserted {len(entries)} cognition(s); the base holds {base.count()}")
    else:
        events = [to_event(e, producer="cli", usage=usage) for e in entries]
        asyncio.run(publish_once(settings, *events))
        console.print(f"published {len(events)} CognitionIngested event(s)")


@cognition_app.command("import")
def import_corpus(directory: Path = typer.Argument(..., help="a directory in the ASI-Arch cognition format"),
                  direct: bool = Direct, data_dir: Optional[Path] = DataDir):
    """Import every valid file of a corpus directory; malformed files are reported by name and skipped."""
    from services.cognition.corpus import CorpusError, parse_corpus_dir

    try:
        entries, errors = parse_corpus_dir(directory)
    except CorpusError as e:
        console.print(f"[red]{e}[/]")
        raise typer.Exit(2)
    for err in errors:
        console.print(f"[yellow]skipped[/] {err}")
    files = len({e.cognition_id.split('#')[0] for e in entries})
    console.print(f"{len(entries)} cognition(s) from {files} file(s); {len(errors)} file(s) skipped")
    ingest(load_settings(data_dir), entries, direct=direct)


@cognition_app.command("add")
def add_paper(paper: Path = typer.Argument(..., help="a paper as .txt/.md (or .pdf with pypdf installed)"),
              direct: bool = Direct, data_dir: Optional[Path] = DataDir):
    """Extract 1-3 cognitions from a paper with the LLM (role "analyst")."""
    from services.cognition.paper import PaperError, cognitions_from_paper
    from services.common.llm import LLMClient, LLMError

    settings = load_settings(data_dir)
    if not settings.llm_configured:
        console.print("[red]no LLM configured[/]: set ARCHLAB_LLM_BASE_URL / ARCHLAB_LLM_API_KEY to extract cognitions")
        raise typer.Exit(2)
    try:
        entries, usage = cognitions_from_paper(paper, LLMClient(settings))
    except (PaperError, LLMError) as e:
        console.print(f"[red]{e}[/]")
        raise typer.Exit(1)
    for e in entries:
        console.print(f"[bold]{e.cognition_id}[/] {e.title}\n  when: {e.trigger_patterns[:200]}")
    ingest(settings, entries, direct=direct, usage=usage)


@cognition_app.command("seed")
def seed(direct: bool = Direct, data_dir: Optional[Path] = DataDir):
    """Publish (or upsert) archlab's own seed cognitions."""
    from services.cognition.seed import load_seed

    ingest(load_settings(data_dir), load_seed(), direct=direct)


@cognition_app.command("search")
def search(query: str = typer.Argument(..., help="a shortcoming, e.g. 'fails associative recall'"),
           k: int = typer.Option(5, "-k"), min_score: float = typer.Option(0.0, help="minimum cosine similarity"),
           data_dir: Optional[Path] = DataDir):
    """The k cognitions whose trigger patterns match the query best."""
    from services.common.cognition_base import CognitionBase

    hits = CognitionBase.from_settings(load_settings(data_dir)).search(query, k=k, min_score=min_score)
    table = Table(title=f"cognitions for: {query}")
    for col in ("score", "id", "paper", "design insight"):
        table.add_column(col)
    for h in hits:
        table.add_row(f"{h.score:.3f}", h.cognition_id, h.paper_key, " ".join(h.design_insight.split())[:120])
    console.print(table)


@cognition_app.command("count")
def count(data_dir: Optional[Path] = DataDir):
    """How many cognitions the base holds."""
    from services.common.cognition_base import CognitionBase

    console.print(CognitionBase.from_settings(load_settings(data_dir)).count())


def register(app: typer.Typer) -> None:
    app.add_typer(cognition_app, name="cognition")
