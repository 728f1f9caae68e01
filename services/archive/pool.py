"""The elite pool of a campaign and the sampling decision built on it.

Pool: the top 50 experiments of the campaign by their latest fitness under the campaign's
scoring scheme (CampaignStarted.config["scheme"], default "paper"), best first, ties by id; then
the campaign's `roots` (imported experiments) that have no such score yet, by their source
fitness, while there is room. A parent that leaves the pool keeps its children (lineage lives in
the experiments table, not here).

Cold start: the first `cold_start` candidates (ordinals 0..cold_start-1) draw from the measured
baselines and the roots only; if there are none (every baseline failed, no roots), from the pool.
"""
from __future__ import annotations

from services.archive import replication
from services.archive.policies import POLICIES, Draw, Member, rng_for
from services.archive.projection import campaign_scheme
from services.archive.storage.base import Record, Store

POOL_SIZE = 50


def elite_pool(store: Store, campaign_id: str, size: int = POOL_SIZE, *, with_children: bool = False) -> list[Member]:
    scheme = campaign_scheme(store, campaign_id)
    # twice `size`: replication runs are scored too but never members (below)
    ranked: list[tuple[str, float | None]] = list(store.top_by_fitness(campaign_id, scheme, 2 * size))
    seen = {exp_id for exp_id, _ in ranked}
    camp = store.get_campaign(campaign_id) or {}
    roots = [store.get_experiment(r) for r in ((camp.get("params") or {}).get("roots") or []) if r not in seen]
    roots = [d for d in roots if d is not None]
    roots.sort(key=lambda d: (-((d.get("imported") or {}).get("fitness") or 0.0), d["experiment_id"]))
    ranked += [(d["experiment_id"], None) for d in roots]
    members = []
    docs = [(exp_id, fitness, store.get_experiment(exp_id) or {"experiment_id": exp_id}) for exp_id, fitness in ranked]
    # the verification stage (two-stage promotion) is measured at another profile: never a parent. It is scored
    # only once exploration has ended, so it never took an explored experiment's place among the top `size`.
    docs = [(exp_id, fitness, doc) for exp_id, fitness, doc in docs if (doc.get("stage") or "explore") != "verify"]
    # replication (issue 24): its runs are measurements of their candidate, never members; a candidate re-trained on
    # held-out seeds is ranked by its replicated fitness, not by the first run it was selected on
    docs = [m for m in docs if not replication.is_replicate(m[2])]
    scored = [(exp_id, replication.selection_fitness(doc, fitness), doc) for exp_id, fitness, doc in docs
              if fitness is not None]
    scored.sort(key=lambda m: (-m[1], m[0]))
    docs = scored + [m for m in docs if m[1] is None]
    for rank, (exp_id, fitness, doc) in enumerate(docs[:size], start=1):
        children = len(store.children(exp_id)) if with_children else 0
        members.append(Member(exp_id, rank, fitness, children, doc))
    return members


def cold_start_pool(store: Store, campaign_id: str, *, with_children: bool = False) -> list[Member]:
    """The pool restricted to the campaign's baselines and roots (ranks renumbered)."""
    camp = store.get_campaign(campaign_id) or {}
    roots = set((camp.get("params") or {}).get("roots") or [])
    keep = [m for m in elite_pool(store, campaign_id, size=10_000, with_children=with_children)
            if m.doc.get("role") == "baseline" or m.experiment_id in roots]
    return [Member(m.experiment_id, rank, m.fitness, m.children, m.doc) for rank, m in enumerate(keep, start=1)]


def sample_parent(store: Store, campaign: Record, ordinal: int) -> Draw | None:
    """The sampling decision for candidate `ordinal` of a campaign (None: nothing to sample from).

    Deterministic: the RNG is seeded from the campaign seed and the ordinal, and the pool is a
    function of the read model.
    """
    params = campaign["params"]
    campaign_id = campaign["campaign_id"]
    policy_name = params.get("policy") or "topk-uniform"
    policy = POLICIES.get(policy_name, POLICIES["topk-uniform"])
    needs_children = policy_name == "uct"
    phase = "cold-start" if ordinal < int(params.get("cold_start", 0)) else "pool"
    pool = cold_start_pool(store, campaign_id, with_children=needs_children) if phase == "cold-start" else []
    if not pool:
        pool = elite_pool(store, campaign_id, with_children=needs_children)
        phase = phase if phase == "pool" else "cold-start-fallback"
    if not pool:
        return None
    seed = int(params.get("seed", 0))
    draw = policy(pool, rng_for(seed, ordinal), params.get("policy_params") or {})
    draw.info.update({
        "policy": policy_name if policy_name in POLICIES else "topk-uniform",
        "requested_policy": policy_name, "phase": phase, "ordinal": ordinal, "seed": seed,
        "scheme": campaign_scheme(store, campaign_id), "pool_size": len(pool),
        "parent_rank": draw.parent.rank, "parent_fitness": draw.parent.fitness,
        "reference_ranks": [m.rank for m in draw.references],
        # The pool as it was, best first: a counterfactual replay re-ranks exactly these members.
        "pool": [m.experiment_id for m in pool],
    })
    return draw
