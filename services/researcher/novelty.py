"""Novelty: is a proposal a repeat of an experiment already in the campaign?

The motivation is embedded and the 5 most similar past motivations of the campaign are retrieved
from the vector store (one record per experiment, id = experiment_id). Then:
- an identical normalised program (comments, docstrings, formatting and names stripped) is always
  a duplicate;
- with an LLM, the novelty judge (role "novelty") reads the proposal and the 5 neighbours and decides;
- offline, a duplicate is a neighbour whose motivation similarity reaches SIMILARITY_THRESHOLD.

SIMILARITY_THRESHOLD is calibrated on the offline mutator's own motivations (`python bench/propose.py
--calibrate --n 300`, all-MiniLM-L6-v2, 294 distinct designs): the motivation of the nearest OTHER
design has cosine similarity p50 0.894 / p90 0.940 / p99 0.974 / max 0.980, while a rewording of the
same change (another phrasing) scores p50 0.944 / p10 0.870 / min 0.823. The two overlap: templated
motivations of neighbouring designs read alike. Threshold -> distinct designs wrongly rejected /
paraphrases caught: 0.94 -> 9.5 % / 54 %, 0.96 -> 3.4 % / 33 %, 0.98 -> 0.7 % / 13 %. We take 0.98: a
wrong rejection costs a whole attempt, and a paraphrase of the same design is caught anyway by the
normalised-code hash (same design -> same program). Similarity alone is a weak duplicate signal for
template text; with an LLM configured the novelty judge decides instead.

Memory across processes: a record is upserted when this researcher accepts a proposal, and main.py
also subscribes to every ProposalCreated (own consumer group) so proposals of other researcher
processes, baselines and debugger revisions are learned too; upserts are idempotent (id =
experiment_id). Records of the experiment being checked are excluded, so a redelivered event is
never its own duplicate.
"""
from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from schemas.events import SimilarExperiment, Usage
from lab.program import code_hash

SIMILARITY_THRESHOLD = 0.98
NEIGHBOURS = 5


@dataclass
class NoveltyVerdict:
    duplicate: bool
    similar: list[SimilarExperiment] = field(default_factory=list)
    feedback: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    usage: Usage | None = None


class NoveltyJudgement(BaseModel):
    """The novelty judge's answer."""
    duplicate: bool
    repeats_experiment_id: str | None = Field(None, description="the experiment it repeats, if a duplicate")
    explanation: str = Field(..., description="why it is or is not a repeat, naming the mechanisms")


def _q(value: str) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


class NoveltyChecker:
    def __init__(self, embedder, store, *, threshold: float = SIMILARITY_THRESHOLD, llm=None, k: int = NEIGHBOURS):
        self.embedder, self.store, self.threshold, self.llm, self.k = embedder, store, threshold, llm, k
        self._vectors: OrderedDict[str, list[float]] = OrderedDict()  # a cache: check() then remember() embed once

    async def _embed(self, text: str) -> list[float]:
        if text in self._vectors:
            self._vectors.move_to_end(text)
            return self._vectors[text]
        vector = (await asyncio.to_thread(self.embedder.embed, [text]))[0]
        self._vectors[text] = vector
        if len(self._vectors) > 256:
            self._vectors.popitem(last=False)
        return vector

    def _filter(self, campaign_id: str, experiment_id: str, extra: str = "") -> str:
        f = f"campaign_id == {_q(campaign_id)} and experiment_id != {_q(experiment_id)}"
        return f + (f" and {extra}" if extra else "")

    async def check(self, *, campaign_id: str, experiment_id: str, name: str, motivation: str,
                    code: str) -> NoveltyVerdict:
        digest = code_hash(code)
        vector = await self._embed(motivation or name)
        same = self.store.search(vector, 1, self._filter(campaign_id, experiment_id, f"code_hash == {_q(digest)}"))
        hits = self.store.search(vector, self.k, self._filter(campaign_id, experiment_id))
        similar = [SimilarExperiment(experiment_id=h.payload.get("experiment_id", h.id), name=h.payload.get("name", ""),
                                     similarity=round(h.score, 4), motivation=h.payload.get("motivation", "")[:500])
                   for h in hits]
        evidence = {"code_hash": digest, "threshold": self.threshold, "judge": "llm" if self.llm else "threshold",
                    "top_similarity": similar[0].similarity if similar else None}
        if same:
            h = same[0]
            rep = SimilarExperiment(experiment_id=h.payload.get("experiment_id", h.id), name=h.payload.get("name", ""),
                                    similarity=round(h.score, 4), motivation=h.payload.get("motivation", "")[:500])
            return NoveltyVerdict(True, [rep] + [s for s in similar if s.experiment_id != rep.experiment_id],
                                  _feedback(name, rep, "is the same program (identical after removing comments, "
                                                       "docstrings and names)"), {**evidence, "exact": True})
        if not similar:
            return NoveltyVerdict(False, [], "", evidence)
        if self.llm is not None:
            judgement, usage = await self.llm.acomplete_json("novelty", _judge_messages(name, motivation, similar),
                                                            NoveltyJudgement)
            evidence["explanation"] = judgement.explanation
            if judgement.duplicate:
                rep = next((s for s in similar if s.experiment_id == judgement.repeats_experiment_id), similar[0])
                return NoveltyVerdict(True, similar, _feedback(name, rep, f"repeats its idea: {judgement.explanation}"),
                                      evidence, usage)
            return NoveltyVerdict(False, similar, "", evidence, usage)
        top = similar[0]
        if top.similarity >= self.threshold:
            return NoveltyVerdict(True, similar, _feedback(name, top, f"has a motivation {top.similarity:.3f} similar "
                                                                      f"(threshold {self.threshold})"), evidence)
        return NoveltyVerdict(False, similar, "", evidence)

    async def remember(self, *, campaign_id: str, experiment_id: str, name: str, motivation: str, code: str,
                       origin: str = "") -> None:
        vector = await self._embed(motivation or name)
        self.store.upsert([experiment_id], [vector], [{
            "campaign_id": campaign_id, "experiment_id": experiment_id, "name": name,
            "motivation": (motivation or "")[:2000], "code_hash": code_hash(code), "origin": origin}])


def _feedback(name: str, rep: SimilarExperiment, why: str) -> str:
    return (f"DUPLICATE: proposal '{name}' {why} of experiment {rep.experiment_id} '{rep.name}'. "
            f"That experiment's motivation: {rep.motivation[:300]!r}. Propose a different mechanism, not a "
            f"rewording or re-implementation of '{rep.name}'.")


def _judge_messages(name: str, motivation: str, similar: list[SimilarExperiment]) -> list[dict]:
    past = "\n\n".join(f"[{s.experiment_id}] {s.name} (similarity {s.similarity:.3f}):\n{s.motivation}" for s in similar)
    return [
        {"role": "system", "content": "You judge the novelty of neural architecture proposals. A proposal is a "
                                      "DUPLICATE only if it implements essentially the same mechanism as a past "
                                      "experiment (a rewording, a renaming, or a trivial hyper-parameter change). "
                                      "A different mechanism or a new combination is novel."},
        {"role": "user", "content": f"NEW PROPOSAL: {name}\n{motivation}\n\nMOST SIMILAR PAST EXPERIMENTS:\n{past}"},
    ]
