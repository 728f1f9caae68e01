"""The compact brief a planner reads: the parent (code + summary) and the references (summaries only).

A program's summary is computed once and cached in SQLite, keyed by experiment_id and a hash of
what it summarises, so a prompt never recomputes it and a changed analysis gives a new summary.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

from schemas.events import ParentSampled, ProgramSnapshot
from services.common.sqlite_state import StateDB

# what a reader wants to know about a program's mechanisms, found in its code
MECHANISMS = [
    (r"\bbeta\b", "delta-rule style writes (beta)"),
    (r"log_decay|decay|forget|\bgk\b|A_log", "decay / forget gate"),
    (r"ShortConvolution|conv1d", "short causal convolution"),
    (r"fir_|FIR", "FIR / multi-scale value paths"),
    (r"l2norm|F\.normalize", "L2-normalised q/k"),
    (r"FusedRMSNormGated", "gated RMSNorm output"),
    (r"\bRMSNorm\b", "RMSNorm output"),
    (r"softmax", "softmax somewhere"),
    (r"head_mix", "head mixing"),
    (r"solve_triangular", "chunked WY triangular solve"),
]


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


class ContextBuilder:
    def __init__(self, cache_path: Path | None = None):
        self.cache_path = Path(cache_path) if cache_path else None
        self._memory: dict[tuple[str, str], str] = {}
        self.computed = 0  # summaries actually computed (not served from a cache)
        self._db = StateDB(self.cache_path, "CREATE TABLE IF NOT EXISTS summaries (experiment_id TEXT, digest TEXT, "
                           "summary TEXT, PRIMARY KEY (experiment_id, digest))") if self.cache_path else None

    def summary(self, snap: ProgramSnapshot) -> str:
        digest = _digest(snap.code, snap.motivation, snap.analysis, "|".join(snap.cognitions),
                         repr(sorted(snap.metrics.items())), repr((snap.fitness, snap.final_loss, snap.benchmark)))
        key = (snap.experiment_id, digest)
        if key in self._memory:
            return self._memory[key]
        if self._db is not None:
            row = self._db.one("SELECT summary FROM summaries WHERE experiment_id = ? AND digest = ?", key)
            if row:
                self._memory[key] = row[0]
                return row[0]
        text = summarise(snap)
        self.computed += 1
        self._memory[key] = text
        if self._db is not None:
            self._db.execute("INSERT OR REPLACE INTO summaries VALUES (?, ?, ?)", (*key, text))
        return text

    def brief(self, event: ParentSampled, *, max_code_chars: int = 12000) -> str:
        parent = event.parent
        lines = ["## Parent", self.summary(parent), "", "### Parent code", "```python",
                 parent.code[:max_code_chars], "```"]
        if event.references:
            lines += ["", "## References (summaries)"]
            for i, ref in enumerate(event.references, 1):
                lines += [f"### Reference {i}", self.summary(ref)]
        return "\n".join(lines)


def summarise(snap: ProgramSnapshot) -> str:
    """A few lines: name, results, motivation, mechanisms found in the code, analysis, cognitions."""
    out = [f"name: {snap.name} (experiment {snap.experiment_id})"]
    results = [f"{k}={v:.4g}" for k, v in (("fitness", snap.fitness), ("final_loss", snap.final_loss),
                                            ("benchmark", snap.benchmark)) if v is not None]
    results += [f"{k}={v:.4g}" for k, v in sorted(snap.metrics.items())[:8]]
    out.append("results: " + (", ".join(results) if results else "not measured yet"))
    if snap.motivation:
        out.append("motivation: " + _clip(snap.motivation, 400))
    found = [label for pattern, label in MECHANISMS if re.search(pattern, snap.code)]
    if found:
        out.append("mechanisms in code: " + ", ".join(found))
    if snap.analysis:
        out.append("analysis: " + _clip(snap.analysis, 600))
    for c in snap.cognitions[:3]:
        out.append("cognition: " + _clip(c, 250))
    return "\n".join(out)


def _clip(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."
