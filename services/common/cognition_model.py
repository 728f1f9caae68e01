"""A cognition: one reusable piece of knowledge from a paper, and how it travels as an event.

Fields (the ASI-Arch corpus' sections under plain names):
- trigger_patterns: when the idea applies, phrased like an analyst's problem analysis
  ("fails associative recall at long range ..."). This is the text that is embedded: the analyst
  searches with its shortcomings analysis, so query and key are the same kind of text.
- design_insight, background, algorithm, implementation: what to do and why.
- paper_key / title: the source.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field

from pydantic import BaseModel, Field

from schemas import events as ev

GLOBAL_CAMPAIGN = "global"
TEXT_FIELDS = ("trigger_patterns", "design_insight", "background", "algorithm", "implementation")


class CognitionEntry(BaseModel):
    """The validated shape of one cognition (the same schema for corpus, seed and LLM extraction)."""
    cognition_id: str = Field(min_length=1, max_length=400)
    paper_key: str = Field(min_length=1)
    title: str = ""
    trigger_patterns: str = Field(min_length=20)
    design_insight: str = Field(min_length=10)
    background: str = ""
    algorithm: str = ""
    implementation: str = ""
    origin: str = "import"

    def content_hash(self) -> str:
        blob = "\x1f".join([self.paper_key, self.title, *(getattr(self, f) for f in TEXT_FIELDS)])
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class Cognition:
    """A retrieved cognition with its similarity to the query (cosine, higher = closer)."""
    cognition_id: str
    paper_key: str
    title: str
    trigger_patterns: str
    design_insight: str
    background: str = ""
    algorithm: str = ""
    implementation: str = ""
    origin: str = ""
    score: float = 0.0
    extra: dict = field(default_factory=dict)

    def summary(self, max_chars: int = 400) -> str:
        """A short line for prompts and snapshots: source and the design insight."""
        head = f"[{self.paper_key}] {self.title}: " if self.title else f"[{self.paper_key}] "
        return (head + " ".join(self.design_insight.split()))[:max_chars]

    def as_dict(self) -> dict:
        return asdict(self)


def to_event(entry: CognitionEntry, *, producer: str = "cognition", usage: ev.Usage | None = None) -> ev.CognitionIngested:
    """The event that puts `entry` into the base. Its id is deterministic in (id, content): a
    re-import of an unchanged corpus publishes the same facts, deduplicated downstream."""
    return ev.CognitionIngested(
        event_id=ev.derived_id("CognitionIngested", entry.cognition_id, entry.content_hash()),
        campaign_id=GLOBAL_CAMPAIGN, experiment_id=entry.cognition_id, producer=producer,
        cognition_id=entry.cognition_id, paper_key=entry.paper_key, title=entry.title,
        trigger_patterns=entry.trigger_patterns, design_insight=entry.design_insight, background=entry.background,
        algorithm=entry.algorithm, implementation=entry.implementation, origin=entry.origin, usage=usage)


def from_event(event: ev.CognitionIngested) -> CognitionEntry:
    return CognitionEntry(cognition_id=event.cognition_id, paper_key=event.paper_key, title=event.title,
                          trigger_patterns=event.trigger_patterns, design_insight=event.design_insight,
                          background=event.background, algorithm=event.algorithm,
                          implementation=event.implementation, origin=event.origin)
