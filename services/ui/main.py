"""Wiring: `python -m services.ui.main` serves the UI on the stack's data directory (started by `archlab up`).

Host, port and token come from ARCHLAB_UI_HOST / ARCHLAB_UI_PORT / ARCHLAB_UI_TOKEN (defaults
127.0.0.1, 8765, none). It logs "service started" with its URL once it listens, like every service.
"""
from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

from services.common.logging import configure_logging, get_logger
from services.common.settings import load_settings
from services.ui.readmodel import ReadModel
from services.ui.server import UIServer

DEFAULT_PORT = 8765


def run(data_dir: Path, host: str = "127.0.0.1", port: int = DEFAULT_PORT, token: str | None = None,
        on_ready=None) -> None:
    """Serve until SIGTERM/SIGINT. `on_ready(server)` is called once it listens."""
    server = UIServer((host, port), ReadModel(data_dir), token)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, name="ui-http", daemon=True)
    thread.start()
    if on_ready is not None:
        on_ready(server)
    try:
        stop.wait()
    finally:
        server.shutdown()
        server.server_close()


def main() -> None:
    settings = load_settings()
    configure_logging("ui")
    log = get_logger(service="ui")
    host = os.environ.get("ARCHLAB_UI_HOST", "127.0.0.1")
    port = int(os.environ.get("ARCHLAB_UI_PORT", DEFAULT_PORT))
    token = os.environ.get("ARCHLAB_UI_TOKEN") or None
    run(Path(settings.data_dir), host, port, token,
        on_ready=lambda s: log.info("service started", url=s.url, data_dir=str(settings.data_dir)))


if __name__ == "__main__":
    main()
