"""The UI's read-only view of the archive's read model (the SQLite file the archive writes).

The UI is a service, so it may not import the archive (tests/test_architecture.py): it reads the
tables by SQL. Every connection is opened `mode=ro` with `query_only` on, so no statement of the UI
can write. Wide queries pull only the fields a page shows with `json_extract` (a document holds the
program's code, about 20 KB: parsing 2,000 of them in Python would cost the page its second).
"""
from __future__ import annotations

import json
import sqlite3
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
    ("metrics", "$.results.metrics"),
)
_ROW_SQL = ("SELECT experiment_id, campaign_id, parent_id, created_at, name, role, status, fitness, "
            + ", ".join(f"json_extract(doc, '{path}')" for _, path in ROW_FIELDS) + " FROM experiments")


class ReadModel:
    """Queries over `<data_dir>/archive.sqlite`; every call opens (and closes) its own connection."""

    def __init__(self, data_dir: Path):
        self.path = Path(data_dir) / DB_FILE

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
        """Every experiment (of a campaign) as a flat row, in creation order."""
        where, args = ("", ()) if campaign_id is None else (" WHERE campaign_id=?", (campaign_id,))
        out = []
        for r in self._query(_ROW_SQL + where + " ORDER BY created_at, experiment_id", args):
            row = dict(zip(("experiment_id", "campaign_id", "parent_id", "created_at", "name", "role", "status",
                            "fitness"), r[:8]))
            row.update(zip((k for k, _ in ROW_FIELDS), r[8:]))
            row["draw"] = json.loads(row["draw"]) if row["draw"] else {}
            row["metrics"] = json.loads(row["metrics"]) if row["metrics"] else {}
            out.append(row)
        return out

    def pool(self, campaign_id: str, scheme: str, limit: int = 50) -> list[tuple[str, float]]:
        return self._query("SELECT experiment_id, fitness FROM pool WHERE campaign_id=? AND scheme=? "
                           "ORDER BY fitness DESC, experiment_id LIMIT ?", (campaign_id, scheme, limit))

    def failures(self, campaign_id: str) -> list[tuple[str, str, int]]:
        """(kind of attempt, reason, count) of a campaign's failed runs and rejected proposals."""
        return self._query(
            "SELECT a.kind, COALESCE(json_extract(a.doc, '$.failure_kind'), json_extract(a.doc, '$.reason'), '?'), "
            "COUNT(*) FROM attempts a JOIN experiments e USING (experiment_id) "
            "WHERE e.campaign_id=? AND a.kind IN ('failure', 'rejected') GROUP BY 1, 2 ORDER BY 3 DESC", (campaign_id,))

    def llm_cost(self, campaign_id: str) -> float:
        """USD spent by LLM calls recorded on the campaign's proposals, rejections and scores (insights: rows)."""
        total = 0.0
        for table in ("attempts", "scores"):
            for (cost,) in self._query(
                    f"SELECT SUM(json_extract(t.doc, '$.usage.cost_usd')) FROM {table} t "
                    "JOIN experiments e USING (experiment_id) WHERE e.campaign_id=?", (campaign_id,)):
                total += cost or 0.0
        return total

    # ---------------------------------------------------------------- one experiment
    def experiment(self, experiment_id: str) -> dict[str, Any] | None:
        found = self._query("SELECT doc FROM experiments WHERE experiment_id=?", (experiment_id,))
        return json.loads(found[0][0]) if found else None

    def attempts(self, experiment_id: str) -> list[dict[str, Any]]:
        return [json.loads(d) for (d,) in self._query(
            "SELECT doc FROM attempts WHERE experiment_id=? ORDER BY occurred_at, event_id", (experiment_id,))]

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
        return [{"seq": r[0], "type": r[1], "occurred_at": r[2]} for r in db.execute(
            "SELECT rowid, event_type, occurred_at FROM processed WHERE rowid>? ORDER BY rowid LIMIT ?", (rowid, limit))]
