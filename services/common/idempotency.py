"""A redelivered event is processed once: the guard remembers handled event_ids per consumer group.

SQLite in WAL mode under the data directory, so the scaled-out processes of one service on a
machine share it. Across machines, deterministic reply ids (`Event.caused`) make a repeat harmless
downstream anyway.
"""
from __future__ import annotations

from pathlib import Path

from services.common.sqlite_state import StateDB

SCHEMA = "CREATE TABLE IF NOT EXISTS handled (grp TEXT, event_id TEXT, PRIMARY KEY (grp, event_id))"


class IdempotencyGuard:
    def __init__(self, path: Path):
        self._db = StateDB(path, SCHEMA)
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes

    def seen(self, group: str, event_id: str) -> bool:
        return self._db.one("SELECT 1 FROM handled WHERE grp=? AND event_id=?", (group, event_id)) is not None

    def mark(self, group: str, event_id: str) -> None:
        self._db.execute("INSERT OR IGNORE INTO handled VALUES (?, ?)", (group, event_id))

    def close(self) -> None:
        self._db.close()
