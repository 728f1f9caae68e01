"""A small vector store over pymilvus `MilvusClient`: one collection, string ids, cosine similarity.

    store = VectorStore(uri, "cognitions", dim=384)
    store.upsert(ids, vectors, payloads)             # payload: a flat dict of JSON-able values
    hits = store.search(vector, k=5, filter='origin == "seed"')
    hits[0].id, hits[0].score, hits[0].payload       # score: cosine similarity, higher = closer

`uri` is any of
- `http://127.0.0.1:PORT`: a milvus-lite server (`milvus-lite server ...`, started by `archlab up`)
  or a Milvus standalone/cluster; many processes share it;
- a path ending in `.db`: milvus-lite in-process, one process per file (tools and tests).

Opening a store loads its collection (and checks the load took): a Milvus server restarts with every
collection released. The collection is created on first use with a VARCHAR primary key `id`, a FLOAT_VECTOR `vector`
and dynamic fields: every payload key becomes a field, so filters read naturally
(`campaign_id == "c1" and origin in ["seed", "import"]`). Payload keys `id`, `vector` and
`score` are reserved. Writes are read back with Strong consistency, so a search right after an
upsert sees it.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from pymilvus import DataType, MilvusClient, MilvusException

RESERVED = ("id", "vector", "score")
# the researcher's novelty memory: one record per accepted proposal, its motivation's embedding (the UI maps it)
NOVELTY_COLLECTION = "researcher_motivations"
RELEASED = 101   # MilvusException code: "collection ... is in state 'released'; call load() before search"
RECONNECT_S = 60.0   # how long a call waits for a restarted server
UNAVAILABLE = 2  # MilvusException code: "Fail connecting to server ...": the server restarted or is away
MAX_ID_LEN = 512

# The server (milvus-lite's gRPC server, like gRPC's defaults) refuses pings more often than every 5 minutes
# and answers with GOAWAY "too_many_pings"; pymilvus pings every 10 s, even with no call in flight. Ping only
# during calls, and less often than the server's minimum.
GRPC_OPTIONS = {"grpc.keepalive_time_ms": 330_000, "grpc.keepalive_timeout_ms": 20_000,
                "grpc.keepalive_permit_without_calls": False}

_clients: dict[str, MilvusClient] = {}
_clients_lock = threading.Lock()


@dataclass
class Hit:
    id: str
    score: float
    payload: dict = field(default_factory=dict)


def normalise_uri(uri: str) -> str:
    """A bare `host:port` becomes `http://host:port`; a `.db` path is made absolute."""
    if uri.endswith(".db"):
        path = Path(uri).expanduser().resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return str(path)
    if "://" not in uri:
        return f"http://{uri}"
    return uri


def _client(uri: str) -> MilvusClient:
    # One client per URI per process: milvus-lite allows one opener of a .db file per process.
    with _clients_lock:
        if uri not in _clients:
            _clients[uri] = MilvusClient(uri=uri, **({} if uri.endswith(".db") else {"grpc_options": GRPC_OPTIONS}))
        return _clients[uri]


def _reconnect(uri: str, timeout_s: float = 10.0) -> MilvusClient:
    """A new client for `uri` in place of the cached one, whose channel gave up on a server that went away."""
    with _clients_lock:
        old = _clients.pop(uri, None)
    if old is not None:
        try:
            old.close()
        except Exception:  # noqa: BLE001 - a dead channel
            pass
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return _client(uri)
        except MilvusException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def close_all() -> None:
    """Close every cached client (tests that stop a server call this)."""
    with _clients_lock:
        for client in _clients.values():
            try:
                client.close()
            except Exception:  # noqa: BLE001 - closing a dead connection is best effort
                pass
        _clients.clear()


class VectorStore:
    def __init__(self, uri: str, collection: str, dim: int):
        self.uri = normalise_uri(str(uri))
        self.collection = collection
        self.dim = int(dim)
        self.client = _client(self.uri)
        self._reloading(self._ensure)

    @classmethod
    def existing(cls, uri: str, collection: str) -> "VectorStore | None":
        """The collection if it exists (loaded), else None: a reader that never creates one."""
        client = _client(normalise_uri(str(uri)))
        if not client.has_collection(collection):
            return None
        fields = client.describe_collection(collection).get("fields", [])
        dims = [int((f.get("params") or {}).get("dim", 0)) for f in fields if f.get("name") == "vector"]
        return cls(uri, collection, dims[0]) if dims and dims[0] else None

    def _ensure(self) -> None:
        if self.client.has_collection(self.collection):
            self._check_dim()
            self._load()
            return
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=MAX_ID_LEN)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
        try:
            self.client.create_collection(self.collection, schema=schema, consistency_level="Strong")
        except Exception:  # noqa: BLE001 - another process created it first: use theirs
            if not self.client.has_collection(self.collection):
                raise
            self._check_dim()
            self._load()
            return
        index = self.client.prepare_index_params()
        index.add_index(field_name="vector", index_type="AUTOINDEX", metric_type="COSINE")
        # sync=False: waiting for the index asks the server for AllocTimestamp, which milvus-lite lacks
        # (a logged traceback and ~1 s of retries); the index on an empty collection is ready at once.
        self.client.create_index(self.collection, index, sync=False)
        self._load()

    def _load(self) -> None:
        """Load the collection and check it took: a Milvus server (milvus-lite too) starts with every existing
        collection released, and a search on a released one fails (issue 27: a restarted lab hung on it)."""
        self.client.load_collection(self.collection)
        state = self.client.get_load_state(self.collection).get("state")
        if str(state).rsplit(".", 1)[-1] != "Loaded":
            raise RuntimeError(f"collection {self.collection!r} at {self.uri} did not load (state {state})")

    def _reloading(self, call):
        """`call()`, retried while the server is away (reconnecting) or has the collection released (loading it
        first): a Milvus server that is starting, or that restarted under a running service."""
        deadline, load_first = time.monotonic() + RECONNECT_S, False
        while True:
            try:
                if load_first:
                    self._load()
                return call()
            except MilvusException as e:
                released = e.code == RELEASED or "released" in str(e)
                if (e.code != UNAVAILABLE and not released) or time.monotonic() > deadline:
                    raise
                load_first = load_first or released
                if e.code == UNAVAILABLE:
                    time.sleep(0.5)
                    self.client = _reconnect(self.uri)

    def _check_dim(self) -> None:
        fields = self.client.describe_collection(self.collection).get("fields", [])
        dims = [int(f.get("params", {}).get("dim", 0)) for f in fields if f.get("name") == "vector"]
        if dims and dims[0] != self.dim:
            raise ValueError(f"collection {self.collection!r} at {self.uri} holds {dims[0]}-d vectors, not {self.dim}-d "
                             f"(another embedding model?): use another collection name or drop it")

    def upsert(self, ids: list[str], vectors: list[list[float]], payloads: list[dict] | None = None) -> int:
        payloads = payloads if payloads is not None else [{} for _ in ids]
        if not (len(ids) == len(vectors) == len(payloads)):
            raise ValueError(f"upsert: {len(ids)} ids, {len(vectors)} vectors, {len(payloads)} payloads")
        if not ids:
            return 0
        rows = []
        for id_, vec, payload in zip(ids, vectors, payloads):
            if len(vec) != self.dim:
                raise ValueError(f"vector of id {id_!r} has dimension {len(vec)}, collection expects {self.dim}")
            bad = [k for k in payload if k in RESERVED]
            if bad:
                raise ValueError(f"payload keys {bad} are reserved")
            rows.append({**payload, "id": str(id_), "vector": [float(x) for x in vec]})
        self.client.upsert(self.collection, rows)
        return len(rows)

    def search(self, vector: list[float], k: int = 5, filter: str | None = None) -> list[Hit]:
        if k <= 0:
            return []
        res = self._reloading(lambda: self.client.search(
            self.collection, data=[[float(x) for x in vector]], limit=k, filter=filter or "", output_fields=["*"],
            search_params={"metric_type": "COSINE"}))
        hits = []
        for row in res[0] if res else []:
            entity = dict(row.get("entity") or {})
            entity.pop("vector", None)
            hit_id = str(row.get("id", entity.pop("id", "")))
            entity.pop("id", None)
            hits.append(Hit(id=hit_id, score=float(row["distance"]), payload=entity))
        return hits

    def get(self, ids: list[str]) -> list[dict]:
        """The payloads of the given ids (missing ids are left out), each with its `id`."""
        if not ids:
            return []
        rows = self._reloading(lambda: self.client.get(self.collection, ids=[str(i) for i in ids], output_fields=["*"]))
        return [{k: v for k, v in row.items() if k != "vector"} for row in rows]

    def records(self, limit: int = 16_384) -> list[dict]:
        """Every record (up to `limit`), each with its `id`, `vector` and payload."""
        return self._reloading(lambda: self.client.query(self.collection, filter="", output_fields=["*"], limit=limit))

    def delete(self, ids: list[str]) -> None:
        if ids:
            self.client.delete(self.collection, ids=[str(i) for i in ids])

    def count(self) -> int:
        if not self.client.has_collection(self.collection):
            return 0
        res = self._reloading(lambda: self.client.query(self.collection, filter="", output_fields=["count(*)"]))
        return int(res[0]["count(*)"]) if res else 0

    def drop(self) -> None:
        if self.client.has_collection(self.collection):
            self.client.drop_collection(self.collection)
