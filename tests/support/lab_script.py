"""A scripted LLM for a whole campaign: one responder that answers every role by what it is asked.

    script = LabScript(programs)            # [(name, motivation, code), ...] the planner replays, in order
    scripted_llm.responder = script         # tests.support.scripted_llm's server calls it per request

The role is read from the request's system prompt (each role has its own), so requests may come in any
order from any service process. What it answers (and what the e2e test checks):
- planner: the first fresh request gets programs[0]; the second fresh one a near-duplicate of it (same code
  but a constant, a reworded motivation); a request that carries a DUPLICATE feedback gets programs[1] with
  a bug that only training meets (a gain table sized for batches up to MAX_BATCH: the sanity checks' small
  batches pass, the first training batch fails with a shape error); later fresh requests get programs[2:].
- novelty: duplicate exactly when the proposal is the near-duplicate (and names what it repeats).
- debugger: for the buggy program, the fixed one (the gain broadcast over any batch); for anything else the
  failing code unchanged (which the debugger refuses: an unexpected failure shows as an abandon).
- judge: the first request is answered 429 (rate limited), every other one with a valid verdict.
- analyst: the first answer is malformed (prose, no JSON object), every other one valid.
Token counts are ~4 characters per token of the request and of the answer, so costs are plausible.
"""
from __future__ import annotations

import json
import re
import threading
from collections import Counter
from typing import Any

MAX_BATCH = 8
DUPLICATE_SUFFIX = "_v2"
BUG = f'''

# --- a per-sequence input gain (starts at 1), from a table sized for the largest batch expected
_MAX_BATCH = {MAX_BATCH}
_inner_forward = DeltaNet.forward


def _forward_with_sequence_gain(self, hidden_states, *args, **kwargs):
    gains = torch.ones(_MAX_BATCH, 1, 1, dtype=hidden_states.dtype, device=hidden_states.device)
    hidden_states = hidden_states * gains[: hidden_states.shape[0]]
    return _inner_forward(self, hidden_states, *args, **kwargs)


DeltaNet.forward = _forward_with_sequence_gain
'''
BUGGY_INDEX = "gains[: hidden_states.shape[0]]"
FIXED_INDEX = "gains[:1]"

ROLE_MARKERS = (("planner", "You are an AI researcher designing"), ("novelty", "You judge the novelty"),
                ("debugger", "You are the debugger"), ("judge", "You are the judge"),
                ("analyst", "You are the analyst"))


def role_of(body: dict) -> str:
    system = "\n".join(str(m.get("content", "")) for m in body.get("messages", []) if m.get("role") == "system")
    return next((role for role, marker in ROLE_MARKERS if marker in system), "unknown")


def tokens(text: str) -> int:
    return max(1, len(text) // 4)


class LabScript:
    def __init__(self, programs: list[tuple[str, str, str]]):
        if len(programs) < 2:
            raise ValueError("the script needs at least two programs")
        self.programs = programs
        self.lock = threading.Lock()
        self.calls: Counter[str] = Counter()          # requests per role
        self.fresh_planner = 0
        self.served: list[dict[str, Any]] = []        # every answer: role, status, tokens, model
        self.prompts: dict[str, list[str]] = {}       # role -> the prompts it was sent, in order

    # --- the programs the planner writes
    @property
    def original(self) -> tuple[str, str, str]:
        return self.programs[0]

    @property
    def duplicate(self) -> tuple[str, str, str]:
        name, motivation, code = self.programs[0]
        return (name + DUPLICATE_SUFFIX, "A refinement of the same design: " + motivation[:600],
                code + "\n\n_VARIANT_SCALE = 2  # a trivial variant\n")

    @property
    def buggy(self) -> tuple[str, str, str]:
        name, motivation, code = self.programs[1]
        return name, motivation, code + BUG

    @property
    def fixed_code(self) -> str:
        return self.buggy[2].replace(BUGGY_INDEX, FIXED_INDEX)

    # --- the responder
    def __call__(self, body: dict) -> dict:
        role = role_of(body)
        prompt = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
        with self.lock:
            self.calls[role] += 1
            n = self.calls[role]
            self.prompts.setdefault(role, []).append(prompt)
            item = getattr(self, f"_{role}", self._unknown)(prompt, n)
            if "content" in item:
                item["usage"] = (tokens(prompt), tokens(item["content"]))
            self.served.append({"role": role, "model": body.get("model"), "status": item.get("status", 200),
                                "usage": item.get("usage", (0, 0))})
            return item

    @staticmethod
    def _json(obj: Any) -> dict:
        return {"content": json.dumps(obj)}

    def _planner(self, prompt: str, n: int) -> dict:
        if "DUPLICATE" in prompt:
            name, motivation, code = self.buggy
        else:
            self.fresh_planner += 1
            k = self.fresh_planner
            name, motivation, code = (self.original if k == 1 else self.duplicate if k == 2
                                      else self.programs[min(k - 1, len(self.programs) - 1)])
        return self._json({"name": name, "motivation": motivation, "code": code})

    def _novelty(self, prompt: str, n: int) -> dict:
        m = re.search(r"NEW PROPOSAL: (\S+)", prompt)
        proposed = m.group(1) if m else ""
        if proposed == self.duplicate[0]:
            past = re.search(r"\[([^\]]+)\] " + re.escape(self.original[0]) + r" ", prompt)
            return self._json({"duplicate": True, "repeats_experiment_id": past.group(1) if past else None,
                               "explanation": f"{proposed} is {self.original[0]} with a renamed constant: the same "
                                              "mechanism, only reworded."})
        return self._json({"duplicate": False, "repeats_experiment_id": None,
                           "explanation": f"{proposed} combines mechanisms none of the neighbours has."})

    def _debugger(self, prompt: str, n: int) -> dict:
        if BUGGY_INDEX not in prompt:
            code = re.search(r"```python\n(.*?)```", prompt, re.S)
            return self._json({"diagnosis": "unknown", "changes": "none", "code": code.group(1) if code else ""})
        return self._json({"diagnosis": f"the gain table has {MAX_BATCH} rows, so a training batch larger than "
                                        f"{MAX_BATCH} does not broadcast (shape error)",
                           "changes": "one gain broadcast over the whole batch", "code": self.fixed_code})

    def _judge(self, prompt: str, n: int) -> dict:
        if n == 1:
            return {"status": 429, "message": "rate limited (scripted)"}
        return self._json({"performance": 6, "innovation": 7, "complexity": 5,
                           "rationale": "measured close to the baseline; a new combination of known parts"})

    def _analyst(self, prompt: str, n: int) -> dict:
        if n == 1:
            return {"content": "Here is my analysis: the design is sound and the results look promising."}
        return self._json({"design_evaluation": "the change is coherent with the parent",
                           "results_analysis": "loss and recall close to the baseline",
                           "expectation_vs_reality": "the expected gain did not show at this scale",
                           "theoretical_explanation": "the proxy is too short for the extra paths to matter",
                           "synthesis": "keep the gating, simplify the fusion",
                           "shortcomings": "weak associative recall at long range",
                           "experience": "extra fusion paths need more steps than the proxy gives"})

    def _unknown(self, prompt: str, n: int) -> dict:
        return {"status": 500, "message": "the scripted lab does not know this role"}
