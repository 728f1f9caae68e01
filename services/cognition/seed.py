"""Our own seed of cognitions (services/cognition/seed/*.json), written for archlab from the public
literature on linear attention, so the embedded default has a base without any third-party corpus.

Each file is a JSON list of objects with `slug`, `paper_key`, `title`, `trigger_patterns`,
`design_insight`, `background`, `algorithm`, `implementation`; ids are `seed:<slug>`.
"""
from __future__ import annotations

import json
from pathlib import Path

from services.common.cognition_model import CognitionEntry

SEED_DIR = Path(__file__).resolve().parent / "seed"


def load_seed(seed_dir: Path = SEED_DIR) -> list[CognitionEntry]:
    entries = []
    for file in sorted(Path(seed_dir).glob("*.json")):
        for raw in json.loads(file.read_text(encoding="utf-8")):
            raw = dict(raw)
            slug = raw.pop("slug")
            entries.append(CognitionEntry(cognition_id=f"seed:{slug}", origin="seed", **raw))
    return entries
