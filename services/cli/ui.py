"""`archlab ui`: the live, read-only web interface on the archive's read model (services/ui, docs/ui.md).

`archlab up` starts the same server as a stack process; it records its address in
`<data_dir>/ui.json`, which `archlab up` and `archlab run` print (`ui_url`).
"""
from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Optional


def ui_url(data_dir: Path) -> str | None:
    """The address of the stack's UI, if one recorded it."""
    from services.ui.main import UI_FILE

    try:
        return json.loads((Path(data_dir) / UI_FILE).read_text())["url"]
    except (OSError, ValueError, KeyError):
        return None


def register(app) -> None:
    import typer

    @app.command("ui")
    def ui(host: str = typer.Option("127.0.0.1", help="address to bind; anything but loopback needs a token"),
           port: int = typer.Option(8765, help="port (0: any free port)"),
           token: Optional[str] = typer.Option(None, help="required on every request when set; generated and "
                                                          "printed once for a non-loopback bind without one"),
           data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="state directory")):
        """Serve the live web UI (campaign, leaderboard, genealogy, fitness, embedding map, experiments, compare) from the read model."""
        from services.common.settings import load_settings
        from services.ui.main import run
        from services.ui.server import LOOPBACK

        settings = load_settings(data_dir)
        generated = host not in LOOPBACK and not token
        if generated:
            token = secrets.token_urlsafe(24)

        def ready(server) -> None:   # the only place the token is printed
            suffix = f"?token={token}" if token else ""
            note = "; the token was generated for this run" if generated else ""
            typer.echo(f"archlab ui: {server.url}{suffix}  (read-only, {settings.data_dir}{note}; Ctrl-C stops)")

        run(Path(settings.data_dir), host, port, token, on_ready=ready, settings=settings)
