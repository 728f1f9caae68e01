"""Wiring: `python -m services.ui.main` serves the UI on the stack's data directory (started by `archlab up`).

Host, port and token come from ARCHLAB_UI_HOST / ARCHLAB_UI_PORT / ARCHLAB_UI_TOKEN (defaults
127.0.0.1, 8765, none; Settings). Another host than loopback without a token gets a generated one, logged once
(a container's logs show it). It logs "service started" with its URL once it listens, like every service.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import threading
from pathlib import Path

from services.common import endpoints
from services.common.logging import configure_logging, get_logger
from services.common.settings import Settings, load_settings
from services.ui.readmodel import ReadModel
from services.ui.server import LOOPBACK, UIServer

UI_FILE = "ui.json"   # where the stack's UI records its address (services/cli/ui.py reads it)


def novelty_records(settings: Settings):
    """The embedding map's source: the researcher's novelty memory on the stack's Milvus server, looked up and read
    (never created) on each request. Never an in-process milvus-lite file: one process owns such a file."""
    def read() -> list[dict]:
        from services.common.vectors import NOVELTY_COLLECTION, VectorStore

        uri = endpoints.milvus_uri(settings)
        if uri.endswith(".db"):
            raise RuntimeError("no Milvus server of the stack is running (start it with `archlab up`)")
        store = VectorStore.existing(uri, NOVELTY_COLLECTION)
        return store.records() if store is not None else []
    return read


def run(data_dir: Path, host: str = "127.0.0.1", port: int = 8765, token: str | None = None,
        on_ready=None, settings: Settings | None = None) -> None:
    """Serve until SIGTERM/SIGINT. `on_ready(server)` is called once it listens. With `settings`, the embedding
    map reads the stack's novelty memory."""
    server = UIServer((host, port), ReadModel(data_dir), token, novelty_records(settings) if settings else None)
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
    """The stack's UI process: the configured port, or any free one when it is taken (several stacks on one
    machine); the address goes to <data_dir>/ui.json for `archlab up` / `run` to print."""
    settings = load_settings()
    configure_logging("ui")
    log = get_logger(service="ui")
    host, port, token = settings.ui_host, settings.ui_port, settings.ui_token or None
    data_dir = Path(settings.data_dir)
    if host not in LOOPBACK and not token:
        token = secrets.token_urlsafe(24)
        log.warning("no ARCHLAB_UI_TOKEN for a non-loopback bind: a token was generated (every request needs it)",
                    token=token)

    def ready(server: UIServer) -> None:
        (data_dir / UI_FILE).write_text(json.dumps({"url": server.url, "pid": os.getpid()}))
        log.info("service started", url=server.url, data_dir=str(data_dir))

    if port and not port_free(host, port):
        log.info("port taken, using a free one", port=port)
        port = 0
    run(data_dir, host, port, token, on_ready=ready, settings=settings)


def port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


if __name__ == "__main__":
    main()
