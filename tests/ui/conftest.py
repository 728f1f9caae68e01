"""Fixtures of the UI tests: a real read model (the archive's own projection writing SQLite) and a
UI server on a free 127.0.0.1 port, stopped at the end."""
from __future__ import annotations

from pathlib import Path

import pytest

from services.archive.projection import apply
from services.archive.storage.sqlite import SQLiteStore
from services.ui.readmodel import DB_FILE, ReadModel
from services.ui.server import serve
from tests.report.fake_campaign import fake_campaign

XSS = "<script>console.error('xss')</script>\"><img src=x onerror=alert(1)>"


def project(data_dir: Path, events) -> None:
    """Apply events as the archive does, committing each (what a live archive writes)."""
    with SQLiteStore(data_dir / DB_FILE) as store:
        for event in events:
            with store.transaction():
                apply(store, event)


@pytest.fixture
def data_dir(tmp_path):
    project(tmp_path, fake_campaign(malicious_name=XSS))
    return tmp_path


@pytest.fixture
def ui(data_dir):
    server = serve(ReadModel(data_dir), "127.0.0.1", 0)
    yield server
    server.shutdown()
    server.server_close()
