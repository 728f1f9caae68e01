"""StateDB: the shared plumbing of the services' private SQLite state."""
from __future__ import annotations

import sqlite3
import threading

import pytest

from services.common.sqlite_state import StateDB

SCHEMA = "CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v INTEGER);"


def test_creates_the_parent_directory_and_uses_wal(tmp_path):
    path = tmp_path / "a" / "b" / "state.sqlite"
    db = StateDB(path, SCHEMA)
    assert path.exists()
    assert db.one("PRAGMA journal_mode") == ("wal",)
    db.close()


def test_memory_database():
    db = StateDB(":memory:", SCHEMA)
    db.execute("INSERT INTO t VALUES (?, ?)", ("a", 1))
    assert db.query("SELECT k, v FROM t") == [("a", 1)]
    assert db.one("SELECT v FROM t WHERE k=?", ("missing",)) is None
    db.close()


def test_reopening_keeps_rows_and_the_schema_is_applied_once(tmp_path):
    path = tmp_path / "state.sqlite"
    db = StateDB(path, SCHEMA)
    db.execute("INSERT INTO t VALUES (?, ?)", ("a", 1))
    db.close()
    again = StateDB(path, SCHEMA)  # the schema runs again: IF NOT EXISTS keeps the table and its rows
    assert again.query("SELECT k, v FROM t") == [("a", 1)]
    assert again.one("SELECT count(*) FROM sqlite_master WHERE type='table' AND name='t'") == (1,)
    again.close()


def test_a_write_is_visible_to_another_connection(tmp_path):
    """A lone execute() is committed: another process (here another connection) sees it at once."""
    path = tmp_path / "state.sqlite"
    writer, reader = StateDB(path, SCHEMA), StateDB(path, SCHEMA)
    writer.execute("INSERT INTO t VALUES (?, ?)", ("a", 1))
    assert reader.one("SELECT v FROM t WHERE k='a'") == (1,)
    with writer.transaction() as tx:
        tx.execute("INSERT INTO t VALUES (?, ?)", ("b", 2))
    assert reader.one("SELECT v FROM t WHERE k='b'") == (2,)
    writer.close()
    reader.close()


def test_concurrent_writes_from_threads_all_land(tmp_path):
    db = StateDB(tmp_path / "state.sqlite", SCHEMA)
    errors = []

    def work(n: int) -> None:
        try:
            for i in range(50):
                if i % 2:
                    db.execute("INSERT INTO t VALUES (?, ?)", (f"{n}-{i}", i))
                else:
                    with db.transaction() as tx:
                        tx.execute("INSERT INTO t VALUES (?, ?)", (f"{n}-{i}", i))
                db.one("SELECT count(*) FROM t")
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert db.one("SELECT count(*) FROM t") == (400,)
    db.close()


def test_a_failed_transaction_rolls_back(tmp_path):
    db = StateDB(tmp_path / "state.sqlite", SCHEMA)
    db.execute("INSERT INTO t VALUES (?, ?)", ("kept", 1))
    with pytest.raises(RuntimeError), db.transaction() as tx:
        tx.execute("INSERT INTO t VALUES (?, ?)", ("lost", 2))
        tx.execute("UPDATE t SET v = 10 WHERE k = 'kept'")
        raise RuntimeError("boom")
    with pytest.raises(sqlite3.IntegrityError), db.transaction() as tx:
        tx.execute("INSERT INTO t VALUES (?, ?)", ("lost too", 3))
        tx.execute("INSERT INTO t VALUES (?, ?)", ("kept", 4))  # primary key taken
    assert db.query("SELECT k, v FROM t") == [("kept", 1)]
    with db.transaction() as tx:  # the connection is usable again
        tx.execute("INSERT INTO t VALUES (?, ?)", ("after", 5))
    assert db.query("SELECT k FROM t ORDER BY k") == [("after",), ("kept",)]
    db.close()


def test_read_then_write_transactions_are_atomic_across_connections(tmp_path):
    """Two connections on one file (as two processes of a service): a counter incremented in transactions
    by threads of both loses no update (BEGIN IMMEDIATE takes the write lock before the read)."""
    path = tmp_path / "state.sqlite"
    dbs = [StateDB(path, SCHEMA), StateDB(path, SCHEMA)]
    dbs[0].execute("INSERT INTO t VALUES ('n', 0)")

    def work(db: StateDB) -> None:
        for _ in range(50):
            with db.transaction() as tx:
                (n,) = tx.execute("SELECT v FROM t WHERE k='n'").fetchone()
                tx.execute("UPDATE t SET v=? WHERE k='n'", (n + 1,))

    threads = [threading.Thread(target=work, args=(dbs[i % 2],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert dbs[1].one("SELECT v FROM t WHERE k='n'") == (400,)
    for db in dbs:
        db.close()
