"""A redelivered event is processed once: the guard remembers handled event_ids per consumer group.

SQLite in WAL mode under the data directory, so the scaled-out processes of one service on a
machine share it. Across machines, deterministic reply ids (`Event.caused`) make a repeat harmless
downstream anyway.
"""
from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


class IdempotencyGuard:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
        self._db.execute("CREATE TABLE IF NOT EXISTS handled (grp TEXT, event_id TEXT, PRIMARY KEY (grp, event_id))")
        self._db.commit()
        self._lock = threading.Lock()

    def seen(self, group: str, event_id: str) -> bool:
        with self._lock:
            row = self._db.execute("SELECT 1 FROM handled WHERE grp=? AND event_id=?", (group, event_id)).fetchone()
        return row is not None

    def mark(self, group: str, event_id: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO handled VALUES (?, ?)", (group, event_id))
            self._db.commit()

    def close(self) -> None:
        self._db.close()
