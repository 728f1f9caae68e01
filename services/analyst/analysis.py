"""One experiment's analysis: the paper's five sections, a quasi-ablation, retrieved cognitions.

With an LLM (role "analyst") the five sections are written by the model from the computed facts;
offline they are filled with what can be computed and marked OFFLINE where judgement would be
needed. Either way the shortcomings (the LLM's, or the symptoms of the metrics that got worse)
are the query for the cognition base, and a one-line `experience` is kept for future prompts.
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from services.analyst import compare as C
from services.analyst.state import AnalystState, Record

OFFLINE = "(offline: not judged by an LLM)"
MAX_CODE_CHARS = 10_000
SECTIONS = ("design_evaluation", "results_analysis", "expectation_vs_reality", "theoretical_explanation", "synthesis")


@dataclass
class Context:
    child: Record
    parent: Record | None
    siblings: list[Record]
    baseline: Record | None


def build_context(state: AnalystState, experiment_id: str) -> Context | None:
    """The experiment and its relatives, once its proposal, results and score are known."""
    child = state.record(experiment_id)
    if child is None or not child.complete:
        return None
    parent = state.record(child.proposal.parent_id)
    baseline_id = child.score.baseline_experiment_id
    baseline = state.record(baseline_id) if baseline_id and baseline_id != experiment_id else None
    if baseline is not None and baseline.results is None:
        baseline = None
    siblings = state.siblings(child.results.campaign_id, child.proposal.parent_id, exclude=experiment_id)
    return Context(child, parent, siblings, baseline)


def facts(ctx: Context) -> dict[str, Any]:
    """Every computable comparison (also stored in InsightsStored.ablation)."""
    vs_parent = C.compare(ctx.child, ctx.parent) if ctx.parent and ctx.parent.results else None
    vs_baseline = C.compare(ctx.child, ctx.baseline) if ctx.baseline else None
    out = C.ablation(ctx.child, ctx.parent)
    out["vs_baseline"] = ({m: {k: d[k] for k in ("child", "other", "delta", "better")} for m, d in vs_baseline.items()}
                          if vs_baseline else {})
    out["baseline_id"] = ctx.baseline.experiment_id if ctx.baseline else None
    out["siblings"] = C.siblings_summary(ctx.child, ctx.siblings)
    out["shortcomings"] = C.shortcomings(ctx.child, vs_parent, vs_baseline)
    return out


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def _delta_line(metric: str, d: dict) -> str:
    verdict = "better" if d["better"] else ("worse" if d["delta"] else "same")
    return f"{metric} {_fmt(d['other'])} -> {_fmt(d['child'])} ({d['delta']:+.4g}, {verdict})"


def _verdict(delta_fitness: float | None) -> str:
    if delta_fitness is None:
        return "not comparable"
    if abs(delta_fitness) < 0.005:
        return "no clear change"
    return "improved" if delta_fitness > 0 else "hurt"


def experience_line(ctx: Context, f: dict[str, Any]) -> str:
    """A short reusable lesson: the change and what it did."""
    child = ctx.child
    moved = f.get("moved") or {}
    d_fit = moved.get("fitness", {}).get("delta") if "fitness" in moved else None
    if d_fit is None and ctx.parent and ctx.parent.score and child.score.fitness is not None \
            and ctx.parent.score.fitness is not None:
        d_fit = child.score.fitness - ctx.parent.score.fitness
    change = C.mechanisms_text(f)
    metrics = "; ".join(_delta_line(m, d) for m, d in moved.items() if m != "fitness")[:220]
    parent = f.get("parent_name") or f.get("parent_id") or "no parent"
    fit = f"fitness {d_fit:+.3f}" if d_fit is not None else f"fitness {_fmt(child.score.fitness)}"
    return f"{change} (vs {parent}): {_verdict(d_fit)}, {fit}" + (f"; {metrics}" if metrics else "")


def offline_sections(ctx: Context, f: dict[str, Any], cognitions: list) -> dict[str, str]:
    child, p = ctx.child, ctx.child.proposal
    r, s = child.results, child.score
    lines = [f"{child.name}: fitness {_fmt(s.fitness)}, final_loss {_fmt(r.final_loss)}, benchmark {_fmt(r.benchmark)}"
             + (f" (score error: {s.error})" if s.error else "")]
    if ctx.parent and ctx.parent.results:
        moved = f.get("moved") or {}
        lines.append(f"vs parent {ctx.parent.name}: " + ("; ".join(_delta_line(m, d) for m, d in moved.items())
                                                          or "no metric moved by more than 1 %"))
    if f.get("vs_baseline"):
        lines.append(f"vs baseline {ctx.baseline.name}: "
                     + "; ".join(_delta_line(m, d) for m, d in f["vs_baseline"].items()))
    sib = f.get("siblings") or {}
    if sib.get("rank"):
        lines.append(f"siblings (same parent): rank {sib['rank']} of {sib['of']}, sibling mean fitness "
                     f"{sib['mean_fitness']:.4g}, best {sib['best_id']} ({sib['best_fitness']:.4g})")
    elif ctx.parent:
        lines.append("no scored sibling yet")
    motivation = " ".join((p.motivation or "").split())
    related = "; ".join(c.summary(200) for c in cognitions) or "none retrieved"
    experience = experience_line(ctx, f)
    return {
        "design_evaluation": f"{OFFLINE} Mechanisms changed vs parent: {C.mechanisms_text(f)}. "
                             f"Stated motivation: {motivation[:500] or '(none)'}",
        "results_analysis": "\n".join(lines),
        "expectation_vs_reality": f"{OFFLINE} Expected (motivation): {motivation[:300].rstrip('.') or '(none)'}. "
                                  f"Observed: {experience}",
        "theoretical_explanation": f"{OFFLINE} No causal explanation is attempted offline. Measured shortcomings: "
                                   f"{f.get('shortcomings') or 'none'}. Related cognitions: {related}",
        "synthesis": experience,
    }


class AnalysisSections(BaseModel):
    design_evaluation: str = Field(min_length=1)
    results_analysis: str = Field(min_length=1)
    expectation_vs_reality: str = Field(min_length=1)
    theoretical_explanation: str = Field(min_length=1)
    synthesis: str = Field(min_length=1)
    shortcomings: str = Field("", description="the weaknesses the results reveal, phrased as symptoms")
    experience: str = Field("", description="one or two sentences worth remembering for future designs")


SYSTEM = (
    "You are the analyst of an architecture-search lab for linear-attention layers. Analyse one experiment "
    "against its parent, its siblings and the baseline, in five separate sections: design_evaluation (the "
    "design change and its soundness), results_analysis (what the numbers show), expectation_vs_reality (the "
    "motivation's expectation against the outcome), theoretical_explanation (why, mechanistically), synthesis "
    "(what to do next). Also give `shortcomings` (symptoms of the weaknesses, e.g. 'fails associative recall', "
    "used to search the literature) and `experience` (a reusable one-line lesson). Answer with JSON only."
)


def llm_messages(ctx: Context, f: dict[str, Any]) -> list[dict]:
    p = ctx.child.proposal
    parts = [f"Experiment: {ctx.child.name} ({ctx.child.experiment_id})",
             f"Motivation: {p.motivation}",
             f"Design genome: {json.dumps(p.design, default=str)}" if p.design else "",
             "Code:\n```python\n" + p.code[:MAX_CODE_CHARS] + "\n```",
             f"Computed facts (quasi-ablation, metric deltas, siblings): {json.dumps(f, default=str)}"]
    if ctx.parent and ctx.parent.proposal:
        parts.append(f"Parent {ctx.parent.name} motivation: {ctx.parent.proposal.motivation}")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n\n".join(x for x in parts if x)}]


async def _retrieve(base, query: str, k: int) -> list:
    if base is None or not query:
        return []
    return await asyncio.to_thread(base.search, query, k)


async def analyse(ctx: Context, *, llm=None, base=None, k: int = 5) -> dict[str, Any]:
    """The fields of an InsightsStored (without envelope)."""
    f = facts(ctx)
    fields: dict[str, Any] = {"offline": True, "usage": None}
    sections = None
    if llm is not None:
        from services.common.llm import LLMError

        try:
            sections, usage = await llm.acomplete_json(role="analyst", messages=llm_messages(ctx, f),
                                                       schema=AnalysisSections)
            fields.update(offline=False, usage=usage)
        except LLMError as e:
            f["note"] = f"LLM analyst failed ({type(e).__name__}: {e}); offline analysis instead"
    query = (sections.shortcomings if sections is not None and sections.shortcomings else "") or f["shortcomings"]
    cognitions = await _retrieve(base, query, k)
    if sections is not None:
        fields.update({name: getattr(sections, name) for name in SECTIONS})
        fields["experience"] = sections.experience or sections.synthesis[:300]
    else:
        fields.update(offline_sections(ctx, f, cognitions))
        fields["experience"] = fields["synthesis"]
    f["query"] = query
    fields.update(ablation=f, cognition_ids=[c.cognition_id for c in cognitions],
                  cognition_summaries=[c.summary() for c in cognitions])
    return fields
