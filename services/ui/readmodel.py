"""The UI's read-only view of the archive's read model (the SQLite file the archive writes).

The UI is a service, so it may not import the archive (tests/test_architecture.py): it reads the
tables by SQL. Every connection is opened `mode=ro` with `query_only` on, so no statement of the UI
can write.

The lists (leaderboard, genealogy, fitness, campaign) need a few fields of every experiment, but a
document holds the program's code (about 20 KB): with 2,000 experiments, extracting them from every
document took 0.7 s per page (bench/ui.py). So `Rows` keeps those fields in memory and refreshes
only what changed: the indexed columns (id, parent, name, status, fitness...) are read for every
experiment, which touches one page per row, and the document's fields only for rows whose columns
changed (every fact a list shows changes the status or the fitness along with it). Attempts and
scores are append-only (keyed by event id, applied once), so their counts and costs are summed
incrementally by rowid.
"""
from __future__ import annotations

import json
import sqlite3
import threading
from collections import Counter, defaultdict
from contextlib import closing
from pathlib import Path
from typing import Any

DB_FILE = "archive.sqlite"   # the name services/archive/storage gives the file under the data dir

# Fields of an experiment's document that the lists show: (row key, JSON path).
ROW_FIELDS = (
    ("updated_at", "$.updated_at"), ("stage", "$.stage"), ("zoo", "$.zoo"),
    ("loss_score", "$.score.loss_score"), ("benchmark_score", "$.score.benchmark_score"),
    ("qualitative", "$.score.qualitative"), ("significant", "$.score.significant"),
    ("final_loss", "$.results.final_loss"), ("benchmark", "$.results.benchmark"),
    ("params", "$.results.params"), ("train_s", "$.results.train_s"), ("eval_s", "$.results.eval_s"),
    ("device", "$.results.device"), ("results_at", "$.results.at"), ("imported", "$.imported.source"),
    ("abandon_reason", "$.abandoned.reason"), ("mode", "$.sampling.mode"), ("policy", "$.sampling.policy"),
    ("draw", "$.sampling.draw"), ("insights_cost", "$.insights.usage.cost_usd"), ("verifies", "$.verifies"),
    ("metrics", "$.results.metrics"), ("replication", "$.replication.verdict"),
)
COLUMNS = ("experiment_id", "campaign_id", "parent_id", "created_at", "name", "role", "status", "fitness")
_COLUMNS_SQL = f"SELECT {', '.join(COLUMNS)} FROM experiments"
_FIELDS_SQL = ("SELECT experiment_id, " + ", ".join(f"json_extract(doc, '{path}')" for _, path in ROW_FIELDS)
               + " FROM experiments WHERE experiment_id IN ({marks})")


class ReadModel:
    """Queries over `<data_dir>/archive.sqlite`; every call opens (and closes) its own connection."""

    def __init__(self, data_dir: Path):
        self.path = Path(data_dir) / DB_FILE
        self._rows = Rows(self)

    def exists(self) -> bool:
        return self.path.exists()

    def connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5, check_same_thread=False)
        db.execute("PRAGMA query_only=1")
        return db

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        if not self.exists():
            return []
        with closing(self.connect()) as db:
            return db.execute(sql, args).fetchall()

    # ---------------------------------------------------------------- lists
    def campaigns(self) -> list[dict[str, Any]]:
        return [json.loads(doc) for (doc,) in self._query("SELECT doc FROM campaigns ORDER BY campaign_id")]

    def rows(self, campaign_id: str | None = None) -> list[dict[str, Any]]:
        """Every experiment (of a campaign) as a flat row (a copy), in creation order."""
        return self._rows.rows(campaign_id)

    def pool(self, campaign_id: str, scheme: str, limit: int = 50) -> list[tuple[str, float]]:
        return self._query("SELECT experiment_id, fitness FROM pool WHERE campaign_id=? AND scheme=? "
                           "ORDER BY fitness DESC, experiment_id LIMIT ?", (campaign_id, scheme, limit))

    def failures(self, campaign_id: str) -> list[tuple[str, str, int]]:
        """(kind of attempt, reason, count) of a campaign's failed runs and rejected proposals, most first."""
        return self._rows.failures(campaign_id)

    def llm_cost(self, campaign_id: str) -> float:
        """USD spent by LLM calls recorded on the campaign's proposals, rejections and scores (insights: rows)."""
        return self._rows.llm_cost(campaign_id)

    # ---------------------------------------------------------------- one experiment
    def experiment(self, experiment_id: str) -> dict[str, Any] | None:
        found = self._query("SELECT doc FROM experiments WHERE experiment_id=?", (experiment_id,))
        return json.loads(found[0][0]) if found else None

    def attempts(self, experiment_id: str) -> list[dict[str, Any]]:
        return [json.loads(d) for (d,) in self._query(
            "SELECT doc FROM attempts WHERE experiment_id=? ORDER BY occurred_at, event_id", (experiment_id,))]

    def duplicates(self, campaign_id: str) -> list[dict[str, Any]]:
        """The campaign's proposals rejected as duplicates: {experiment_id, name, similar}, in time order."""
        return [{"experiment_id": eid, "name": name, "similar": json.loads(similar or "[]")}
                for eid, name, similar in self._query(
                    "SELECT a.experiment_id, json_extract(a.doc, '$.name'), json_extract(a.doc, '$.similar') "
                    "FROM attempts a JOIN experiments e ON e.experiment_id = a.experiment_id "
                    "WHERE e.campaign_id=? AND a.kind='rejected' AND json_extract(a.doc, '$.reason')='duplicate' "
                    "ORDER BY a.occurred_at, a.event_id", (campaign_id,))]

    def scores(self, experiment_id: str) -> list[dict[str, Any]]:
        return [json.loads(d) for (d,) in self._query(
            "SELECT doc FROM scores WHERE experiment_id=? ORDER BY occurred_at, event_id", (experiment_id,))]

    def cognition_titles(self, ids: list[str]) -> dict[str, str]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        return dict(self._query(f"SELECT cognition_id, title FROM cognitions WHERE cognition_id IN ({marks})",
                                tuple(ids)))

    # ---------------------------------------------------------------- change detection
    def last_event(self, db: sqlite3.Connection) -> int:
        """The rowid of the latest event the archive has applied (grows with every commit that applied one)."""
        (n,), = db.execute("SELECT COALESCE(MAX(rowid), 0) FROM processed").fetchall()
        return n

    def events_after(self, db: sqlite3.Connection, rowid: int, limit: int = 50) -> list[dict[str, Any]]:
        """The newest `limit` events applied after `rowid`, oldest first (the last one is the newest of all)."""
        rows = db.execute("SELECT rowid, event_type, occurred_at FROM processed WHERE rowid>? ORDER BY rowid DESC "
                          "LIMIT ?", (rowid, limit)).fetchall()
        return [{"seq": r[0], "type": r[1], "occurred_at": r[2]} for r in reversed(rows)]


class Rows:
    """The list fields of every experiment, kept in memory and refreshed by what changed (module docstring)."""

    def __init__(self, model: ReadModel):
        self.model = model
        self.lock = threading.Lock()
        self.db: sqlite3.Connection | None = None
        self.inode = None
        self.version = None
        self._reset()

    def _reset(self) -> None:
        self.by_id: dict[str, dict[str, Any]] = {}
        self.columns: dict[str, tuple] = {}
        self.seen = {"attempts": 0, "scores": 0}              # rowids already summed
        self.reasons: dict[str, Counter] = defaultdict(Counter)   # campaign -> (kind, reason) -> count
        self.cost: dict[str, float] = defaultdict(float)         # campaign -> USD

    def _connect(self) -> sqlite3.Connection | None:
        """The persistent connection; a new one when the file was replaced (a replay writes a fresh file)."""
        if not self.model.exists():
            return None
        inode = self.model.path.stat().st_ino
        if self.db is None or inode != self.inode:
            if self.db is not None:
                self.db.close()
            self.db, self.inode, self.version = self.model.connect(), inode, None
            self._reset()
        return self.db

    def refresh(self) -> None:
        with self.lock:
            db = self._connect()
            if db is None:
                return
            (version,), = db.execute("PRAGMA data_version").fetchall()
            if version == self.version:
                return
            db.execute("BEGIN")    # one snapshot for the three reads
            try:
                self._refresh_rows(db)
                self._sum_attempts(db)
                self._sum_scores(db)
            finally:
                db.rollback()
            self.version = version

    def _refresh_rows(self, db: sqlite3.Connection) -> None:
        current = {r[0]: r for r in db.execute(_COLUMNS_SQL)}
        for gone in set(self.by_id) - set(current):
            del self.by_id[gone], self.columns[gone]
        changed = [eid for eid, cols in current.items() if self.columns.get(eid) != cols]
        for start in range(0, len(changed), 500):
            chunk = changed[start:start + 500]
            for r in db.execute(_FIELDS_SQL.format(marks=",".join("?" * len(chunk))), chunk):
                row = dict(zip(COLUMNS, current[r[0]]))
                row.update(zip((k for k, _ in ROW_FIELDS), r[1:]))
                row["draw"] = json.loads(row["draw"]) if row["draw"] else {}
                row["metrics"] = json.loads(row["metrics"]) if row["metrics"] else {}
                self.by_id[r[0]] = row
                self.columns[r[0]] = current[r[0]]

    def _sum_attempts(self, db: sqlite3.Connection) -> None:
        for rowid, campaign, kind, reason, cost in db.execute(
                "SELECT a.rowid, e.campaign_id, a.kind, COALESCE(json_extract(a.doc, '$.failure_kind'), "
                "json_extract(a.doc, '$.reason'), '?'), json_extract(a.doc, '$.usage.cost_usd') FROM attempts a "
                "LEFT JOIN experiments e USING (experiment_id) WHERE a.rowid > ? ORDER BY a.rowid",
                (self.seen["attempts"],)):
            if kind in ("failure", "rejected"):
                self.reasons[campaign][(kind, reason)] += 1
            self.cost[campaign] += cost or 0.0
            self.seen["attempts"] = rowid

    def _sum_scores(self, db: sqlite3.Connection) -> None:
        for rowid, campaign, cost in db.execute(
                "SELECT rowid, campaign_id, json_extract(doc, '$.usage.cost_usd') FROM scores WHERE rowid > ? "
                "ORDER BY rowid", (self.seen["scores"],)):
            self.cost[campaign] += cost or 0.0
            self.seen["scores"] = rowid

    def rows(self, campaign_id: str | None) -> list[dict[str, Any]]:
        self.refresh()
        with self.lock:
            found = [dict(r) for r in self.by_id.values() if campaign_id is None or r["campaign_id"] == campaign_id]
        return sorted(found, key=lambda r: (r["created_at"] or "", r["experiment_id"]))

    def failures(self, campaign_id: str) -> list[tuple[str, str, int]]:
        self.refresh()
        with self.lock:
            return [(kind, reason, n) for (kind, reason), n in self.reasons[campaign_id].most_common()]

    def llm_cost(self, campaign_id: str) -> float:
        self.refresh()
        with self.lock:
            return self.cost[campaign_id]
