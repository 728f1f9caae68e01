"""The LLM judge's qualitative score: performance, innovation, complexity (each 1..10), weighted.

The judge sees the program (code, motivation), its metrics and the baseline's, and answers JSON
validated against `QualitativeJudgement`. Criteria (also in the prompt):
- performance: how the measured results compare with the baseline, taking noise into account;
- innovation: how new the mechanism is relative to known linear-attention designs and its baseline;
- complexity: implementation quality and cost; 10 = elegant and efficient, 1 = convoluted or wasteful.
The weighted mean (fitness.QUALITATIVE_WEIGHTS) is rescaled from 1..10 to [0, 1].
"""
from __future__ import annotations

import asyncio
import json

from pydantic import BaseModel, Field

from schemas import events as ev
from lab.judging import fitness as F
from lab.judging.score import Qualitative

MAX_CODE_CHARS = 12_000


class QualitativeJudgement(BaseModel):
    performance: float = Field(ge=1, le=10)
    innovation: float = Field(ge=1, le=10)
    complexity: float = Field(ge=1, le=10)
    rationale: str = ""


SYSTEM = (
    "You are the judge of an architecture-search lab for linear-attention layers. Score the candidate "
    "on three criteria, each from 1 (poor) to 10 (excellent):\n"
    "- performance: its measured results against the campaign's baseline (lower loss, higher benchmark are "
    "better; small differences may be noise);\n"
    "- innovation: how new its mechanism is compared with known linear-attention designs and the baseline;\n"
    "- complexity: implementation quality and cost (10 = elegant and efficient, 1 = convoluted or wasteful).\n"
    "Answer with JSON only: {\"performance\": n, \"innovation\": n, \"complexity\": n, \"rationale\": \"...\"}."
)


def judge_messages(result: ev.ResultsReady, baseline: ev.ResultsReady, program: dict | None,
                   baseline_program: dict | None) -> list[dict]:
    def metrics(r: ev.ResultsReady) -> str:
        return json.dumps({"final_loss": r.final_loss, "benchmark": r.benchmark, **r.metrics,
                           "params": r.params, "tokens_per_s": round(r.tokens_per_s, 1)}, default=str)

    parts = [f"Candidate: {result.name} (experiment {result.experiment_id}, profile {result.profile})",
             f"Candidate metrics: {metrics(result)}",
             f"Baseline: {baseline.name} metrics: {metrics(baseline)}"]
    if program:
        parts += [f"Motivation: {program.get('motivation', '')}",
                  "Candidate code:\n```python\n" + program.get("code", "")[:MAX_CODE_CHARS] + "\n```"]
    else:
        parts.append("(The candidate's code was not available to the judge.)")
    if baseline_program:
        parts.append("Baseline code:\n```python\n" + baseline_program.get("code", "")[:MAX_CODE_CHARS // 2] + "\n```")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]


async def call_llm(llm, **kwargs):
    """The shared client's `acomplete_json` (a worker thread), or a plain client's `complete_json`."""
    if hasattr(llm, "acomplete_json"):
        return await llm.acomplete_json(**kwargs)
    return await asyncio.to_thread(llm.complete_json, **kwargs)


async def judge_qualitative(llm, result: ev.ResultsReady, baseline: ev.ResultsReady, program: dict | None,
                            baseline_program: dict | None) -> Qualitative:
    """Ask the LLM (role "judge"). Raises what the client raises (LLMUnavailable / LLMInvalidOutput)."""
    verdict, usage = await call_llm(llm, role="judge", messages=judge_messages(result, baseline, program,
                                                                                 baseline_program),
                                    schema=QualitativeJudgement)
    criteria = {"performance": verdict.performance, "innovation": verdict.innovation,
                "complexity": verdict.complexity}
    detail = {**criteria, "rationale": verdict.rationale, "criteria_weights": dict(F.QUALITATIVE_WEIGHTS),
              "scale": list(F.QUALITATIVE_RANGE), "code_seen": program is not None}
    return Qualitative(score=F.qualitative_score(criteria), detail=detail, usage=usage)
