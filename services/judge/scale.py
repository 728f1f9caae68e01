"""One fitness scale per campaign: a fitness is only ranked against fitnesses of the same components.

A judge with an LLM scores (loss, benchmark, qualitative); an offline judge scores (loss, benchmark) for
every result of the campaign. What must never happen is the mix: when the LLM judge fails for one result
(unreachable after every retry, or invalid answers), a mean of the two quantitative components would
rank a 2-of-3 fitness against 3-of-3 fitnesses, and a fitness near 0.5 from two components is not the same
quantity as one from three. Such a result gets an explicit error state instead: fitness None, the
quantitative components kept, `error` saying which component is missing and why. It is not ranked and
not sampled as a parent; `archlab rescore` (or a judge redelivery once the LLM is back) scores it later.
"""
from __future__ import annotations

from typing import Any

QUALITATIVE_MISSING = "qualitative_missing"


def require_qualitative(fields: dict[str, Any], why: str) -> dict[str, Any]:
    """The ScoreAssigned fields of a result whose LLM judgement is missing while the campaign's scale has it:
    no fitness, an explicit error, the quantitative components kept for a later rescore."""
    if fields.get("fitness") is None:  # already an error (no baseline, invalid metrics): that error stands
        return fields
    out = dict(fields)
    out.update(fitness=None, significant=None, qualitative=None, qualitative_judged=False,
               error=f"{QUALITATIVE_MISSING}: the LLM judge gave no qualitative score ({why}); this campaign's "
                     "fitness has three components, so a 2-of-3 mean is not ranked (rescore it when the judge is "
                     "back)",
               note="; ".join(n for n in (fields.get("note"), "scored late: not ranked until rescored") if n))
    return out
