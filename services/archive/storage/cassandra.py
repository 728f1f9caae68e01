"""The scale-out backend: Cassandra through cassandra-driver, one table per query.

The tables are in infra/cassandra/schema.cql (applied at connect when `create_schema=True`).
Every statement is prepared once; the consistency level comes from settings
(ARCHLAB_CASSANDRA_CONSISTENCY, default LOCAL_QUORUM). Writes go out at once (there is nothing to
roll back): every write of the projection is an idempotent upsert keyed by an id, and the
processed mark comes last, so an event interrupted half-way is simply applied again.

No Cassandra server can run on the dev box; the contract tests run this backend when
ARCHLAB_CASSANDRA_HOSTS is set (docs/archive.md).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from services.archive.storage.base import Record, Store

SCHEMA_FILE = Path(__file__).resolve().parents[3] / "infra" / "cassandra" / "schema.cql"


def _dumps(doc: Record) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def schema_statements(keyspace: str, path: Path = SCHEMA_FILE) -> list[str]:
    """The CQL statements of schema.cql with the keyspace substituted, comments dropped."""
    text = "\n".join(line for line in path.read_text().splitlines() if not line.strip().startswith("--"))
    text = re.sub(r"\barchlab\.", f"{keyspace}.", text)
    text = re.sub(r"(KEYSPACE IF NOT EXISTS )archlab\b", rf"\g<1>{keyspace}", text)
    return [s.strip() for s in text.split(";") if s.strip()]


# Every statement the backend runs, prepared once per session (tests check them against schema.cql).
STATEMENTS: dict[str, str] = {
    "is_processed": "SELECT event_id FROM processed_events WHERE event_id=?",
    "mark": "INSERT INTO processed_events (event_id, event_type, occurred_at) VALUES (?,?,?)",
    "pending_put": "INSERT INTO pending_local (event_id, payload) VALUES (?,?)",
    "pending_all": "SELECT event_id, payload FROM pending_local",
    "pending_del": "DELETE FROM pending_local WHERE event_id=?",
    "exp_get": "SELECT doc FROM experiments WHERE experiment_id=?",
    "exp_keys": "SELECT campaign_id, created_at, parent_id FROM experiments WHERE experiment_id=?",
    "exp_put": "INSERT INTO experiments (experiment_id, campaign_id, parent_id, created_at, name, role, "
        "status, fitness, doc) VALUES (?,?,?,?,?,?,?,?,?)",
    "exp_all": "SELECT doc FROM experiments",
    "byc_put": "INSERT INTO experiments_by_campaign (campaign_id, created_at, experiment_id) VALUES (?,?,?)",
    "byc_del": "DELETE FROM experiments_by_campaign WHERE campaign_id=? AND created_at=? AND experiment_id=?",
    "byc_get": "SELECT experiment_id FROM experiments_by_campaign WHERE campaign_id=?",
    "child_put": "INSERT INTO children_by_parent (parent_id, experiment_id) VALUES (?,?)",
    "child_del": "DELETE FROM children_by_parent WHERE parent_id=? AND experiment_id=?",
    "child_get": "SELECT experiment_id FROM children_by_parent WHERE parent_id=?",
    "att_put": "INSERT INTO attempts_by_experiment (experiment_id, occurred_at, event_id, kind, doc) "
        "VALUES (?,?,?,?,?)",
    "att_get": "SELECT doc FROM attempts_by_experiment WHERE experiment_id=?",
    "att_all": "SELECT doc FROM attempts_by_experiment",
    "score_put": "INSERT INTO scores_by_experiment (experiment_id, occurred_at, event_id, campaign_id, "
        "scheme, fitness, doc) VALUES (?,?,?,?,?,?,?)",
    "score_get": "SELECT doc FROM scores_by_experiment WHERE experiment_id=?",
    "score_all": "SELECT doc FROM scores_by_experiment",
    "camp_get": "SELECT doc FROM campaigns WHERE campaign_id=?",
    "camp_put": "INSERT INTO campaigns (campaign_id, doc) VALUES (?,?)",
    "camp_all": "SELECT doc FROM campaigns",
    "cog_get": "SELECT doc FROM cognitions WHERE cognition_id=?",
    "cog_put": "INSERT INTO cognitions (cognition_id, title, doc) VALUES (?,?,?)",
    "cog_all": "SELECT doc FROM cognitions",
    "member_get": "SELECT fitness FROM pool_membership WHERE campaign_id=? AND scheme=? AND experiment_id=?",
    "member_put": "INSERT INTO pool_membership (campaign_id, scheme, experiment_id, fitness) VALUES (?,?,?,?)",
    "member_del": "DELETE FROM pool_membership WHERE campaign_id=? AND scheme=? AND experiment_id=?",
    "member_all": "SELECT campaign_id, scheme, experiment_id, fitness FROM pool_membership",
    "pool_put": "INSERT INTO elite_pool_by_campaign (campaign_id, scheme, fitness, experiment_id) "
        "VALUES (?,?,?,?)",
    "pool_del": "DELETE FROM elite_pool_by_campaign WHERE campaign_id=? AND scheme=? AND fitness=? "
        "AND experiment_id=?",
    "pool_top": "SELECT experiment_id, fitness FROM elite_pool_by_campaign WHERE campaign_id=? AND scheme=? "
        "LIMIT ?",
    "processed_all": "SELECT event_id, event_type, occurred_at FROM processed_events",
}


class CassandraStore(Store):
    def __init__(self, hosts: list[str], keyspace: str = "archlab", consistency: str = "LOCAL_QUORUM", *,
                 port: int = 9042, create_schema: bool = True, read_only: bool = False, session=None):
        """`session`: an already connected session (tests pass a CQL fake; `hosts` is then unused)."""
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,47}", keyspace):
            raise ValueError(f"invalid keyspace name {keyspace!r}")
        self.read_only = read_only
        self.keyspace = keyspace
        self._cluster = None
        if session is None:
            from cassandra import ConsistencyLevel
            from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile

            profile = ExecutionProfile(consistency_level=ConsistencyLevel.name_to_value[consistency.upper()])
            self._cluster = Cluster(hosts, port=port, execution_profiles={EXEC_PROFILE_DEFAULT: profile})
            session = self._cluster.connect()
        self._session = session
        if create_schema and not read_only and SCHEMA_FILE.exists():   # else applied by `cqlsh -f schema.cql`
            for stmt in schema_statements(keyspace):
                self._session.execute(stmt)
        self._session.set_keyspace(keyspace)
        self._q = {name: self._session.prepare(cql) for name, cql in STATEMENTS.items()}
        self._campaigns: dict[str, Record | None] = {}   # few, small, read on every write: cached (one writer)

    def _x(self, name: str, *args):
        return self._session.execute(self._q[name], args)

    # ---------------------------------------------------------------- event bookkeeping
    def is_processed(self, event_id: str) -> bool:
        return self._x("is_processed", event_id).one() is not None

    def mark_processed(self, event_id: str, event_type: str, occurred_at: str, *,
                       local_payload: str | None = None) -> None:
        if local_payload is not None:
            self._x("pending_put", event_id, local_payload)
        self._x("mark", event_id, event_type, occurred_at)

    def pending_local(self) -> list[str]:
        return [r.payload for r in sorted(self._x("pending_all"), key=lambda r: r.event_id)]

    def confirm(self, event_id: str) -> None:
        self._x("pending_del", event_id)

    # ---------------------------------------------------------------- experiments
    def get_experiment(self, experiment_id: str) -> Record | None:
        row = self._x("exp_get", experiment_id).one()
        return json.loads(row.doc) if row else None

    def put_experiment(self, doc: Record) -> None:
        exp_id = doc["experiment_id"]
        old = self._x("exp_keys", exp_id).one()
        campaign, created, parent = doc.get("campaign_id"), doc.get("created_at") or "", doc.get("parent_id")
        if old is not None and old.campaign_id and (old.campaign_id, old.created_at) != (campaign, created):
            self._x("byc_del", old.campaign_id, old.created_at or "", exp_id)
        if old is not None and old.parent_id and old.parent_id != parent:
            self._x("child_del", old.parent_id, exp_id)
        self._x("exp_put", exp_id, campaign, parent, created, doc.get("name"), doc.get("role"), doc.get("status"),
                doc.get("fitness"), _dumps(doc))
        if campaign:
            self._x("byc_put", campaign, created, exp_id)
        if parent:
            self._x("child_put", parent, exp_id)

    def _docs(self, ids: list[str]) -> list[Record]:
        return [d for d in (self.get_experiment(i) for i in ids) if d is not None]

    def experiments(self, campaign_id: str | None = None) -> list[Record]:
        if campaign_id is None:
            docs = [json.loads(r.doc) for r in self._x("exp_all")]
            return sorted(docs, key=lambda d: (d.get("created_at") or "", d["experiment_id"]))
        return self._docs([r.experiment_id for r in self._x("byc_get", campaign_id)])

    def children(self, parent_id: str) -> list[Record]:
        return self._docs([r.experiment_id for r in self._x("child_get", parent_id)])

    # ---------------------------------------------------------------- attempts and scores
    def put_attempt(self, rec: Record) -> None:
        self._x("att_put", rec["experiment_id"], rec["occurred_at"], rec["event_id"], rec["kind"], _dumps(rec))

    def attempts(self, experiment_id: str) -> list[Record]:
        return [json.loads(r.doc) for r in self._x("att_get", experiment_id)]

    def put_score(self, rec: Record) -> None:
        self._x("score_put", rec["experiment_id"], rec["occurred_at"], rec["event_id"], rec["campaign_id"],
                rec["scheme"], rec["fitness"], _dumps(rec))

    def scores(self, experiment_id: str) -> list[Record]:
        return [json.loads(r.doc) for r in self._x("score_get", experiment_id)]

    # ---------------------------------------------------------------- campaigns and cognitions
    def get_campaign(self, campaign_id: str) -> Record | None:
        if campaign_id not in self._campaigns or self.read_only:
            row = self._x("camp_get", campaign_id).one()
            self._campaigns[campaign_id] = json.loads(row.doc) if row else None
        return self._campaigns[campaign_id]

    def put_campaign(self, doc: Record) -> None:
        self._x("camp_put", doc["campaign_id"], _dumps(doc))
        self._campaigns[doc["campaign_id"]] = doc

    def campaigns(self) -> list[Record]:
        return sorted((json.loads(r.doc) for r in self._x("camp_all")), key=lambda d: d["campaign_id"])

    def get_cognition(self, cognition_id: str) -> Record | None:
        row = self._x("cog_get", cognition_id).one()
        return json.loads(row.doc) if row else None

    def put_cognition(self, doc: Record) -> None:
        self._x("cog_put", doc["cognition_id"], doc.get("title", ""), _dumps(doc))

    # ---------------------------------------------------------------- elite pool index
    def set_pool_entry(self, campaign_id: str, scheme: str, experiment_id: str, fitness: float | None) -> None:
        old = self._x("member_get", campaign_id, scheme, experiment_id).one()
        if old is not None and old.fitness != fitness:
            self._x("pool_del", campaign_id, scheme, old.fitness, experiment_id)
        if fitness is None:
            self._x("member_del", campaign_id, scheme, experiment_id)
        else:
            self._x("pool_put", campaign_id, scheme, fitness, experiment_id)
            self._x("member_put", campaign_id, scheme, experiment_id, fitness)

    def top_by_fitness(self, campaign_id: str, scheme: str, limit: int) -> list[tuple[str, float]]:
        return [(r.experiment_id, r.fitness) for r in self._x("pool_top", campaign_id, scheme, limit)]

    # ---------------------------------------------------------------- whole read model
    def dump(self) -> dict[str, list[Record]]:
        def by(key, rows):
            return sorted(rows, key=key)
        return {
            "experiments": by(lambda d: d["experiment_id"], (json.loads(r.doc) for r in self._x("exp_all"))),
            "attempts": by(lambda d: d["event_id"], (json.loads(r.doc) for r in self._x("att_all"))),
            "scores": by(lambda d: d["event_id"], (json.loads(r.doc) for r in self._x("score_all"))),
            "campaigns": self.campaigns(),
            "cognitions": by(lambda d: d["cognition_id"], (json.loads(r.doc) for r in self._x("cog_all"))),
            "pool": by(lambda d: (d["campaign_id"], d["scheme"], d["experiment_id"]),
                       (dict(campaign_id=r.campaign_id, scheme=r.scheme, experiment_id=r.experiment_id,
                             fitness=r.fitness) for r in self._x("member_all"))),
            "processed": by(lambda d: d["event_id"],
                            (dict(event_id=r.event_id, event_type=r.event_type, occurred_at=r.occurred_at)
                             for r in self._x("processed_all"))),
        }

    def commit(self) -> None:
        """Writes are already sent (Cassandra has no multi-partition transactions)."""

    def rollback(self) -> None:
        self._campaigns.clear()   # the cache may hold a document the failed event changed

    def close(self) -> None:
        if self._cluster is not None:
            self._cluster.shutdown()

    def drop_keyspace(self) -> None:
        """Tests only: remove everything this store wrote."""
        self._session.execute(f"DROP KEYSPACE IF EXISTS {self.keyspace}")
