"""Offline proposer throughput: proposals per minute (mutator + novelty + sanity checks), the share of
time per check, and the rejection rate by reason.

    python bench/propose.py --n 200            # 200 proposals, sandbox children of --batch programs
    python bench/propose.py --calibrate        # the novelty threshold's calibration figures

Proposals are made as a campaign makes them: parents and references drawn from a growing population
(the zoo genomes, then accepted children). Novelty uses the real MiniLM embedder and an in-memory
cosine store; the dynamic checks run in sandbox children, --batch programs per child (production
runs one child per program: the per-child start-up cost is measured and reported separately).
"""
from __future__ import annotations

import argparse
import asyncio
import math
import random
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab.checks import SanityChecker, static_check  # noqa: E402
from services.researcher.codegen import render  # noqa: E402
from services.researcher.genome import ZOO_DESIGNS  # noqa: E402
from services.researcher.mutator import mutate  # noqa: E402
from services.researcher.novelty import SIMILARITY_THRESHOLD, NoveltyChecker  # noqa: E402


class MemoryStore:
    """The VectorStore API in memory (cosine of unit vectors); filters `f == "x"` / `f != "x"` joined by and."""

    def __init__(self):
        self.rows = {}

    def upsert(self, ids, vectors, payloads):
        for i, v, p in zip(ids, vectors, payloads):
            self.rows[i] = (v, p)
        return len(ids)

    def search(self, vector, k=5, filter=None):
        import re
        from services.common.vectors import Hit
        conds = re.findall(r'(\w+)\s*(==|!=)\s*"([^"]*)"', filter or "")
        hits = [Hit(i, sum(a * b for a, b in zip(v, vector)), p) for i, (v, p) in self.rows.items()
                if all((str(p.get(f)) == val) == (op == "==") for f, op, val in conds)]
        return sorted(hits, key=lambda h: -h.score)[:k]


def embedder():
    from services.common.embeddings import Embedder
    return Embedder.from_settings(None)


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, max(0, math.ceil(q / 100 * len(values)) - 1))]


def calibrate(n: int) -> None:
    """Nearest-other-design similarity of motivations (must stay below the threshold) vs paraphrases
    (same design, another phrasing: should reach it)."""
    emb = embedder()
    rng = random.Random(0)
    population = [dict(d) for d in ZOO_DESIGNS.values()]
    designs, motivations, paraphrases = [], [], []
    for i in range(n):
        parent, refs = rng.choice(population), rng.sample(population, 4)
        d, name, m = mutate(parent, refs, i, [])
        _, _, p = mutate(parent, refs, i, [], phrasing_seed=10_000 + i)
        if name in designs:
            continue
        designs.append(name)
        motivations.append(m)
        paraphrases.append(p)
        population.append(d)
    vecs = emb.embed(motivations)
    pvecs = emb.embed(paraphrases)
    dot = lambda a, b: sum(x * y for x, y in zip(a, b))  # noqa: E731
    nearest = [max(dot(v, w) for j, w in enumerate(vecs) if j != i) for i, v in enumerate(vecs)]
    para = [dot(v, p) for v, p in zip(vecs, pvecs) if motivations[vecs.index(v)] != paraphrases[vecs.index(v)]]
    print(f"calibration over {len(vecs)} distinct designs ({len(para)} reworded paraphrases)")
    print(f"  nearest other design: p50 {pct(nearest, 50):.3f}  p90 {pct(nearest, 90):.3f}  p99 {pct(nearest, 99):.3f}"
          f"  max {max(nearest):.3f}")
    print(f"  paraphrase of itself: p1 {pct(para, 1):.3f}  p10 {pct(para, 10):.3f}  p50 {pct(para, 50):.3f}"
          f"  min {min(para):.3f}")
    for t in (0.92, 0.94, 0.95, 0.96, 0.97, 0.98):
        fp = sum(s >= t for s in nearest) / len(nearest)
        tp = sum(s >= t for s in para) / max(1, len(para))
        print(f"  threshold {t:.2f}: distinct designs rejected {fp:6.1%}   paraphrases caught {tp:6.1%}")
    print(f"  in use: SIMILARITY_THRESHOLD = {SIMILARITY_THRESHOLD}")


async def bench(n: int, batch: int, profile: str) -> None:
    nov = NoveltyChecker(embedder(), MemoryStore())
    checker = SanityChecker()
    rng = random.Random(1)
    population = [dict(d) for d in ZOO_DESIGNS.values()]
    reasons: Counter = Counter()
    check_time: defaultdict[str, float] = defaultdict(float)
    t_start = time.perf_counter()
    pending = []  # (experiment_id, name, motivation, code, design) waiting for the sandbox
    accepted = 0

    async def flush():
        nonlocal accepted
        if not pending:
            return
        t = time.perf_counter()
        outcomes = await asyncio.to_thread(checker.check_many, [p[3] for p in pending], profile)
        check_time["sandbox_wall"] += time.perf_counter() - t
        for (eid, name, motivation, code, design), o in zip(pending, outcomes):
            for k, v in o.timings.items():
                check_time[k] += v
            if o.ok:
                accepted += 1
                population.append(design)
                await nov.remember(campaign_id="bench", experiment_id=eid, name=name, motivation=motivation, code=code)
            else:
                reasons[o.reason] += 1
        pending.clear()

    for i in range(n):
        t = time.perf_counter()
        parent, refs = rng.choice(population), rng.sample(population, min(4, len(population)))
        design, name, motivation = mutate(parent, refs, 1000 + i, [])
        code = render(design, name, motivation)
        check_time["propose"] += time.perf_counter() - t
        t = time.perf_counter()
        s = static_check(code)
        check_time["static"] += time.perf_counter() - t
        if not s.ok:
            reasons[s.reason] += 1
            continue
        t = time.perf_counter()
        verdict = await nov.check(campaign_id="bench", experiment_id=f"e{i}", name=name, motivation=motivation,
                                  code=code)
        check_time["novelty"] += time.perf_counter() - t
        if verdict.duplicate:
            reasons["duplicate"] += 1
            continue
        # in a campaign a proposal is remembered once accepted; remember now so a batch sees its own repeats
        await nov.remember(campaign_id="bench", experiment_id=f"e{i}", name=name, motivation=motivation, code=code)
        pending.append((f"e{i}", name, motivation, code, design))
        if len(pending) >= batch:
            await flush()
    await flush()
    wall = time.perf_counter() - t_start

    t = time.perf_counter()
    checker.check(render(ZOO_DESIGNS["deltanet"], "probe"), profile)
    one_child = time.perf_counter() - t

    print(f"{n} proposals in {wall:.1f} s: {n / wall * 60:.1f} proposals/min "
          f"(sandbox children of {batch} programs), {accepted} accepted ({accepted / n:.1%})")
    print(f"one program in its own sandbox child (production path): {one_child:.2f} s "
          f"-> about {60 / (one_child + check_time['propose'] / n + check_time['novelty'] / n):.1f} proposals/min")
    print("rejections by reason: " + (", ".join(f"{r}: {c} ({c / n:.1%})" for r, c in reasons.most_common())
                                       or "none"))
    measured = {k: v for k, v in check_time.items() if k != "sandbox_wall"}
    total = sum(measured.values())
    overhead = check_time["sandbox_wall"] - sum(check_time[k] for k in ("build", "param_budget", "shape",
                                                                         "causality", "complexity"))
    print("share of time (inside the checks; sandbox start-up separately):")
    for k, v in sorted(measured.items(), key=lambda kv: -kv[1]):
        print(f"  {k:13s} {v:7.2f} s  {v / total:6.1%}  ({v / n * 1000:.0f} ms per proposal)")
    print(f"  sandbox start-up/IPC {overhead:.2f} s over {math.ceil(n / batch)} children")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--batch", type=int, default=25, help="programs per sandbox child")
    ap.add_argument("--profile", default="cpu-tiny")
    ap.add_argument("--calibrate", action="store_true")
    args = ap.parse_args()
    import torch
    torch.set_num_threads(1)
    if args.calibrate:
        calibrate(args.n)
    else:
        asyncio.run(bench(args.n, args.batch, args.profile))


if __name__ == "__main__":
    main()
