"""What can be computed without an LLM: metric deltas against parent, siblings and baseline, and a
quasi-ablation (which mechanisms differ from the parent, which metrics moved).

Mechanisms come from the proposals' design genomes when both have one (the offline proposer's
flat gene dict: `memory`, `feature_map`, `short_conv`, ...); otherwise from a diff of the code's
named components (classes, functions and the `self.<name>` sub-modules built in `__init__`).
"""
from __future__ import annotations

import ast
import math
from typing import Any

from schemas import events as ev
from services.analyst.state import Record

LOWER_IS_BETTER = ("loss", "bits_per_byte", "bpb", "perplexity", "ppl")
MOVED_REL = 0.01   # a metric "moved" when it changed by more than 1 % of its reference value (no seed noise known)


def lower_is_better(metric: str) -> bool:
    return any(w in metric.lower() for w in LOWER_IS_BETTER)


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) or math.isinf(v) else v


def metric_table(results: ev.ResultsReady, score: ev.ScoreAssigned | None) -> dict[str, float]:
    """Every comparable number of an experiment, by name."""
    table = {"final_loss": results.final_loss, "benchmark": results.benchmark, **results.metrics}
    if score is not None:
        table["fitness"] = score.fitness
    return {k: v for k, v in ((k, _num(v)) for k, v in table.items()) if v is not None}


def compare(child: Record, other: Record) -> dict[str, dict[str, Any]]:
    """metric -> {child, other, delta, rel, better, moved} for the metrics both have."""
    a, b = metric_table(child.results, child.score), metric_table(other.results, other.score)
    out = {}
    for m in sorted(set(a) & set(b)):
        delta = a[m] - b[m]
        rel = delta / abs(b[m]) if b[m] else (0.0 if delta == 0 else math.copysign(math.inf, delta))
        better = (delta < 0) if lower_is_better(m) else (delta > 0)
        out[m] = {"child": a[m], "other": b[m], "delta": delta, "rel": rel,
                  "better": bool(better and delta != 0), "moved": abs(rel) > MOVED_REL}
    return out


def _flatten(d: dict[str, Any] | None, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in (d or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = list(v) if isinstance(v, tuple) else v
    return out


def design_diff(parent: dict[str, Any] | None, child: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """gene -> {parent, child} for every gene whose value differs (a missing gene counts as None)."""
    p, c = _flatten(parent), _flatten(child)
    return {g: {"parent": p.get(g), "child": c.get(g)} for g in sorted(set(p) | set(c)) if p.get(g) != c.get(g)}


def named_components(code: str) -> dict[str, str]:
    """name -> normalised source of each class, function/method and `self.x = ...` in any __init__."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return {}
    out: dict[str, str] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if isinstance(child, ast.ClassDef):
                    visit(child, name + ".")
                    continue
                out[name] = ast.dump(child, annotate_fields=False, include_attributes=False)
                if child.name == "__init__":
                    for stmt in ast.walk(child):
                        if isinstance(stmt, ast.Assign):
                            for t in stmt.targets:
                                if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self":
                                    out[f"{prefix}self.{t.attr}"] = ast.dump(stmt.value, annotate_fields=False)
    visit(tree, "")
    return out


def code_diff(parent_code: str, child_code: str) -> dict[str, list[str]]:
    """Named components added, removed and modified between two programs."""
    p, c = named_components(parent_code), named_components(child_code)
    return {"added": sorted(set(c) - set(p)), "removed": sorted(set(p) - set(c)),
            "modified": sorted(k for k in set(p) & set(c) if p[k] != c[k])}


def ablation(child: Record, parent: Record | None) -> dict[str, Any]:
    """The quasi-ablation: mechanisms changed vs the parent and the metrics that moved."""
    if parent is None:
        return {"parent_id": child.proposal.parent_id if child.proposal else None, "source": "none",
                "changed": {}, "moved": {}, "note": "parent unknown to the analyst"}
    out: dict[str, Any] = {"parent_id": parent.experiment_id, "parent_name": parent.name}
    cp, pp = child.proposal, parent.proposal
    if cp is not None and pp is not None and cp.design and pp.design:
        out.update(source="design", changed=design_diff(pp.design, cp.design))
    elif cp is not None and pp is not None:
        out.update(source="code", changed=code_diff(pp.code, cp.code))
    else:
        out.update(source="none", changed={})
    if parent.results is not None:
        deltas = compare(child, parent)
        out["moved"] = {m: {k: d[k] for k in ("child", "other", "delta", "better")}
                        for m, d in deltas.items() if d["moved"]}
    else:
        out["moved"] = {}
    return out


def mechanisms_text(abl: dict[str, Any]) -> str:
    changed = abl.get("changed") or {}
    if abl.get("source") == "design":
        return ", ".join(f"{g}: {v['parent']} -> {v['child']}" for g, v in changed.items()) or "no gene changed"
    if abl.get("source") == "code":
        parts = [f"{k} {', '.join(v)}" for k, v in changed.items() if v]
        return "; ".join(parts) or "no named component changed"
    return "unknown (no parent program)"


def siblings_summary(child: Record, siblings: list[Record]) -> dict[str, Any]:
    fits = [(s.score.fitness, s.experiment_id) for s in siblings if s.score and s.score.fitness is not None]
    mine = child.score.fitness if child.score else None
    if not fits or mine is None:
        return {"count": len(siblings)}
    ranked = sorted(fits + [(mine, child.experiment_id)], key=lambda t: -t[0])
    return {"count": len(siblings), "rank": 1 + [e for _, e in ranked].index(child.experiment_id),
            "of": len(ranked), "mean_fitness": sum(f for f, _ in fits) / len(fits),
            "best_id": ranked[0][1], "best_fitness": ranked[0][0]}


# phrases the cognition base's trigger patterns use, by metric family
_SYMPTOMS = [
    ("mqar", "fails multi-query associative recall, poor in-context retrieval of key-value pairs"),
    ("lambada", "poor long-range recall on lambada, loses distant context"),
    ("bits_per_byte", "worse byte-level language modelling, local patterns poorly modelled"),
    ("bpb", "worse byte-level language modelling, local patterns poorly modelled"),
    ("stdlib_mc", "weaker multiple-choice text understanding"),
    ("hellaswag", "weaker commonsense reasoning and context tracking"),
    ("piqa", "weaker physical commonsense reasoning"),
    ("arc", "weaker factual and reasoning question answering"),
    ("final_loss", "higher training loss, slower convergence"),
]


def shortcomings(child: Record, parent_cmp: dict | None, baseline_cmp: dict | None) -> str:
    """The offline retrieval query: the symptoms of whatever is worse than parent or baseline."""
    worse: list[str] = []
    for label, cmp in (("parent", parent_cmp), ("baseline", baseline_cmp)):
        for m, d in (cmp or {}).items():
            if m in ("fitness", "benchmark") or d["better"] or not d["moved"]:
                continue
            symptom = next((s for key, s in _SYMPTOMS if key in m.lower()), f"{m} worse")
            if symptom not in worse:
                worse.append(symptom)
    if child.results is not None and child.results.final_loss is not None and not worse:
        worse.append("no clear weakness measured; improve recall and loss further")
    return "; ".join(worse)
