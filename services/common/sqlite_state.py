"""A service's private, rebuildable state in SQLite: one connection, one schema, one lock.

The judge, analyst, debugger, researcher (routing, summaries), the LLM response cache and the bus's
idempotency guard each keep a small projection of the log (or a cache) in a file under the data dir.
`StateDB` is their shared plumbing: it creates the parent directory, connects (usable from any thread,
30 s busy timeout so the scaled-out processes of a service can share the file), puts a file in WAL mode,
and applies the schema (`CREATE ... IF NOT EXISTS`, so re-opening a file keeps its rows).

    db = StateDB(data_dir / "judge.sqlite", SCHEMA)
    db.execute("INSERT OR IGNORE INTO t VALUES (?, ?)", (a, b))    # one statement, committed
    row = db.one("SELECT b FROM t WHERE a=?", (a,))               # a tuple or None
    with db.transaction() as tx:                                   # several statements, all or none
        tx.execute(...); tx.executemany(...)

Rows are plain tuples. The archive's read model is not this: it is services/archive/storage.
"""
from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

MEMORY = ":memory:"


class StateDB:
    def __init__(self, path: Path | str, schema: str, *, timeout: float = 30.0):
        self.path = str(path)
        if self.path != MEMORY:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # autocommit: a lone statement commits itself, transaction() opens and ends its own
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=timeout, isolation_level=None)
        self._lock = threading.RLock()
        if self.path != MEMORY:
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(schema)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run one statement (a write, a PRAGMA); it is committed when this returns."""
        with self._lock:
            self._db.execute(sql, params)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple | None:
        with self._lock:
            return self._db.execute(sql, params).fetchone()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """The connection, for several statements committed together (rolled back if the block raises).
        It holds the write lock from the start (BEGIN IMMEDIATE), so a read-then-write inside is atomic
        across threads and processes. Not reentrant: do not open one inside another."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.rollback()
                raise
            self._db.commit()

    def close(self) -> None:
        with self._lock:
            self._db.close()
