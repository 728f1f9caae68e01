"""The lab's charts, shared by the live UI and the static report.

Python decides what a chart shows (points, running best, tree layout, colours); the browser only
draws it with Apache ECharts (vendored in `static/`, no CDN: the lab runs offline) through
`static/charts.js`. A chart is a `<div class="chart" data-spec="...">` whose spec is JSON in an
escaped attribute, so no program name or LLM text is ever parsed as HTML or script.
"""
from __future__ import annotations

import base64
import hashlib
import json
import math
from dataclasses import dataclass
from functools import cache
from html import escape
from importlib import resources
from typing import Any

# viridis at 5 stops: perceptually ordered, readable for colour-blind readers
VIRIDIS = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"]
MISSING = "#c8ccd2"     # a node without a fitness
LIBRARY = "echarts.common.min.js"
ASSETS = (LIBRARY, "charts.js")   # the scripts a page with charts loads, in order


def color_for(t: float | None) -> str:
    """Viridis colour of t in [0, 1]; grey when unknown."""
    if t is None or math.isnan(t):
        return MISSING
    t = min(1.0, max(0.0, t)) * (len(VIRIDIS) - 1)
    i = min(int(t), len(VIRIDIS) - 2)
    a, b = VIRIDIS[i], VIRIDIS[i + 1]
    f = t - i
    rgb = [round(int(a[k:k + 2], 16) * (1 - f) + int(b[k:k + 2], 16) * f) for k in (1, 3, 5)]
    return "#" + "".join(f"{c:02x}" for c in rgb)


def chart_div(chart_id: str, spec: dict[str, Any], height: int = 340) -> str:
    """The element charts.js turns into a chart."""
    data = escape(json.dumps(spec, separators=(",", ":"), allow_nan=False), quote=True)
    return (f"<div id='{escape(chart_id, quote=True)}' class='chart' style='height:{int(height)}px' "
            f"data-spec=\"{data}\"></div>")


@cache
def asset(name: str) -> bytes:
    """A file shipped in services/ui/static (only names of ASSETS and the licence files)."""
    return resources.files("services.ui").joinpath("static", name).read_bytes()


def inline_scripts() -> tuple[str, list[str]]:
    """The chart scripts inlined (for a self-contained report) and their CSP hashes: the page allows
    exactly these scripts and no other."""
    tags, hashes = [], []
    for name in ASSETS:
        text = asset(name).decode("utf-8").replace("</script", "<\\/script")
        digest = base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")
        hashes.append(f"'sha256-{digest}'")
        tags.append(f"<script>{text}</script>")
    return "".join(tags), hashes


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


# ---------------------------------------------------------------- specs
def fitness_spec(points: list[dict[str, Any]], href: str | None = None) -> dict[str, Any]:
    """points: {experiment_id, name, fitness, baseline: bool} in the order results came in. Each candidate a
    point, the running best of the candidates a line, the baselines' best a dashed reference."""
    pts, best, best_so_far, base = [], [], None, None
    for i, p in enumerate(x for x in points if _finite(x.get("fitness")) is not None):
        f = p["fitness"]
        pts.append({"value": [i + 1, f], "id": p["experiment_id"], "name": p.get("name") or p["experiment_id"],
                    "baseline": bool(p.get("baseline"))})
        if p.get("baseline"):
            base = f if base is None else max(base, f)
        else:
            best_so_far = f if best_so_far is None else max(best_so_far, f)
            best.append([i + 1, best_so_far])
    return {"kind": "fitness", "points": pts, "best": best, "baseline": base, "href": href,
            "x_label": "result #", "y_label": "fitness"}


@dataclass
class TreeNode:
    experiment_id: str
    name: str
    parent_id: str | None
    fitness: float | None = None
    status: str = ""
    kind: str = "candidate"      # candidate | baseline | imported | external


def lineage_layout(nodes: list[TreeNode]) -> dict[str, tuple[int, float]]:
    """(depth, row) per node: parents left, children right, one row per leaf, a parent centred on its
    children. Iterative (a lineage can be thousands deep) and safe against cycles."""
    by_id = {n.experiment_id: n for n in nodes}
    children: dict[str, list[str]] = {n.experiment_id: [] for n in nodes}
    roots = []
    for n in nodes:
        if n.parent_id in by_id and n.parent_id != n.experiment_id:
            children[n.parent_id].append(n.experiment_id)
        else:
            roots.append(n.experiment_id)
    pos: dict[str, tuple[int, float]] = {}
    seen: set[str] = set()
    row = 0
    for start in roots + [n.experiment_id for n in nodes]:   # the second pass: nodes reachable only via a cycle
        if start in seen:
            continue
        stack = [(start, 0, False)]
        while stack:
            eid, depth, expanded = stack.pop()
            if expanded:
                ys = [pos[c][1] for c in children[eid] if c in pos]
                if ys:
                    pos[eid] = (depth, (min(ys) + max(ys)) / 2)
                else:
                    pos[eid] = (depth, float(row))
                    row += 1
                continue
            if eid in seen:
                continue
            seen.add(eid)
            stack.append((eid, depth, True))
            stack.extend((c, depth + 1, False) for c in reversed(children[eid]) if c not in seen)
    return pos


def lineage_spec(nodes: list[TreeNode], href: str | None = None) -> dict[str, Any]:
    """The lineage tree: a point per experiment coloured by fitness (viridis), an edge per parent link."""
    pos = lineage_layout(nodes)
    fits = [n.fitness for n in nodes if _finite(n.fitness) is not None]
    lo, hi = (min(fits), max(fits)) if fits else (0.0, 1.0)
    points, edges = [], []
    for n in nodes:
        depth, row = pos[n.experiment_id]
        t = None if _finite(n.fitness) is None else (n.fitness - lo) / ((hi - lo) or 1.0)
        points.append({"value": [depth, row], "id": n.experiment_id, "name": n.name, "fitness": _finite(n.fitness),
                       "status": n.status, "kind": n.kind, "itemStyle": {"color": color_for(t)}})
        if n.parent_id in pos and n.parent_id != n.experiment_id:
            edges += [list(pos[n.parent_id]), [depth, row], None]
    return {"kind": "lineage", "points": points, "edges": edges, "href": href,
            "range": [lo, hi] if fits else None, "labels": len(nodes) <= 150}


def curves_spec(curves: list[dict[str, Any]], x_label: str = "step", y_label: str = "training loss") -> dict[str, Any]:
    """curves: {name, experiment_id, points: [[x, y]], baseline: bool}."""
    series = [{"name": c["name"], "id": c.get("experiment_id"), "baseline": bool(c.get("baseline")),
               "points": [[x, y] for x, y in c["points"] if _finite(y) is not None]} for c in curves]
    return {"kind": "curves", "series": series, "x_label": x_label, "y_label": y_label}


def bars_spec(categories: list[str], series: list[dict[str, Any]], y_label: str = "score") -> dict[str, Any]:
    """Grouped bars: series {name, values (one per category, None where missing)}."""
    return {"kind": "bars", "categories": categories, "y_label": y_label,
            "series": [{"name": s["name"], "values": [_finite(v) for v in s["values"]]} for s in series]}


def scatter_spec(groups: dict[str, list[dict[str, Any]]], href: str | None = None, x_label: str = "",
                 y_label: str = "") -> dict[str, Any]:
    """Named groups of points {x, y, experiment_id, name}."""
    return {"kind": "scatter", "href": href, "x_label": x_label, "y_label": y_label,
            "groups": [{"name": g, "points": [{"value": [p["x"], p["y"]], "id": p["experiment_id"],
                                               "name": p.get("name") or p["experiment_id"]} for p in pts]}
                       for g, pts in groups.items()]}
