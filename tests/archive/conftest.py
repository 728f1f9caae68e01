"""Fixtures of the archive tests: a store per backend (SQLite always; Cassandra when configured)."""
import os
import uuid

import pytest

from services.archive.storage.sqlite import SQLiteStore

# "cassandra-fake": the Cassandra backend's own code over an in-memory CQL fake (tests/archive/cql_fake.py);
# "cassandra": a real cluster, only when ARCHLAB_CASSANDRA_HOSTS is set.
BACKENDS = ["sqlite", "cassandra-fake", "cassandra"]


def make_store(backend: str, tmp_path, name: str = "archive"):
    if backend == "sqlite":
        return SQLiteStore(tmp_path / f"{name}.sqlite")
    if backend == "cassandra-fake":
        from services.archive.storage.cassandra import CassandraStore
        from tests.archive.cql_fake import FakeSession

        return CassandraStore([], keyspace="archlab_fake", session=FakeSession())
    hosts = os.environ.get("ARCHLAB_CASSANDRA_HOSTS")
    if not hosts:
        pytest.skip("Cassandra backend: set ARCHLAB_CASSANDRA_HOSTS to a reachable cluster "
                    "(no Cassandra server can run on this machine)")
    from services.archive.storage import open_store
    from services.common.settings import Settings

    # a keyspace per test, dropped at the end; consistency ONE suits a one-node test cluster
    return open_store(Settings(storage="cassandra", cassandra_hosts=hosts,
                               cassandra_keyspace=f"archlab_test_{uuid.uuid4().hex[:12]}",
                               cassandra_consistency=os.environ.get("ARCHLAB_CASSANDRA_CONSISTENCY", "ONE")))


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    s = make_store(request.param, tmp_path)
    yield s
    if request.param.startswith("cassandra"):
        s.drop_keyspace()
    s.close()


@pytest.fixture(params=BACKENDS)
def store_factory(request, tmp_path):
    """Makes fresh stores of one backend (for comparing a live build with a replay)."""
    made = []

    def factory(name: str):
        s = make_store(request.param, tmp_path, name)
        made.append(s)
        return s

    yield factory
    for s in made:
        if request.param.startswith("cassandra"):
            s.drop_keyspace()
        s.close()
