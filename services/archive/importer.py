"""The 106 published ASI-Arch programs as ExperimentImported events (a pure function of the records).

Each record has name, program, motivation, index, parent, result {train, test: CSV text}, score,
summary. Ids: `asi-arch-<index>`; the parent becomes `asi-arch-<parent index>` whether or not that
program is among the published ones (the lineage stays true; `archlab lineage` marks an ancestor
that is not in the archive). Event ids derive from the index, so importing twice adds nothing.
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from schemas import events as ev

CAMPAIGN = "asi-arch"


def experiment_id(index: int) -> str:
    return f"asi-arch-{index}"


def _csv_row(text: str) -> dict[str, float]:
    """The first data row of a two-line CSV whose first column is the name; NaN cells dropped."""
    rows = list(csv.reader(io.StringIO(text or "")))
    if len(rows) < 2:
        return {}
    out = {}
    for key, value in zip(rows[0][1:], rows[1][1:]):
        try:
            x = float(value)
        except ValueError:
            continue
        if math.isfinite(x):
            out[key] = x
    return out


def imported_event(rec: dict[str, Any], campaign_id: str = CAMPAIGN) -> ev.ExperimentImported:
    train = _csv_row((rec.get("result") or {}).get("train", ""))
    test = _csv_row((rec.get("result") or {}).get("test", ""))
    final_loss = train[max(train, key=lambda s: float(s))] if train else None
    benchmark = test.pop("average", None)
    index = int(rec["index"])
    parent = rec.get("parent")
    return ev.ExperimentImported(
        event_id=ev.derived_id(campaign_id, "ExperimentImported", index), campaign_id=campaign_id,
        experiment_id=experiment_id(index), producer="archive-import", name=rec["name"], code=rec["program"],
        motivation=rec.get("motivation", ""), source="asi-arch", source_index=index,
        parent_id=experiment_id(int(parent)) if parent is not None else None, metrics=test, final_loss=final_loss,
        benchmark=benchmark, fitness=rec.get("score"), summary=rec.get("summary", ""))


def imported_events(records: list[dict[str, Any]], campaign_id: str = CAMPAIGN) -> list[ev.ExperimentImported]:
    return [imported_event(r, campaign_id) for r in records]


def load_records(path: Path) -> list[dict[str, Any]]:
    data = json.loads(Path(path).read_text())
    return data if isinstance(data, list) else list(data.values())
