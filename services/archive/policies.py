"""Parent-selection policies over a ranked elite pool. Pure functions of (pool, rng, params).

- "topk-uniform" (the paper): parent uniformly from ranks 1..k, `references` (4) distinct references
  uniformly from ranks top_k+1..50. k = min(top_k (10), ceil(top_fraction (0.2) x pool size)), at
  least 1: the paper's top 10 of a pool of 50 is its top fifth, and a small pool (a campaign's first
  candidates) keeps that proportion instead of drawing uniformly from everything, the bad children
  included. At a pool of 5 or fewer that is greedy (the current best). Measured in docs/zoo.md: neither
  rule beat best-of-N sampling at budget 6 (each on its own battery); "uct" did on the default one.
- "uct": parent = argmax of normalised fitness + c * sqrt(ln(N + 1) / (n_i + 1)), where n_i is how
  often a member was already sampled as a parent (its children) and N the total; exploration
  favours members with few children (ties broken at random). References as topk-uniform.
- "fitness-proportional": parent drawn with probability proportional to max(fitness, 0) + epsilon
  over the whole pool (unscored roots weigh epsilon). References as topk-uniform.

References when the pool is small (fewer than top_k + references members): all of ranks
top_k+1.. first, then the rest drawn from the top-k ranks other than the parent, so a pool of n
members yields min(references, n - 1) distinct references and never the parent.
"""
from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class Member:
    """One pool member: rank is 1-based (1 = best)."""
    experiment_id: str
    rank: int
    fitness: float | None
    children: int = 0
    doc: dict = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Draw:
    parent: Member
    references: list[Member]
    info: dict[str, Any]   # what the ParentSampled event records (policy-specific evidence)


def rng_for(seed: int, ordinal: int) -> random.Random:
    """The RNG of one sampling decision: a function of the campaign seed and the experiment ordinal."""
    digest = hashlib.sha256(f"archlab-sample:{seed}:{ordinal}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def draw_references(pool: list[Member], parent_index: int, rng: random.Random, top_k: int,
                    n_refs: int) -> list[Member]:
    far = [i for i in range(top_k, len(pool)) if i != parent_index]
    if len(far) >= n_refs:
        picks = rng.sample(far, n_refs)
    else:
        near = [i for i in range(min(top_k, len(pool))) if i != parent_index]
        picks = far + rng.sample(near, min(n_refs - len(far), len(near)))
    return [pool[i] for i in sorted(picks)]


def _params(params: dict[str, Any]) -> tuple[int, int]:
    return int(params.get("top_k", 10)), int(params.get("references", 4))


def parent_ranks(pool_size: int, params: dict[str, Any]) -> int:
    """How many of the best ranks topk-uniform draws its parent from (see the module docstring)."""
    top_k, _ = _params(params)
    fraction = float(params.get("top_fraction", 0.2))
    # - 1e-9: a product meant to be whole may land just above it (0.14 x 50 is 7.000000000000001 in floats)
    return max(1, min(top_k, pool_size, math.ceil(fraction * pool_size - 1e-9)))


def topk_uniform(pool: list[Member], rng: random.Random, params: dict[str, Any]) -> Draw:
    top_k, n_refs = _params(params)
    k = parent_ranks(len(pool), params)
    i = rng.randrange(k)
    return Draw(pool[i], draw_references(pool, i, rng, top_k, n_refs), {"parent_ranks": k})


def _normalised(pool: list[Member]) -> list[float]:
    scored = [m.fitness for m in pool if m.fitness is not None]
    lo, hi = (min(scored), max(scored)) if scored else (0.0, 0.0)
    span = hi - lo or 1.0
    return [0.0 if m.fitness is None else (m.fitness - lo) / span for m in pool]


def uct(pool: list[Member], rng: random.Random, params: dict[str, Any]) -> Draw:
    top_k, n_refs = _params(params)
    c = float(params.get("c", 1.0))
    q = _normalised(pool)
    total = sum(m.children for m in pool)
    scores = [q[i] + c * math.sqrt(math.log(total + 1) / (m.children + 1)) for i, m in enumerate(pool)]
    best = max(scores)
    i = rng.choice([j for j, s in enumerate(scores) if s >= best - 1e-12])
    return Draw(pool[i], draw_references(pool, i, rng, top_k, n_refs), {"uct_score": round(scores[i], 6),
                                                                        "c": c, "total_children": total})


def fitness_proportional(pool: list[Member], rng: random.Random, params: dict[str, Any]) -> Draw:
    top_k, n_refs = _params(params)
    eps = float(params.get("epsilon", 1e-3))
    weights = [max(m.fitness or 0.0, 0.0) + eps for m in pool]
    i = rng.choices(range(len(pool)), weights=weights)[0]
    return Draw(pool[i], draw_references(pool, i, rng, top_k, n_refs),
                {"probability": round(weights[i] / sum(weights), 6)})


POLICIES: dict[str, Callable[[list[Member], random.Random, dict[str, Any]], Draw]] = {
    "topk-uniform": topk_uniform,
    "uct": uct,
    "fitness-proportional": fitness_proportional,
}
