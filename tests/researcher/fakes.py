"""Tiny in-test stand-ins for the embedder and the vector store (same API as services.common.*)."""
import hashlib
import math
import re
from dataclasses import dataclass, field


class FakeEmbedder:
    """Bag-of-words hashed into 256 dims, unit norm: equal texts -> similarity 1."""
    dim = 256

    def embed(self, texts):
        out = []
        for text in texts:
            v = [0.0] * self.dim
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                v[int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
            n = math.sqrt(sum(x * x for x in v)) or 1.0
            out.append([x / n for x in v])
        return out


@dataclass
class Hit:
    id: str
    score: float
    payload: dict = field(default_factory=dict)


class FakeVectorStore:
    """Cosine search with milvus-style filters limited to `field == "x"` / `field != "x"` joined by `and`."""

    def __init__(self, uri="", collection="", dim=256):
        self.rows = {}

    def upsert(self, ids, vectors, payloads):
        for i, v, p in zip(ids, vectors, payloads):
            self.rows[i] = (v, dict(p))
        return len(ids)

    def search(self, vector, k=5, filter=None):
        conds = re.findall(r'(\w+)\s*(==|!=)\s*"((?:[^"\\]|\\.)*)"', filter or "")
        hits = []
        for i, (v, p) in self.rows.items():
            if all((str(p.get(f)) == val) == (op == "==") for f, op, val in conds):
                hits.append(Hit(i, sum(a * b for a, b in zip(v, vector)), p))
        return sorted(hits, key=lambda h: -h.score)[:k]
