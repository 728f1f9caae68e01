"""Cognition retrieval latency: p50/p99 of a query (embed + top-k search) and of the search alone.

    python bench/retrieval.py [--queries 200] [--k 5] [--corpus DIR] [--uri URI] [--threads 1]

By default it starts a milvus-lite server on a free port in a temporary directory (as `archlab up`
does), indexes our seed cognitions plus the ASI-Arch corpus when found (../shared/reference/asi-arch/
cognition, or --corpus), and times shortcoming-style queries. `--uri` points at an existing server
or a .db file instead. Reported: ingest time, then for each path the p50/p99/mean in milliseconds.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

QUERIES = [
    "poor long-range recall on lambada, fails associative recall",
    "training diverges, loss becomes NaN, state norm grows without bound",
    "local patterns poorly modelled, worse bits per byte",
    "the model cannot forget stale context on long sequences",
    "step time is three times the reference, throughput too low",
    "fails multi-query associative recall as the number of pairs grows",
    "state tracking fails, parity at chance",
    "weaker commonsense reasoning on hellaswag and piqa",
]


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def report(name: str, secs: list[float]) -> None:
    ms = [s * 1000 for s in secs]
    print(f"{name:24} p50 {pct(ms, 0.5):7.2f} ms   p99 {pct(ms, 0.99):7.2f} ms   mean {statistics.mean(ms):7.2f} ms"
          f"   (n={len(ms)})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--corpus", type=Path, default=None)
    ap.add_argument("--uri", default=None)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from services.cognition.corpus import parse_corpus_dir
    from services.common.cognition_base import CognitionBase
    from services.cognition.seed import load_seed
    from services.common import vectors
    from services.common.embedded import free_port, milvus_process, stop_pid, wait_port
    from services.common.embeddings import Embedder

    tmp = Path(tempfile.mkdtemp(prefix="archlab-bench-retrieval-"))
    child = None
    uri = args.uri
    if uri is None:
        port = free_port()
        child = milvus_process(tmp / "milvus", port)
        (tmp / "milvus").mkdir(parents=True, exist_ok=True)
        child.start()
        wait_port(port, 60, child.proc, "milvus-lite server")
        uri = f"http://127.0.0.1:{port}"
    try:
        entries = load_seed()
        corpus = args.corpus or Path(__file__).resolve().parents[1] / ".." / "shared" / "reference" / "asi-arch" / "cognition"
        if corpus.is_dir():
            more, errors = parse_corpus_dir(corpus)
            entries += more
            print(f"corpus {corpus.resolve()}: {len(more)} entries, {len(errors)} file(s) skipped")
        embedder = Embedder.from_settings(None)
        t0 = time.perf_counter()
        embedder.embed(["warm up"])
        print(f"model load: {time.perf_counter() - t0:.2f} s")
        base = CognitionBase(vectors.VectorStore(uri, "bench_cognitions", embedder.dim), embedder)
        base.store.drop()
        base = CognitionBase(vectors.VectorStore(uri, "bench_cognitions", embedder.dim), embedder)
        t0 = time.perf_counter()
        base.upsert(entries)
        dt = time.perf_counter() - t0
        print(f"ingest: {len(entries)} cognitions in {dt:.2f} s ({len(entries) / dt:.1f}/s, embedding included); "
              f"uri {uri}")

        rng = random.Random(0)
        qs = [rng.choice(QUERIES) + f" (variant {i})" for i in range(args.queries)]
        vecs = embedder.embed(qs[:20])
        full, search_only, embed_only = [], [], []
        for i, q in enumerate(qs):
            t0 = time.perf_counter()
            base.search(q, k=args.k, min_score=0.0)
            full.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            embedder.embed_one(q)
            embed_only.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            base.store.search(vecs[i % len(vecs)], k=args.k)
            search_only.append(time.perf_counter() - t0)
        print(f"top-{args.k} over {base.count()} cognitions, torch threads {args.threads}:")
        report("query (embed + search)", full)
        report("embed only", embed_only)
        report("search only", search_only)
        base.store.drop()
    finally:
        vectors.close_all()
        if child is not None:
            stop_pid(child.pid)


if __name__ == "__main__":
    main()
