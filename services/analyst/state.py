"""The analyst's private memory (SQLite under data_dir): joins proposals, results and scores.

An experiment is ready for analysis when its proposal, its results and its original score are
all known (they arrive on three topics, in any order on replay). Parents, siblings and the
baseline are read from the same tables. It is a cache of the log: dropping it and replaying
rebuilds it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from schemas import events as ev
from services.common.sqlite_state import StateDB

SCHEMA = """
CREATE TABLE IF NOT EXISTS proposals (experiment_id TEXT, revision INTEGER, campaign_id TEXT, parent_id TEXT,
    body TEXT, PRIMARY KEY (experiment_id, revision));
CREATE INDEX IF NOT EXISTS proposals_parent ON proposals (campaign_id, parent_id);
CREATE TABLE IF NOT EXISTS results (experiment_id TEXT PRIMARY KEY, occurred_at TEXT, event_id TEXT, body TEXT);
CREATE TABLE IF NOT EXISTS scores (experiment_id TEXT PRIMARY KEY, occurred_at TEXT, event_id TEXT, body TEXT);
CREATE TABLE IF NOT EXISTS analysed (experiment_id TEXT PRIMARY KEY, insights_event_id TEXT);
"""


@dataclass
class Record:
    """What the analyst knows of one experiment."""
    experiment_id: str
    proposal: ev.ProposalCreated | None
    results: ev.ResultsReady | None
    score: ev.ScoreAssigned | None

    @property
    def complete(self) -> bool:
        return self.proposal is not None and self.results is not None and self.score is not None

    @property
    def name(self) -> str:
        if self.proposal is not None:
            return self.proposal.name
        return self.results.name if self.results is not None else self.experiment_id


class AnalystState:
    def __init__(self, path: Path | str = ":memory:"):
        self.db = StateDB(path, SCHEMA)

    def _latest(self, table: str, e: ev.Event) -> None:
        # keep the latest event per experiment (occurred_at, then event_id: deterministic on replay)
        with self.db.transaction() as tx:
            row = tx.execute(f"SELECT occurred_at, event_id FROM {table} WHERE experiment_id=?",
                             (e.experiment_id,)).fetchone()
            if row is None or (row[0], row[1]) < (e.occurred_at.isoformat(), e.event_id):
                tx.execute(f"INSERT OR REPLACE INTO {table} VALUES (?,?,?,?)",
                           (e.experiment_id, e.occurred_at.isoformat(), e.event_id, e.model_dump_json()))

    def add_proposal(self, p: ev.ProposalCreated) -> None:
        self.db.execute("INSERT OR REPLACE INTO proposals VALUES (?,?,?,?,?)",
                        (p.experiment_id, p.revision, p.campaign_id, p.parent_id, p.model_dump_json()))

    def add_results(self, r: ev.ResultsReady) -> None:
        self._latest("results", r)

    def add_score(self, s: ev.ScoreAssigned) -> bool:
        """Remember an original score (rescores do not re-trigger analysis). False if ignored."""
        if s.rescore_of is not None:
            return False
        self._latest("scores", s)
        return True

    def record(self, experiment_id: str | None) -> Record | None:
        if not experiment_id:
            return None
        # one statement: the three bodies are read from one snapshot
        p, r, s = self.db.one(
            "SELECT (SELECT body FROM proposals WHERE experiment_id=?1 ORDER BY revision DESC LIMIT 1), "
            "(SELECT body FROM results WHERE experiment_id=?1), (SELECT body FROM scores WHERE experiment_id=?1)",
            (experiment_id,))
        if not (p or r or s):
            return None
        return Record(experiment_id,
                      ev.ProposalCreated.model_validate_json(p) if p else None,
                      ev.ResultsReady.model_validate_json(r) if r else None,
                      ev.ScoreAssigned.model_validate_json(s) if s else None)

    def siblings(self, campaign_id: str, parent_id: str | None, exclude: str) -> list[Record]:
        """Other complete experiments of the campaign with the same parent."""
        if not parent_id:
            return []
        ids = [row[0] for row in self.db.query(
            "SELECT DISTINCT experiment_id FROM proposals WHERE campaign_id=? AND parent_id=? AND experiment_id!=? "
            "ORDER BY experiment_id", (campaign_id, parent_id, exclude))]
        records = [self.record(i) for i in ids]
        return [r for r in records if r is not None and r.results is not None and r.score is not None]

    def mark_analysed(self, experiment_id: str, insights_event_id: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO analysed VALUES (?,?)", (experiment_id, insights_event_id))

    def analysed(self, experiment_id: str) -> str | None:
        row = self.db.one("SELECT insights_event_id FROM analysed WHERE experiment_id=?", (experiment_id,))
        return row[0] if row else None

    def close(self) -> None:
        self.db.close()
