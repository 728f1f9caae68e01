"""The judge's private memory (SQLite under data_dir): results, baselines, and the code it judges.

The judge needs the campaign's measured baseline to score a candidate, and the program's code and
motivation for the qualitative judgement; both arrive on other events than the one being scored,
so it keeps them. It is a cache of the log: dropping the file and replaying rebuilds it.
"""
from __future__ import annotations

import json
from pathlib import Path

from lab.judging.score import usable_as_baseline
from schemas import events as ev
from services.common.sqlite_state import StateDB

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    event_id TEXT PRIMARY KEY, campaign_id TEXT, experiment_id TEXT, profile TEXT, role TEXT, name TEXT,
    valid INTEGER, occurred_at TEXT, body TEXT);
CREATE INDEX IF NOT EXISTS results_baseline ON results (campaign_id, profile, role, valid);
CREATE TABLE IF NOT EXISTS proposals (
    experiment_id TEXT, revision INTEGER, name TEXT, code TEXT, motivation TEXT, role TEXT,
    PRIMARY KEY (experiment_id, revision));
CREATE TABLE IF NOT EXISTS campaigns (campaign_id TEXT PRIMARY KEY, baselines TEXT);
CREATE TABLE IF NOT EXISTS campaign_noise (campaign_id TEXT PRIMARY KEY, noise TEXT);
-- results scored late (services/judge/scale.py): judged later by the handling of `trigger` (an event id),
-- whose late score is kept in `score`
CREATE TABLE IF NOT EXISTS qualitative_pending (result_event_id TEXT PRIMARY KEY, campaign_id TEXT,
    profile TEXT, trigger TEXT, score TEXT);
"""


class JudgeState:
    def __init__(self, path: Path | str = ":memory:"):
        self.db = StateDB(path, SCHEMA)

    def add_result(self, r: ev.ResultsReady) -> None:
        self.db.execute("INSERT OR IGNORE INTO results VALUES (?,?,?,?,?,?,?,?,?)",
                        (r.event_id, r.campaign_id, r.experiment_id, r.profile, r.role, r.name,
                         int(usable_as_baseline(r)), r.occurred_at.isoformat(), r.model_dump_json()))

    def add_proposal(self, p: ev.ProposalCreated) -> None:
        self.db.execute("INSERT OR REPLACE INTO proposals VALUES (?,?,?,?,?,?)",
                        (p.experiment_id, p.revision, p.name, p.code, p.motivation, p.role))

    def add_campaign(self, c: ev.CampaignStarted) -> None:
        # per profile: the campaign's own, and the verification profile's of a two-stage campaign
        # (config["promotion"]); a result of another profile falls back to the setting and the profile's default
        noise = {c.profile: dict(c.seed_noise or {})}
        promotion = (c.config or {}).get("promotion") or {}
        if promotion.get("verify_profile") and promotion["verify_profile"] != c.profile:
            noise[promotion["verify_profile"]] = dict(promotion.get("seed_noise") or {})
        with self.db.transaction() as tx:
            tx.execute("INSERT OR REPLACE INTO campaigns VALUES (?,?)", (c.campaign_id, json.dumps(c.baselines)))
            tx.execute("INSERT OR REPLACE INTO campaign_noise VALUES (?,?)", (c.campaign_id, json.dumps(noise)))

    def campaign_noise(self, campaign_id: str) -> dict:
        """The seed noise the campaign was started with, per profile ({profile: {"loss", "benchmark"}}, what
        `fitness.resolve_noise` reads; a state written before verification profiles holds the plain
        {"loss", "benchmark"} of the campaign's one profile, which it reads too); {} when none was stored."""
        row = self.db.one("SELECT noise FROM campaign_noise WHERE campaign_id=?", (campaign_id,))
        return json.loads(row[0]) if row else {}

    def baseline(self, campaign_id: str, profile: str) -> ev.ResultsReady | None:
        """The campaign's reference baseline: the first baseline the campaign named, when it has results;
        else the earliest valid baseline result (deterministic on replay: by occurred_at, then event_id)."""
        row = self.db.one("SELECT baselines FROM campaigns WHERE campaign_id=?", (campaign_id,))
        preferred = (json.loads(row[0]) or [None])[0] if row else None
        found = self.db.one(
            "SELECT body FROM results WHERE campaign_id=? AND profile=? AND role='baseline' AND valid=1 "
            "ORDER BY (name = ?) DESC, occurred_at, event_id LIMIT 1", (campaign_id, profile, preferred or ""))
        return ev.ResultsReady.model_validate_json(found[0]) if found else None

    def proposal(self, experiment_id: str, revision: int | None = None) -> dict | None:
        row = None
        if revision is not None:
            row = self.db.one("SELECT name, code, motivation, role FROM proposals WHERE experiment_id=? "
                              "AND revision=?", (experiment_id, revision))
        if row is None:
            row = self.db.one("SELECT name, code, motivation, role FROM proposals WHERE experiment_id=? "
                              "ORDER BY revision DESC LIMIT 1", (experiment_id,))
        return dict(zip(("name", "code", "motivation", "role"), row)) if row else None

    def close(self) -> None:
        self.db.close()
