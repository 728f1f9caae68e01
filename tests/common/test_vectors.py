"""The vector-store adapter against a real milvus-lite: a server on a free port, and a .db file."""
import math

import pytest

from services.common import vectors
from services.common.embedded import free_port, milvus_process, stop_pid, wait_port
from services.common.vectors import VectorStore


@pytest.fixture(scope="module")
def milvus_server(tmp_path_factory):
    data = tmp_path_factory.mktemp("milvus")
    port = free_port()
    child = milvus_process(data, port)
    child.start()
    try:
        wait_port(port, 60, child.proc, "milvus-lite server")
        yield f"http://127.0.0.1:{port}"
    finally:
        vectors.close_all()
        stop_pid(child.pid)


def unit(*xs):
    n = math.sqrt(sum(x * x for x in xs))
    return [x / n for x in xs]


def _exercise(store: VectorStore):
    ids = ["a", "b", "c", "d"]
    vecs = [unit(1, 0, 0, 0), unit(1, 1, 0, 0), unit(0, 0, 1, 0), unit(0, 0, 0, 1)]
    payloads = [{"campaign_id": "c1", "n": i, "text": t} for i, t in enumerate("wxyz")]
    payloads[3]["campaign_id"] = "c2"
    assert store.upsert(ids, vecs, payloads) == 4
    assert store.count() == 4

    hits = store.search(unit(1, 0.2, 0, 0), k=2)
    assert [h.id for h in hits] == ["a", "b"]
    assert hits[0].score == pytest.approx(1 / math.sqrt(1.04), abs=1e-4)  # cosine similarity
    assert hits[0].score > hits[1].score
    assert hits[0].payload == {"campaign_id": "c1", "n": 0, "text": "w"}

    # filter on payload fields
    hits = store.search(unit(0, 0, 0.1, 1), k=3, filter='campaign_id == "c1"')
    assert "d" not in [h.id for h in hits] and hits[0].id == "c"

    # upsert replaces, does not duplicate
    store.upsert(["a"], [unit(0, 0, 0, 1)], [{"campaign_id": "c3", "n": 9, "text": "w2"}])
    assert store.count() == 4
    assert store.search(unit(0, 0, 0, 1), k=1, filter='campaign_id == "c3"')[0].payload["n"] == 9

    with pytest.raises(ValueError, match="dimension"):
        store.upsert(["e"], [[1.0, 0.0]], [{}])
    with pytest.raises(ValueError, match="reserved"):
        store.upsert(["e"], [unit(1, 0, 0, 0)], [{"score": 1}])

    store.drop()
    assert store.count() == 0


def test_vector_store_on_milvus_lite_server(milvus_server):
    _exercise(VectorStore(milvus_server, "t_server", dim=4))
    # a second store object (another service) sees the same collection
    VectorStore(milvus_server, "t_shared", dim=4).upsert(["x"], [unit(1, 0, 0, 0)], [{}])
    assert VectorStore(milvus_server.removeprefix("http://"), "t_shared", dim=4).count() == 1


def test_vector_store_on_local_db_file(tmp_path):
    _exercise(VectorStore(str(tmp_path / "v.db"), "t_file", dim=4))
    VectorStore(str(tmp_path / "v.db"), "t_dim", dim=4)
    with pytest.raises(ValueError, match="holds 4-d vectors, not 8-d"):
        VectorStore(str(tmp_path / "v.db"), "t_dim", dim=8)
