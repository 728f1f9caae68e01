"""Size-matched search in the read model (issue 24; the rule is lab/judging/size.py): the campaign's reference
baseline, the parameter ceiling the scheduler writes on each explored ParentSampled, and each experiment's size
(parameters, forward FLOPs per token) beside the baseline's for the leaderboard, `show` and the export."""
from __future__ import annotations

from typing import Any

from lab.judging import size
from services.archive.storage.base import Record, Store


def reference_baseline(store: Store, campaign_id: str) -> Record | None:
    """The baseline a candidate is judged against: the campaign's first `--from` member when it has results, else
    the first other exploration baseline that has (the judge's choice, services/judge/state.py)."""
    camp = store.get_campaign(campaign_id) or {}
    names = ((camp.get("params") or {}).get("baselines")) or []
    docs = {d.get("zoo"): d for d in store.experiments(campaign_id)
            if d.get("role") == "baseline" and (d.get("stage") or "explore") == "explore" and d.get("results")}
    for name in names:
        if name in docs:
            return docs[name]
    return next(iter(sorted(docs.values(), key=lambda d: d["experiment_id"])), None)


def measured_size(doc: Record | None) -> dict[str, Any]:
    """{"params", "flops_per_token"} of an experiment: parameters from its result (the engineer counts the model it
    trained), falling back to the checks' count; forward FLOPs per token from the researcher's checks
    (lab/checks_child.py counts them on the whole model), recorded on the ProposalCreated it trained."""
    doc = doc or {}
    checked = doc.get("size") or {}   # the projection keeps it from ProposalCreated.checks
    params = (doc.get("results") or {}).get("params") or checked.get("params")
    return {"params": params or None, "flops_per_token": checked.get("flops_per_token")}


def size_row(doc: Record, baseline: Record | None) -> dict[str, Any]:
    """An experiment's size and its ratio to the baseline's (None where unknown)."""
    mine, base = measured_size(doc), measured_size(baseline)
    return {"params": mine["params"], "flops_per_token": mine["flops_per_token"],
            "params_ratio": size.relative(mine["params"], base["params"]),
            "flops_ratio": size.relative(mine["flops_per_token"], base["flops_per_token"])}


def ceiling(store: Store, campaign: Record) -> dict[str, int]:
    """The ParentSampled fields of an explored candidate: {"max_params", "baseline_params"}, or {} when the campaign
    has no ratio or its baseline no measured size."""
    ratio = size.max_params_ratio(campaign["params"].get("config"))
    base = measured_size(reference_baseline(store, campaign["campaign_id"]))["params"]
    limit = size.param_ceiling(base, ratio)
    return {"max_params": limit, "baseline_params": int(base)} if limit else {}
