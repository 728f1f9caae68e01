"""The embedding map of proposals: the novelty memory's motivation embeddings, projected to 2-D.

The researcher embeds every accepted proposal's motivation into the novelty memory (the Milvus collection
`services.common.vectors.NOVELTY_COLLECTION`, one record per experiment); the map projects them onto their first two principal
components. A proposal rejected as a duplicate is not in the memory: it is drawn beside the experiment it
repeated (the most similar one its `ProposalRejected` names), at a distance that grows with 1 - similarity,
so a cluster of rejections shows where the search kept coming back to.

No Kafka, no Milvus here: `project` and `layout` take plain lists (services/ui/main.py wires the reads).
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

VectorSource = Callable[[], list[dict[str, Any]]]   # -> [{"id", "vector", "campaign_id", "name", ...}]


def project(vectors: list[list[float]]) -> list[tuple[float, float]]:
    """PCA to two dimensions, deterministic: each axis's sign makes its largest loading positive."""
    if not vectors:
        return []
    x = np.asarray(vectors, dtype=np.float64)
    x = x - x.mean(axis=0, keepdims=True)
    if len(x) == 1 or not np.any(x):
        return [(0.0, 0.0)] * len(x)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    axes = vt[:2]
    axes = axes * np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])[:, None]
    xy = x @ axes.T
    if xy.shape[1] == 1:
        xy = np.hstack([xy, np.zeros_like(xy)])
    return [(round(float(a), 5), round(float(b), 5)) for a, b in xy]


def layout(records: list[dict[str, Any]], rows: dict[str, dict[str, Any]],
           duplicates: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Scatter groups {group: [{x, y, experiment_id, name}]}: the campaign's proposals by role (baseline,
    candidate) and the rejected duplicates beside what they repeated. `records`: the memory's records of the
    campaign; `rows`: the read model's rows by id; `duplicates`: rejection attempts {experiment_id, name,
    similar: [{experiment_id, similarity}]}."""
    records = [r for r in records if r.get("vector")]
    xy = dict(zip((r["id"] for r in records), project([r["vector"] for r in records])))
    spread = max((math.hypot(*p) for p in xy.values()), default=1.0) or 1.0
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        row = rows.get(r["id"]) or {}
        group = "baseline" if row.get("role") == "baseline" else "proposal"
        x, y = xy[r["id"]]
        groups.setdefault(group, []).append({"x": x, "y": y, "experiment_id": r["id"],
                                             "name": row.get("name") or r.get("name") or r["id"]})
    for i, d in enumerate(duplicates):
        near = max(d.get("similar") or [], key=lambda s: s.get("similarity") or 0.0, default=None)
        if near is None or near.get("experiment_id") not in xy:
            continue
        x, y = xy[near["experiment_id"]]
        gap = 0.15 * spread * (1.0 - float(near.get("similarity") or 0.0)) + 0.01 * spread
        angle = 2.399963 * (i + 1)   # the golden angle: rejections of one neighbour fan out, none on another
        groups.setdefault("rejected duplicate", []).append({
            "x": round(x + gap * math.cos(angle), 5), "y": round(y + gap * math.sin(angle), 5),
            "experiment_id": d["experiment_id"],
            "name": f"{d.get('name') or d['experiment_id']} (rejected: repeats {near['experiment_id']}, "
                    f"similarity {float(near.get('similarity') or 0.0):.3f})"})
    return groups
