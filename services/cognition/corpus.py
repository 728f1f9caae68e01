"""Reading the ASI-Arch cognition corpus format (and our seed) into validated CognitionEntry objects.

The ASI-Arch corpus is a directory of JSON files, one per paper (the file name is the source URL
with `/` replaced by `_`), each a list of entries with the keys DESIGN_INSIGHT,
EXPERIMENTAL_TRIGGER_PATTERNS, BACKGROUND, ALGORITHMIC_INNOVATION, IMPLEMENTATION_GUIDANCE.
The BACKGROUND section starts with `**Title**: ...`.

A file is all or nothing: if any entry of it fails validation, the file is reported by name and
none of its entries is imported (a half-imported paper would look complete and be wrong).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from pydantic import ValidationError

from services.common.cognition_model import CognitionEntry

CORPUS_KEYS = {
    "EXPERIMENTAL_TRIGGER_PATTERNS": "trigger_patterns",
    "DESIGN_INSIGHT": "design_insight",
    "BACKGROUND": "background",
    "ALGORITHMIC_INNOVATION": "algorithm",
    "IMPLEMENTATION_GUIDANCE": "implementation",
}
_ARXIV = re.compile(r"(\d{4}\.\d{4,5})")
_TITLE = re.compile(r"\*\*Title\*\*:\s*(.+)")


class CorpusError(ValueError):
    pass


def paper_key_of(stem: str) -> str:
    """`arxiv.org_abs_2006.16236` -> `arxiv:2006.16236`; other sources keep their file stem."""
    m = _ARXIV.search(stem)
    return f"arxiv:{m.group(1)}" if m and "arxiv" in stem.lower() else stem


def title_of(entry: dict) -> str:
    m = _TITLE.search(entry.get("BACKGROUND") or "")
    if m and m.group(1).strip().lower() != "none":
        return m.group(1).strip()
    heading = (entry.get("DESIGN_INSIGHT") or "").strip().splitlines()
    return re.sub(r"^#+\s*DESIGN_INSIGHT\w*:\s*", "", heading[0]).strip(" []") if heading else ""


def parse_corpus_file(path: Path, origin: str = "import") -> list[CognitionEntry]:
    """All entries of one corpus file, or CorpusError naming what is wrong."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CorpusError(f"not readable JSON: {e}") from e
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not data:
        raise CorpusError("expected a non-empty JSON list of entries")
    stem = Path(path).stem
    key = paper_key_of(stem)
    entries = []
    for i, raw in enumerate(data):
        if not isinstance(raw, dict):
            raise CorpusError(f"entry {i} is {type(raw).__name__}, not an object")
        missing = [k for k in CORPUS_KEYS if not isinstance(raw.get(k), str) or not raw[k].strip()]
        if missing:
            raise CorpusError(f"entry {i} lacks {', '.join(missing)}")
        try:
            entries.append(CognitionEntry(cognition_id=f"{stem}#{i}", paper_key=key, title=title_of(raw),
                                          origin=origin, **{CORPUS_KEYS[k]: raw[k].strip() for k in CORPUS_KEYS}))
        except ValidationError as e:
            raise CorpusError(f"entry {i}: {e.errors()[0]['loc'][0]}: {e.errors()[0]['msg']}") from e
    return entries


def parse_corpus_dir(path: Path | str, origin: str = "import") -> tuple[list[CognitionEntry], list[str]]:
    """(entries of every valid file, errors as "file name: reason") for a corpus directory."""
    path = Path(path)
    if not path.is_dir():
        raise CorpusError(f"{path} is not a directory")
    entries: list[CognitionEntry] = []
    errors: list[str] = []
    for file in sorted(path.glob("*.json")):
        try:
            entries.extend(parse_corpus_file(file, origin=origin))
        except CorpusError as e:
            errors.append(f"{file.name}: {e}")
    return entries, errors
