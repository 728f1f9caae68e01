"""Audit queries over the read model (the CLI renders them; no I/O besides the store)."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterator

from services.archive.promotion import stage, two_stage, verify_id
from services.archive.replication import is_replicate
from services.archive.sizing import measured_size, reference_baseline, size_row
from services.archive.storage.base import Record, Store

__all__ = ["leaderboard", "show", "ancestry", "descendants", "export", "export_rows", "two_stage"]


def _public(doc: Record) -> Record:
    """An experiment document without the merge bookkeeping."""
    return {k: v for k, v in doc.items() if k != "_v"}


def leaderboard(store: Store, campaign_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """Experiments of the exploration stage with a fitness (under their campaign's scheme), best first, replication
    runs left out (a candidate shows its verdict and replicated fitness; sizes beside the baseline's). A promoted
    one carries its verification run (`verify_*`: id, status, fitness at the verification profile); the
    verification stage as a whole, with the stages' rank agreement, is `two_stage`."""
    every = store.experiments(campaign_id)
    verified = {d["verifies"]: d for d in every if d.get("promotion") and d.get("verifies")}
    docs = [d for d in every if d.get("fitness") is not None and stage(d) != "verify" and not is_replicate(d)]
    docs.sort(key=lambda d: (-d["fitness"], d["experiment_id"]))
    rows = []
    baselines: dict[str, Record | None] = {}   # per campaign: sizes are shown as ratios to its baseline's
    for rank, d in enumerate(docs[:limit], start=1):
        cid = d.get("campaign_id") or ""
        if cid not in baselines:
            baselines[cid] = reference_baseline(store, cid)
        score, results = d.get("score") or {}, d.get("results") or {}
        parent = store.get_experiment(d["parent_id"]) if d.get("parent_id") else None
        v = verified.get(d["experiment_id"]) or {}
        rows.append({
            "rank": rank, "experiment_id": d["experiment_id"], "name": d.get("name"), "role": d.get("role"),
            "fitness": d["fitness"], "loss_score": score.get("loss_score"),
            "benchmark_score": score.get("benchmark_score"), "qualitative": score.get("qualitative"),
            "scheme": score.get("scheme"), "final_loss": results.get("final_loss"),
            "benchmark": results.get("benchmark"), "parent_id": d.get("parent_id"),
            "parent_name": (parent or {}).get("name") or d.get("zoo"),
            "significant": score.get("significant"), "verify_experiment_id": v.get("experiment_id"),
            "verify_status": v.get("status"), "verify_fitness": v.get("fitness"),
            **size_row(d, baselines[cid]), **_replication(d),
        })
    return rows


def _replication(doc: Record) -> dict[str, Any]:
    """A candidate's replication on held-out seeds (ReplicationAssessed): verdict and replicated fitness."""
    r = doc.get("replication") or {}
    return {"replication": r.get("verdict"), "replicated_fitness": r.get("replicated_fitness")}


def show(store: Store, experiment_id: str) -> dict[str, Any] | None:
    """Everything about one experiment: its document, every attempt and rejection, every score, its children."""
    doc = store.get_experiment(experiment_id)
    if doc is None:
        return None
    return {"experiment": _public(doc), "attempts": store.attempts(experiment_id),
            "scores": store.scores(experiment_id),
            "children": [c["experiment_id"] for c in store.children(experiment_id)],
            "stages": _stages(store, doc), "size": _size(store, doc)}


def _size(store: Store, doc: Record) -> dict[str, Any]:
    """Parameters and forward FLOPs per token, and their ratio to the campaign's baseline (named)."""
    base = reference_baseline(store, doc.get("campaign_id") or "")
    base_size = measured_size(base)
    return {**size_row(doc, base), "baseline_experiment_id": (base or {}).get("experiment_id"),
            "baseline_params": base_size["params"], "baseline_flops_per_token": base_size["flops_per_token"]}


def _brief(doc: Record | None) -> dict[str, Any] | None:
    if doc is None:
        return None
    score, results = doc.get("score") or {}, doc.get("results") or {}
    return {"experiment_id": doc["experiment_id"], "name": doc.get("name"), "status": doc.get("status"),
            "fitness": doc.get("fitness"), "significant": score.get("significant"),
            "final_loss": results.get("final_loss"), "benchmark": results.get("benchmark"),
            "profile": (doc.get("sampling") or {}).get("profile") or results.get("profile")}


def _stages(store: Store, doc: Record) -> dict[str, Any] | None:
    """Two-stage promotion seen from one experiment: a verification run's promotion and its explored source, or
    an explored candidate's verification run; None for an experiment in neither."""
    if doc.get("promotion"):
        return {"stage": "verify", "promotion": doc["promotion"],
                "explore": _brief(store.get_experiment(doc.get("verifies") or "")), "verify": _brief(doc)}
    if stage(doc) == "verify":
        return {"stage": "verify", "promotion": None, "explore": None, "verify": _brief(doc)}
    v = store.get_experiment(verify_id(doc.get("campaign_id") or "", doc["experiment_id"]))
    if v is None or not v.get("promotion"):
        return None
    return {"stage": "explore", "promotion": v["promotion"], "explore": _brief(doc), "verify": _brief(v)}


def ancestry(store: Store, experiment_id: str, max_depth: int = 1000) -> list[dict[str, Any]]:
    """The chain from the oldest known ancestor down to the experiment. An ancestor that is not in the
    archive (e.g. an unpublished ASI-Arch parent) appears as {"experiment_id", "missing": True} and ends it."""
    chain: list[dict[str, Any]] = []
    current, seen = experiment_id, set()
    while current and current not in seen and len(chain) < max_depth:
        seen.add(current)
        doc = store.get_experiment(current)
        if doc is None:
            chain.append({"experiment_id": current, "missing": True})
            break
        chain.append({"experiment_id": current, "name": doc.get("name"), "fitness": doc.get("fitness"),
                      "status": doc.get("status"), "role": doc.get("role"), "zoo": doc.get("zoo"),
                      "source_fitness": (doc.get("imported") or {}).get("fitness")})
        current = doc.get("parent_id")
    return chain[::-1]


def descendants(store: Store, experiment_id: str, depth: int = 3) -> list[dict[str, Any]]:
    """Children (recursively, to `depth`) as nested {"experiment_id", "name", "fitness", "status", "children"}."""
    if depth <= 0:
        return []
    return [{"experiment_id": c["experiment_id"], "name": c.get("name"), "fitness": c.get("fitness"),
             "status": c.get("status"), "children": descendants(store, c["experiment_id"], depth - 1)}
            for c in store.children(experiment_id)]


CSV_COLUMNS = ("experiment_id", "campaign_id", "name", "role", "status", "parent_id", "fitness", "loss_score",
               "benchmark_score", "qualitative", "final_loss", "benchmark", "attempts", "rejections", "failures",
               "created_at", "updated_at", "abandon_reason", "params", "flops_per_token", "params_ratio", "flops_ratio",
               "replication", "replicated_fitness")


def export_rows(store: Store, campaign_id: str | None = None) -> Iterator[dict[str, Any]]:
    for d in store.experiments(campaign_id):
        attempts = store.attempts(d["experiment_id"])
        yield {"experiment": _public(d), "attempts": attempts, "scores": store.scores(d["experiment_id"]),
               "size": _size(store, d)}


def export(store: Store, out: Path, fmt: str = "jsonl", campaign_id: str | None = None) -> int:
    """Write every experiment (jsonl: the full record with attempts and scores; csv: one flat row)."""
    n = 0
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        if fmt == "jsonl":
            for row in export_rows(store, campaign_id):
                f.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
                n += 1
        elif fmt == "csv":
            writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            for row in export_rows(store, campaign_id):
                d, attempts = row["experiment"], row["attempts"]
                score, results = d.get("score") or {}, d.get("results") or {}
                writer.writerow({
                    "experiment_id": d["experiment_id"], "campaign_id": d.get("campaign_id"), "name": d.get("name"),
                    "role": d.get("role"), "status": d.get("status"), "parent_id": d.get("parent_id"),
                    "fitness": d.get("fitness"), "loss_score": score.get("loss_score"),
                    "benchmark_score": score.get("benchmark_score"), "qualitative": score.get("qualitative"),
                    "final_loss": results.get("final_loss"), "benchmark": results.get("benchmark"),
                    "attempts": sum(a["kind"] == "proposal" for a in attempts),
                    "rejections": sum(a["kind"] == "rejected" for a in attempts),
                    "failures": sum(a["kind"] == "failure" for a in attempts),
                    "created_at": d.get("created_at"), "updated_at": d.get("updated_at"),
                    "abandon_reason": (d.get("abandoned") or {}).get("reason"),
                    **{k: row["size"][k] for k in ("params", "flops_per_token", "params_ratio", "flops_ratio")},
                    **_replication(d),
                })
                n += 1
        else:
            raise ValueError(f"unknown export format {fmt!r} (jsonl | csv)")
    return n
