"""`archlab data prepare PROFILE` / `archlab data status`: a profile's training data staged into the
content-addressed cache under the data dir (lab/training/datastage.py). Trusted and network-allowed:
the sandboxed training child only reads what this step wrote."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from services.cli.console import make_console
from services.common.settings import load_settings

console = make_console()
data_app = typer.Typer(help="stage training data for the offline sandbox (content-addressed cache)")


@data_app.command("prepare")
def prepare(profile: str = typer.Argument(..., help="profile whose training data to stage (e.g. explore-20m)"),
            data_dir: Optional[Path] = typer.Option(None, "--data-dir")):
    """Fetch or build PROFILE's training tokens into <data dir>/datasets/<key>/ (idempotent)."""
    from lab.training import datastage
    from lab.training.profiles import PROFILES
    from services.cli.choices import one_of

    p = PROFILES[one_of(profile, PROFILES, "PROFILE", "profile")]
    settings = load_settings(data_dir)
    if not datastage.needs_staging(p):
        console.print(f"profile {p.name} (task {p.task}) generates its data inside the sandbox: nothing to stage")
        return
    last = [0]

    def progress(have: int, want: int) -> None:
        if have - last[0] >= max(want // 20, 1) or have >= want:
            last[0] = have
            console.print(f"  {have:,} / {want:,} tokens")

    d = datastage.prepare(p, settings.data_dir, progress=progress)
    manifest = json.loads((d / datastage.MANIFEST_NAME).read_text())
    console.print(f"staged [bold]{p.name}[/]: {manifest['tokens']:,} tokens in {d} (sha256 {manifest['sha256'][:16]})")


@data_app.command("status")
def status(data_dir: Optional[Path] = typer.Option(None, "--data-dir")):
    """Which profiles need staged data, and whether it is there."""
    from lab.training import datastage
    from lab.training.profiles import PROFILES

    settings = load_settings(data_dir)
    t = Table("profile", "data", "tokens", "staged")
    for name, p in PROFILES.items():
        if not datastage.needs_staging(p):
            t.add_row(name, p.task, "-", "generated in the sandbox")
            continue
        d = datastage.staged(p, settings.data_dir)
        t.add_row(name, f"{p.hf_dataset} / {p.hf_tokenizer}", f"{datastage.tokens_wanted(p):,}",
                  str(d) if d else f"[red]missing[/]: {datastage.prepare_command(p)}")
    console.print(t)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
