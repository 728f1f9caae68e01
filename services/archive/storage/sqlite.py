"""The embedded backend: one SQLite file in WAL mode (one writer: the archive; readers: the CLI).

Writes are batched: experiment documents and processed-event marks are kept in memory until
`commit()`, so a replay pays one JSON encode per experiment per batch, not per event.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from services.archive.storage.base import Record, Store

SCHEMA = """
CREATE TABLE IF NOT EXISTS experiments (
    experiment_id TEXT PRIMARY KEY, campaign_id TEXT, parent_id TEXT, created_at TEXT,
    name TEXT, role TEXT, status TEXT, fitness REAL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS experiments_by_campaign ON experiments (campaign_id, created_at, experiment_id);
CREATE INDEX IF NOT EXISTS experiments_by_parent ON experiments (parent_id, experiment_id);
CREATE TABLE IF NOT EXISTS attempts (
    event_id TEXT PRIMARY KEY, experiment_id TEXT NOT NULL, occurred_at TEXT, kind TEXT, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS attempts_by_experiment ON attempts (experiment_id, occurred_at, event_id);
CREATE TABLE IF NOT EXISTS scores (
    event_id TEXT PRIMARY KEY, experiment_id TEXT NOT NULL, campaign_id TEXT, scheme TEXT, fitness REAL,
    occurred_at TEXT, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS scores_by_experiment ON scores (experiment_id, occurred_at, event_id);
CREATE TABLE IF NOT EXISTS campaigns (campaign_id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cognitions (cognition_id TEXT PRIMARY KEY, title TEXT, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pool (
    campaign_id TEXT, scheme TEXT, experiment_id TEXT, fitness REAL NOT NULL,
    PRIMARY KEY (campaign_id, scheme, experiment_id));
CREATE INDEX IF NOT EXISTS pool_by_fitness ON pool (campaign_id, scheme, fitness DESC, experiment_id);
CREATE TABLE IF NOT EXISTS processed (event_id TEXT PRIMARY KEY, event_type TEXT, occurred_at TEXT);
CREATE TABLE IF NOT EXISTS pending_local (event_id TEXT PRIMARY KEY, payload TEXT NOT NULL);
"""

_CACHE_LIMIT = 50_000  # experiment documents kept in memory between commits


def _dumps(doc: Record) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


class SQLiteStore(Store):
    def __init__(self, path: Path | str, *, read_only: bool = False, bulk: bool = False):
        """`bulk=True`: a file being rebuilt by a replay: no fsync (a crash just restarts the replay)."""
        self.path = Path(path)
        self.read_only = read_only
        if read_only:
            if not self.path.exists():
                raise FileNotFoundError(f"no archive database at {self.path}")
            self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=OFF" if bulk else "PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA cache_size=-131072")  # 128 MiB of pages: replays insert in random key order
            self._db.executescript(SCHEMA)
            self._db.commit()
        self._docs: dict[str, Record] = {}      # experiment documents read or written (write-back cache)
        self._dirty: set[str] = set()
        self._processed: dict[str, tuple[str, str, str]] = {}  # not yet written
        self._campaigns: dict[str, Record | None] = {}          # few and small: cached

    # ---------------------------------------------------------------- event bookkeeping
    def is_processed(self, event_id: str) -> bool:
        if event_id in self._processed:
            return True
        return self._db.execute("SELECT 1 FROM processed WHERE event_id=?", (event_id,)).fetchone() is not None

    def mark_processed(self, event_id: str, event_type: str, occurred_at: str, *,
                       local_payload: str | None = None) -> None:
        self._processed[event_id] = (event_id, event_type, occurred_at)
        if local_payload is not None:
            self._db.execute("INSERT OR REPLACE INTO pending_local VALUES (?, ?)", (event_id, local_payload))

    def pending_local(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT payload FROM pending_local ORDER BY event_id")]

    def confirm(self, event_id: str) -> None:
        self._db.execute("DELETE FROM pending_local WHERE event_id=?", (event_id,))

    # ---------------------------------------------------------------- experiments
    def get_experiment(self, experiment_id: str) -> Record | None:
        doc = self._docs.get(experiment_id)
        if doc is None:
            row = self._db.execute("SELECT doc FROM experiments WHERE experiment_id=?", (experiment_id,)).fetchone()
            if row is None:
                return None
            doc = self._docs[experiment_id] = json.loads(row[0])
        return doc

    def put_experiment(self, doc: Record) -> None:
        self._docs[doc["experiment_id"]] = doc
        self._dirty.add(doc["experiment_id"])

    def _flush(self) -> None:
        if self._dirty:
            rows = []
            for exp_id in self._dirty:
                d = self._docs[exp_id]
                rows.append((exp_id, d.get("campaign_id"), d.get("parent_id"), d.get("created_at"), d.get("name"),
                             d.get("role"), d.get("status"), d.get("fitness"), _dumps(d)))
            self._db.executemany("INSERT OR REPLACE INTO experiments VALUES (?,?,?,?,?,?,?,?,?)", rows)
            self._dirty.clear()
        if self._processed:
            self._db.executemany("INSERT OR IGNORE INTO processed VALUES (?,?,?)", self._processed.values())
            self._processed.clear()

    def _docs_where(self, column: str, value: str | None, order: tuple[str, ...]) -> list[Record]:
        """Rows matching column=value, with unflushed documents overlaid (a read never forces a flush:
        in a shuffled replay that would re-encode every document many times)."""
        if value is None:
            rows = self._db.execute("SELECT experiment_id, doc FROM experiments")
        else:
            rows = self._db.execute(f"SELECT experiment_id, doc FROM experiments WHERE {column}=?", (value,))
        found = {exp_id: self._docs.get(exp_id) or json.loads(doc) for exp_id, doc in rows}
        for exp_id in self._dirty:
            doc = self._docs[exp_id]
            if value is None or doc.get(column) == value:
                found[exp_id] = doc
            else:
                found.pop(exp_id, None)
        return sorted(found.values(), key=lambda d: tuple(d.get(k) or "" for k in order))

    def experiments(self, campaign_id: str | None = None) -> list[Record]:
        return self._docs_where("campaign_id", campaign_id, ("created_at", "experiment_id"))

    def children(self, parent_id: str) -> list[Record]:
        return self._docs_where("parent_id", parent_id, ("experiment_id",))

    # ---------------------------------------------------------------- attempts and scores
    def put_attempt(self, rec: Record) -> None:
        self._db.execute("INSERT OR REPLACE INTO attempts VALUES (?,?,?,?,?)",
                         (rec["event_id"], rec["experiment_id"], rec["occurred_at"], rec["kind"], _dumps(rec)))

    def attempts(self, experiment_id: str) -> list[Record]:
        return [json.loads(r[0]) for r in self._db.execute(
            "SELECT doc FROM attempts WHERE experiment_id=? ORDER BY occurred_at, event_id", (experiment_id,))]

    def put_score(self, rec: Record) -> None:
        self._db.execute("INSERT OR REPLACE INTO scores VALUES (?,?,?,?,?,?,?)",
                         (rec["event_id"], rec["experiment_id"], rec["campaign_id"], rec["scheme"], rec["fitness"],
                          rec["occurred_at"], _dumps(rec)))

    def scores(self, experiment_id: str) -> list[Record]:
        return [json.loads(r[0]) for r in self._db.execute(
            "SELECT doc FROM scores WHERE experiment_id=? ORDER BY occurred_at, event_id", (experiment_id,))]

    # ---------------------------------------------------------------- campaigns and cognitions
    def get_campaign(self, campaign_id: str) -> Record | None:
        if campaign_id not in self._campaigns or self.read_only:
            row = self._db.execute("SELECT doc FROM campaigns WHERE campaign_id=?", (campaign_id,)).fetchone()
            self._campaigns[campaign_id] = json.loads(row[0]) if row else None
        return self._campaigns[campaign_id]

    def put_campaign(self, doc: Record) -> None:
        self._db.execute("INSERT OR REPLACE INTO campaigns VALUES (?,?)", (doc["campaign_id"], _dumps(doc)))
        self._campaigns[doc["campaign_id"]] = doc

    def campaigns(self) -> list[Record]:
        return [json.loads(r[0]) for r in self._db.execute("SELECT doc FROM campaigns ORDER BY campaign_id")]

    def get_cognition(self, cognition_id: str) -> Record | None:
        row = self._db.execute("SELECT doc FROM cognitions WHERE cognition_id=?", (cognition_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def put_cognition(self, doc: Record) -> None:
        self._db.execute("INSERT OR REPLACE INTO cognitions VALUES (?,?,?)",
                         (doc["cognition_id"], doc.get("title", ""), _dumps(doc)))

    # ---------------------------------------------------------------- elite pool index
    def set_pool_entry(self, campaign_id: str, scheme: str, experiment_id: str, fitness: float | None) -> None:
        if fitness is None:
            self._db.execute("DELETE FROM pool WHERE campaign_id=? AND scheme=? AND experiment_id=?",
                             (campaign_id, scheme, experiment_id))
        else:
            self._db.execute("INSERT OR REPLACE INTO pool VALUES (?,?,?,?)",
                             (campaign_id, scheme, experiment_id, fitness))

    def top_by_fitness(self, campaign_id: str, scheme: str, limit: int) -> list[tuple[str, float]]:
        return [(r[0], r[1]) for r in self._db.execute(
            "SELECT experiment_id, fitness FROM pool WHERE campaign_id=? AND scheme=? "
            "ORDER BY fitness DESC, experiment_id LIMIT ?", (campaign_id, scheme, limit))]

    # ---------------------------------------------------------------- whole read model
    def dump(self) -> dict[str, list[Record]]:
        self._flush()
        if self.read_only:   # one snapshot for every table while the archive keeps writing
            self._db.execute("BEGIN")
            try:
                return self._dump()
            finally:
                self._db.rollback()
        return self._dump()

    def _dump(self) -> dict[str, list[Record]]:
        q = self._db.execute
        return {
            "experiments": [json.loads(r[0]) for r in q("SELECT doc FROM experiments ORDER BY experiment_id")],
            "attempts": [json.loads(r[0]) for r in q("SELECT doc FROM attempts ORDER BY event_id")],
            "scores": [json.loads(r[0]) for r in q("SELECT doc FROM scores ORDER BY event_id")],
            "campaigns": [json.loads(r[0]) for r in q("SELECT doc FROM campaigns ORDER BY campaign_id")],
            "cognitions": [json.loads(r[0]) for r in q("SELECT doc FROM cognitions ORDER BY cognition_id")],
            "pool": [dict(campaign_id=r[0], scheme=r[1], experiment_id=r[2], fitness=r[3]) for r in
                     q("SELECT * FROM pool ORDER BY campaign_id, scheme, experiment_id")],
            "processed": [dict(event_id=r[0], event_type=r[1], occurred_at=r[2]) for r in
                          q("SELECT * FROM processed ORDER BY event_id")],
        }

    def commit(self) -> None:
        if self.read_only:
            return
        self._flush()
        self._db.commit()
        if len(self._docs) > _CACHE_LIMIT:
            self._docs.clear()

    def rollback(self) -> None:
        self._db.rollback()
        self._docs.clear()
        self._campaigns.clear()
        self._dirty.clear()
        self._processed.clear()

    def close(self) -> None:
        if not self.read_only:
            self.commit()
        self._db.close()
