"""`archlab propose` and `archlab check`: the offline proposer and the sanity checks, from the shell."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from services.cli.console import make_console

console = make_console()


def register(app: typer.Typer) -> None:
    @app.command("propose")
    def propose(parent: str = typer.Option("deltanet", help="zoo genome to start from: " + ", ".join(
                    ["deltanet", "gated_deltanet", "linear", "retnet", "gla", "mamba2"])),
                seed: int = typer.Option(0, help="mutator seed"),
                out: Optional[Path] = typer.Option(None, help="write the program here (default: print it)"),
                check: bool = typer.Option(False, help="also run the sanity checks in the sandbox"),
                profile: str = typer.Option("cpu-tiny")):
        """One offline proposal: a child of a zoo genome, with its name and motivation."""
        from services.cli.choices import one_of
        from services.researcher.codegen import render
        from services.researcher.genome import ZOO_DESIGNS
        from services.researcher.mutator import mutate

        one_of(parent, ZOO_DESIGNS, "--parent", "zoo genome")
        _check_profile(profile)
        design, name, motivation = mutate(ZOO_DESIGNS[parent], [], seed, [])
        code = render(design, name, motivation)
        console.print(f"[bold]{name}[/bold]\n{motivation}")
        if out:
            out.write_text(code)
            console.print(f"written to {out}")
        else:
            print(code)
        if check:
            _print_outcome(_checker().check(code, profile))

    @app.command("check")
    def check_file(path: Path, profile: str = typer.Option("cpu-tiny")):
        """Run the researcher's sanity checks (static + sandboxed) on a layer program file."""
        _check_profile(profile)
        outcome = _checker().check(path.read_text(), profile)
        _print_outcome(outcome)
        raise typer.Exit(0 if outcome.ok else 1)


def _check_profile(profile: str) -> None:
    from lab.training.profiles import PROFILES
    from services.cli.choices import one_of

    one_of(profile, PROFILES, "--profile", "profile")


def _checker():
    from lab.checks import SanityChecker
    return SanityChecker()


def _print_outcome(outcome) -> None:
    if outcome.ok:
        console.print("[green]passed[/green] " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in outcome.timings.items()))
        exps = outcome.evidence.get("complexity", {}).get("exponents")
        if exps:
            console.print(f"growth exponents L->4L: {exps}")
    else:
        console.print(f"[red]rejected: {outcome.reason}[/red]\n{outcome.feedback}")
