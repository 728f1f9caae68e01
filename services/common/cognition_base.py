"""The cognition base: a Milvus collection of cognitions, searched by their trigger patterns.

    base = CognitionBase.from_settings(settings)        # or CognitionBase(store, embedder)
    base.upsert(entries)                                 # the cognition service's handler does this
    hits = base.search("poor long-range recall, fails associative recall", k=5)

Why an in-process library over the shared Milvus server, not a request/reply service: retrieval
is a read (embed the query, ~10 ms; top-k search, ~5 ms) that the analyst needs inline, and Kafka
is a log, not an RPC transport. The Milvus server (milvus-lite started by `archlab up`, or Milvus
at scale) is the shared component; every reader opens the collection by URI. Writes go through
CognitionIngested events and the cognition service, so the base can be rebuilt by replay.
"""
from __future__ import annotations

from services.common.cognition_model import TEXT_FIELDS, Cognition, CognitionEntry
from services.common.embeddings import Embedder
from services.common.vectors import VectorStore

DEFAULT_MIN_SCORE = 0.25
# Milvus dynamic fields are JSON; keep every text well under its limits
MAX_FIELD_CHARS = 8_000


class CognitionBase:
    def __init__(self, store: VectorStore, embedder: Embedder, min_score: float = DEFAULT_MIN_SCORE):
        self.store = store
        self.embedder = embedder
        self.min_score = min_score

    @classmethod
    def from_settings(cls, settings, embedder: Embedder | None = None) -> "CognitionBase":
        from services.common.endpoints import milvus_uri

        embedder = embedder or Embedder.from_settings(settings)
        store = VectorStore(milvus_uri(settings), settings.cognition_collection, embedder.dim)
        return cls(store, embedder, min_score=settings.cognition_min_score)

    def upsert(self, entries: list[CognitionEntry], batch: int = 64) -> int:
        n = 0
        for i in range(0, len(entries), batch):
            chunk = entries[i:i + batch]
            vectors = self.embedder.embed([e.trigger_patterns for e in chunk])
            payloads = [{"cognition_id": e.cognition_id, "paper_key": e.paper_key, "title": e.title[:1000],
                         "origin": e.origin, "content_hash": e.content_hash(),
                         **{f: getattr(e, f)[:MAX_FIELD_CHARS] for f in TEXT_FIELDS}} for e in chunk]
            n += self.store.upsert([e.cognition_id for e in chunk], vectors, payloads)
        return n

    def search(self, query: str, k: int = 5, min_score: float | None = None,
               filter: str | None = None) -> list[Cognition]:
        """The k cognitions whose trigger patterns are closest to `query`, at least `min_score` similar."""
        if not query.strip():
            return []
        floor = self.min_score if min_score is None else min_score
        hits = self.store.search(self.embedder.embed_one(query), k=k, filter=filter)
        out = []
        for h in hits:
            if h.score < floor:
                continue
            p = dict(h.payload)
            fields = {f: p.pop(f, "") for f in ("cognition_id", "paper_key", "title", "origin", *TEXT_FIELDS)}
            fields["cognition_id"] = fields["cognition_id"] or h.id
            out.append(Cognition(score=h.score, extra=p, **fields))
        return out

    def count(self) -> int:
        return self.store.count()
