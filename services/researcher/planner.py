"""Proposers: turn a ParentSampled (+ feedback of earlier rejected attempts) into a Proposal.

- OfflineProposer: the seeded mutator (mutator.py) + codegen; no LLM.
- LLMPlanner: the planner role of the shared LLM client. Its prompt is the compact context brief plus
  EVERY earlier rejection's feedback for this experiment, so the model learns why it was rejected.
Both are deterministic in (event, attempt, feedback), which keeps redelivered events reproducible
(the LLM through its response cache). Each LLM attempt carries a nonce (`planner_nonce`: the ParentSampled
event id and the attempt) as its sampling seed: it is part of the cache key and is recorded on the event's
usage, so a redelivered attempt is answered from the cache while a new attempt, even from the same context,
asks the model anew and can get a new idea.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from schemas.events import ParentSampled, Usage, derived_id
from services.researcher.codegen import model_params, render
from services.researcher.context import ContextBuilder
from services.researcher.genome import to_jsonable
from services.researcher.mutator import ZOO_DESIGNS, mutate


@dataclass
class Proposal:
    name: str
    motivation: str
    code: str
    origin: Literal["offline", "llm"]
    design: dict[str, Any] | None = None
    usage: Usage | None = None
    route: dict[str, Any] | None = None  # the model router's decision (routing.py), when one chose the model


def known_design(snapshot) -> dict | None:
    """The genome of a program when known: its own, or a zoo member's by name."""
    return snapshot.design or ZOO_DESIGNS.get(snapshot.name.lower().replace("-", "_"))


def proposal_seed(event: ParentSampled, attempt: int) -> int:
    """The mutator's seed: the campaign seed, the parent, the references, the archive's draw and the attempt.
    Not the experiment id: two identical draws propose the same child, and novelty rejects the second."""
    key = derived_id(event.seed, event.parent.experiment_id, *sorted(r.experiment_id for r in event.references),
                     sorted(event.draw.items()), attempt)
    return int(key[:12], 16)


def planner_nonce(event: ParentSampled, attempt: int) -> int:
    """The sampling seed of one planner attempt: stable for a redelivered event, new for each attempt and draw."""
    return int(derived_id(event.event_id, "planner-nonce", attempt).replace("-", "")[:8], 16)


def within_ceiling(event: ParentSampled):
    """The offline proposer's test of a design against the campaign's parameter ceiling (None: no ceiling): the
    design's size counted without running code (codegen.model_params), at the profile's shape."""
    if not event.max_params:
        return None
    from lab.checks import profile_dims

    dims = profile_dims(event.profile)
    return lambda design: model_params(design, dims) <= event.max_params


def size_brief(event: ParentSampled) -> str:
    """The planner's line on the size it must keep (empty without a ceiling)."""
    if not event.max_params:
        return ""
    base = f" (the baseline has {event.baseline_params:,})" if event.baseline_params else ""
    return (f"Parameter ceiling: the whole model may have at most {event.max_params:,} parameters{base}; a "
            "program above it is rejected before training. Gains must come from the design, not from size.")


class OfflineProposer:
    origin = "offline"

    async def propose(self, event: ParentSampled, attempt: int, feedback: list[str]) -> Proposal:
        design, name, motivation = mutate(known_design(event.parent), [known_design(r) for r in event.references],
                                          proposal_seed(event, attempt), feedback, fits=within_ceiling(event))
        return Proposal(name, motivation, render(design, name, motivation), "offline", to_jsonable(design))


class PlannerAnswer(BaseModel):
    name: str = Field(..., description="a short unique name for the new architecture")
    motivation: str = Field(..., description="what changes versus the parent, and the mechanism by which it "
                                             "should improve results")
    code: str = Field(..., description="the COMPLETE python program of the new layer")


SYSTEM = """You are an AI researcher designing linear-attention token mixers (ASI-Arch style).
Propose ONE new architecture that evolves the parent program, using what the results and analyses teach.
Hard rules, checked automatically before training:
- the program defines `class DeltaNet(nn.Module)` with
  `__init__(self, hidden_size=1024, num_heads=4, use_short_conv=True, conv_size=4, layer_idx=None, **kwargs)` and
  `forward(self, hidden_states, attention_mask=None, past_key_values=None, use_cache=False, **kwargs)`
  returning `(output [B, T, hidden_size], None, past_key_values)`;
- imports only torch, einops, math, typing, functools, dataclasses and fla.modules
  (ShortConvolution, RMSNorm, FusedRMSNormGated) / fla.modules.l2norm.l2norm;
- strictly causal: no output may depend on later tokens;
- sub-quadratic in sequence length: chunkwise computation (chunk 64) or recurrences, never a T x T matrix;
- any batch size and any length (also lengths not divisible by the chunk size); samples never mix;
- the parameter count stays close to the parent's, and never above the ceiling the brief states.
Give a motivation that states the change and its expected effect mechanistically."""


def _strip_fence(code: str) -> str:
    m = re.search(r"```(?:python|py)?\s*\n(.*?)```", code, re.S)
    return m.group(1) if m else code


class LLMPlanner:
    origin = "llm"

    def __init__(self, llm, context: ContextBuilder, router=None):
        self.llm, self.context, self.router = llm, context, router

    def messages(self, event: ParentSampled, attempt: int, feedback: list[str]) -> list[dict]:
        user = [self.context.brief(event)]
        if size_brief(event):
            user += ["", size_brief(event)]
        if feedback:
            user += ["", f"## Your earlier attempts for this experiment were REJECTED ({len(feedback)}). "
                         "Do not repeat them; address the feedback:"]
            user += [f"- attempt {i}: {f}" for i, f in enumerate(feedback, 1)]
        user += ["", f"Attempt {attempt}: propose the new architecture as JSON with fields name, motivation, code."]
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n".join(user)}]

    async def propose(self, event: ParentSampled, attempt: int, feedback: list[str]) -> Proposal:
        nonce = planner_nonce(event, attempt)
        model, route = self.router.choose(event.campaign_id, nonce) if self.router is not None else (None, None)
        answer, usage = await self.llm.acomplete_json("planner", self.messages(event, attempt, feedback), PlannerAnswer,
                                                      seed=nonce, model=model)
        return Proposal(answer.name.strip(), answer.motivation.strip(), _strip_fence(answer.code), "llm", None, usage,
                        route)
