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
    # a reader (the UI's embedding map) opens what exists, creates nothing, and reads every vector back
    assert VectorStore.existing(milvus_server, "t_absent") is None
    assert not VectorStore(milvus_server, "t_shared", dim=4).client.has_collection("t_absent")
    (rec,) = VectorStore.existing(milvus_server, "t_shared").records()
    assert rec["id"] == "x" and rec["vector"] == pytest.approx(unit(1, 0, 0, 0))


def test_vector_store_on_local_db_file(tmp_path):
    _exercise(VectorStore(str(tmp_path / "v.db"), "t_file", dim=4))
    VectorStore(str(tmp_path / "v.db"), "t_dim", dim=4)
    with pytest.raises(ValueError, match="holds 4-d vectors, not 8-d"):
        VectorStore(str(tmp_path / "v.db"), "t_dim", dim=8)


def test_local_embedder_is_normalised_384d_and_cached():
    from services.common import embeddings
    from services.common.embeddings import Embedder

    e = Embedder.from_settings(None)
    a, b, c = e.embed(["fails associative recall", "cannot retrieve stored key-value pairs", "the cat sat"])
    assert e.dim == 384 and len(a) == 384
    assert sum(x * x for x in a) == pytest.approx(1.0, abs=1e-5)
    dot = lambda u, v: sum(x * y for x, y in zip(u, v))  # noqa: E731
    assert dot(a, b) > dot(a, c) + 0.1                     # related sentences are closer
    assert embeddings._local_model is not None and Embedder.from_settings(None).embed([]) == []


def test_openai_compatible_embeddings_endpoint():
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from services.common.embeddings import Embedder
    from services.common.settings import Settings

    seen = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, body))
            data = [{"object": "embedding", "index": i, "embedding": [3.0, 4.0, float(i)]}
                    for i, _ in enumerate(body["input"])]
            payload = json.dumps({"object": "list", "data": data, "model": body["model"],
                                  "usage": {"prompt_tokens": 1, "total_tokens": 1}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = Settings(embeddings_base_url=f"http://127.0.0.1:{server.server_address[1]}/v1",
                            embeddings_model="text-embedding-test", llm_api_key="k")
        e = Embedder.from_settings(settings)
        vecs = e.embed(["a", "b"])
        assert vecs[0] == pytest.approx([0.6, 0.8, 0.0]) and e.dim == 3
        assert seen[0][0] == "/v1/embeddings" and seen[0][1]["model"] == "text-embedding-test"
        assert seen[0][1]["input"] == ["a", "b"]
    finally:
        server.shutdown()
        server.server_close()


def _start_milvus(data, port):
    child = milvus_process(data, port)
    child.start()
    wait_port(port, 60, child.proc, "milvus-lite server")
    return child


def test_a_restarted_server_serves_its_collections(tmp_path):
    """Issue 27: milvus-lite comes back with every collection released. A store opened after the restart loads
    it; a store opened before (a service that outlived the server) loads it on its next search."""
    import signal

    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    child = _start_milvus(tmp_path, port)
    try:
        before = VectorStore(uri, "restart_me", dim=4)
        before.upsert(["a", "b"], [unit(1, 0, 0, 0), unit(0, 1, 0, 0)], [{"n": 0}, {"n": 1}])
        stop_pid(child.pid, signal.SIGKILL)       # kill -9: no chance to save anything it held in memory
        child = _start_milvus(tmp_path, port)
        assert [h.id for h in before.search(unit(1, 0.1, 0, 0), k=1)] == ["a"]   # the old client, reloaded
        vectors.close_all()                       # a fresh process: a new client opens the store
        stop_pid(child.pid, signal.SIGTERM)
        child = _start_milvus(tmp_path, port)
        after = VectorStore(uri, "restart_me", dim=4)
        state = after.client.get_load_state("restart_me")["state"]
        assert str(state).endswith("Loaded"), state
        assert [h.id for h in after.search(unit(0, 1, 0.1, 0), k=1)] == ["b"]
        assert after.count() == 2
    finally:
        vectors.close_all()
        stop_pid(child.pid)
