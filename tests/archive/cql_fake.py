"""A tiny in-memory stand-in for a Cassandra session, for tests only (it is not Cassandra).

It understands the statement shapes the archive's Cassandra backend uses (CREATE TABLE from
schema.cql, INSERT, DELETE, SELECT ... WHERE ... LIMIT) and enforces the rules that make a query
legal in Cassandra without ALLOW FILTERING: a WHERE must fix the whole partition key, clustering
restrictions must be a prefix, primary-key values may not be null. Rows come back in clustering
order. This runs the backend's own logic (index moves, pool re-ranking) where no server exists.
"""
from __future__ import annotations

import re
from collections import namedtuple
from dataclasses import dataclass


@dataclass
class Table:
    columns: list[str]
    partition: list[str]
    clustering: list[str]
    descending: set[str]
    rows: dict   # partition key -> {full primary key -> row}


class Result(list):
    def one(self):
        return self[0] if self else None


@dataclass(frozen=True)
class Prepared:
    text: str


class FakeSession:
    def __init__(self):
        self.tables: dict[str, Table] = {}

    def prepare(self, text: str) -> Prepared:
        self._parse(text)   # fail at prepare time, like a server would
        return Prepared(text)

    def set_keyspace(self, keyspace: str) -> None:
        pass

    def execute(self, stmt, args=()):
        text = stmt.text if isinstance(stmt, Prepared) else stmt
        kind, m = self._parse(text)
        return getattr(self, "_" + kind)(m, list(args))

    # ---------------------------------------------------------------- parsing
    _PATTERNS = {
        "create_keyspace": r"CREATE KEYSPACE",
        "drop_keyspace": r"DROP KEYSPACE",
        "create_table": r"CREATE TABLE IF NOT EXISTS (?:\w+\.)?(\w+) \((.*?)\)(?: WITH CLUSTERING ORDER BY \((.*)\))?$",
        "insert": r"INSERT INTO (\w+) \(([^)]*)\) VALUES \(([^)]*)\)$",
        "delete": r"DELETE FROM (\w+) WHERE (.*)$",
        "select": r"SELECT (.*?) FROM (\w+)(?: WHERE (.*?))?(?: LIMIT \?)?$",
    }

    def _parse(self, text: str):
        flat = " ".join(text.split())
        for kind, pattern in self._PATTERNS.items():
            m = re.match(pattern, flat)
            if m:
                return kind, m
        raise ValueError(f"unsupported statement: {flat}")

    # ---------------------------------------------------------------- statements
    def _create_keyspace(self, m, args):
        return Result()

    def _drop_keyspace(self, m, args):
        self.tables.clear()
        return Result()

    def _create_table(self, m, args):
        name, body, order = m.group(1), m.group(2), m.group(3)
        pk = re.search(r"PRIMARY KEY \((.*)\)\s*$", body)
        inline = re.search(r"(\w+) \w+ PRIMARY KEY", body)
        if inline:
            partition, clustering = [inline.group(1)], []
        else:
            key = pk.group(1)
            part = re.match(r"\(([^)]*)\)\s*(?:,\s*(.*))?$", key)
            if part:
                partition = [c.strip() for c in part.group(1).split(",")]
                clustering = [c.strip() for c in (part.group(2) or "").split(",") if c.strip()]
            else:
                cols = [c.strip() for c in key.split(",")]
                partition, clustering = cols[:1], cols[1:]
        columns = [c.strip().split()[0] for c in re.sub(r"PRIMARY KEY \(.*\)\s*$", "", body).split(",")
                   if c.strip()]
        descending = {c.split()[0] for c in (order or "").split(",") if c.strip().endswith("DESC")}
        if name not in self.tables:
            self.tables[name] = Table(columns, partition, clustering, descending, {})
        return Result()

    def _key(self, t: Table, row: dict) -> tuple:
        key = tuple(row.get(c) for c in t.partition + t.clustering)
        assert None not in key, f"null in primary key {t.partition + t.clustering}: {row}"
        return key

    def _insert(self, m, args):
        t = self.tables[m.group(1)]
        cols = [c.strip() for c in m.group(2).split(",")]
        assert set(cols) <= set(t.columns), cols
        row = dict(zip(cols, args))
        key = self._key(t, row)
        part = t.rows.setdefault(key[:len(t.partition)], {})
        part[key] = {**part.get(key, {c: None for c in t.columns}), **row}
        return Result()

    def _where(self, t: Table, clause: str | None, args: list) -> list[dict]:
        conds = {}
        if clause:
            for part in clause.split(" AND "):
                col = re.match(r"(\w+)\s*=\s*\?", part.strip()).group(1)
                conds[col] = args.pop(0)
            assert set(t.partition) <= set(conds), f"WHERE {clause} does not fix partition key {t.partition}"
            rest = [c for c in conds if c not in t.partition]
            assert rest == t.clustering[:len(rest)], f"clustering restriction {rest} is not a prefix of {t.clustering}"
        if conds:
            candidates = t.rows.get(tuple(conds[c] for c in t.partition), {}).values()
        else:
            candidates = [r for part in t.rows.values() for r in part.values()]
        rows = [r for r in candidates if all(r[c] == v for c, v in conds.items())]
        for col in reversed(t.clustering):
            rows.sort(key=lambda r: r[col], reverse=col in t.descending)
        return rows

    def _delete(self, m, args):
        t = self.tables[m.group(1)]
        for row in self._where(t, m.group(2), args):
            key = self._key(t, row)
            del t.rows[key[:len(t.partition)]][key]
        return Result()

    def _select(self, m, args):
        t = self.tables[m.group(2)]
        cols = [c.strip() for c in m.group(1).split(",")]
        assert set(cols) <= set(t.columns), cols
        rows = self._where(t, m.group(3), args)
        if args:   # LIMIT ?
            rows = rows[: args.pop(0)]
        Row = namedtuple("Row", cols)
        return Result(Row(*(r[c] for c in cols)) for r in rows)
