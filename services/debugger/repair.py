"""The debugger (ASI-Arch's self-revision): a failed run's error goes to an LLM that fixes the code.

TrainingFailed(revision n) -> ProposalCreated(revision n+1, origin="debugger") with the revised
code, or ExperimentAbandoned. Revision 0 is the researcher's original; the first fix is revision 1.
At most `max_revisions` fixes per experiment (the campaign's ParentSampled.max_revisions, else
settings.debugger_max_revisions); a failure of revision max_revisions abandons the experiment.

Which failures are debugged (see docs/engineer.md):
- compile_error, runtime_error, eval_error, crashed, timeout, memory, too_slow, diverged: yes;
  each kind gets its own instruction (a fix for too_slow is a cheaper computation, not a new idea).
- forbidden: never. The program tried to leave the sandbox (process, network, files); a "fix"
  of hostile behaviour is not research.
- suspected_leak: never. A causality leak is the design's flaw, and a revision that gets past the
  leak detector cannot be told apart from a better hidden leak.
- infrastructure: not the program's fault: the same code is proposed again (no LLM, works offline).
Offline (no LLM configured) a failure with a recognisable cause (dtype mismatch, a view of a
non-contiguous tensor, NaN at step k, out of memory) gets a rule-based revision (repair_rules.py,
checks.debugger.rule names it); any other debuggable failure is terminal at once:
ExperimentAbandoned(reason="no debugger: offline mode (no rule for this failure)").

The debugger runs in its own consumer group ("debugger") in its own process: no GPU is held while
an LLM thinks.
"""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

from pydantic import BaseModel, Field

from schemas import events as ev
from services.common.llm import LLMClient, LLMError, LLMInvalidOutput
from services.common.sqlite_state import StateDB
from lab.checks import static_check
from lab.program import code_hash
from services.debugger.repair_rules import rule_revision

PRODUCER = "debugger"
NOT_DEBUGGED = {"forbidden": "the program attempted a forbidden operation in the sandbox",
                "suspected_leak": "the monitor found an information leak (the model sees the future)",
                "noncausal_at_scoring": "the scored forward read future tokens (the scorer's causality probe)"}
RETRY_AS_IS = {"infrastructure"}
HINTS = {
    "compile_error": "The program does not build. Fix the definition error; keep the architecture.",
    "runtime_error": "The forward or backward pass raises. Fix shapes, dtypes or indexing; keep the architecture.",
    "eval_error": "Training worked but evaluation failed (e.g. a batch of size 1, another sequence length, "
                  "no grad). Make the layer work for any batch size and sequence length.",
    "crashed": "The process died without a Python error (e.g. a segfault in an op). Avoid the offending op.",
    "timeout": "The run exceeded its time limit. Make the computation cheaper (chunked or vectorised, no "
               "Python loop over time steps); keep the mechanism.",
    "too_slow": "Steps are much slower than the baseline's. Remove the cost (Python loops over tokens, "
                "quadratic intermediates); keep the mechanism and its sub-quadratic complexity.",
    "memory": "The run exceeded its memory limit. Avoid materialising [T, T] or [T, d, d] tensors per token; "
              "use chunking.",
    "diverged": "The loss became NaN/inf. Stabilise the numerics (normalisation, clamping, eps, gate "
                "parametrisation, log-space decay) without changing the idea.",
}
SYSTEM = (
    "You are the debugger of an autonomous research lab that trains linear-attention layers. A layer program "
    "failed. Return the complete corrected program. Rules: keep `class DeltaNet(nn.Module)` with "
    "`__init__(self, hidden_size, num_heads, ..., **kwargs)` and `forward(self, hidden_states, "
    "attention_mask=None, **kwargs) -> (output, None, past_key_values)`; keep the architecture's core idea; "
    "change as little as needed; keep it causal and sub-quadratic; only torch, einops and fla.modules imports.")
MAX_PROMPT_TRACEBACK = 6000


class DebuggerAnswer(BaseModel):
    diagnosis: str = Field(description="what went wrong, in one or two sentences")
    changes: str = Field(description="what was changed to fix it")
    code: str = Field(description="the complete corrected program")


class DebuggerMemory:
    """What the debugger remembers of the log: proposals (context for revisions) and revision budgets."""

    SCHEMA = ("CREATE TABLE IF NOT EXISTS proposals (experiment_id TEXT, revision INTEGER, body TEXT, "
              "PRIMARY KEY (experiment_id, revision));"
              "CREATE TABLE IF NOT EXISTS budgets (experiment_id TEXT PRIMARY KEY, max_revisions INTEGER);")

    def __init__(self, path: Path):
        self.path = Path(path)
        self._db = StateDB(self.path, self.SCHEMA)

    def remember_proposal(self, p: ev.ProposalCreated) -> None:
        self._db.execute("INSERT OR IGNORE INTO proposals VALUES (?, ?, ?)",
                         (p.experiment_id, p.revision, p.model_dump_json()))

    def proposal(self, experiment_id: str, revision: int) -> ev.ProposalCreated | None:
        row = self._db.one("SELECT body FROM proposals WHERE experiment_id = ? AND revision = ?",
                           (experiment_id, revision))
        return ev.ProposalCreated.model_validate_json(row[0]) if row else None

    def remember_budget(self, experiment_id: str, max_revisions: int) -> None:
        self._db.execute("INSERT OR REPLACE INTO budgets VALUES (?, ?)", (experiment_id, max_revisions))

    def budget(self, experiment_id: str) -> int | None:
        row = self._db.one("SELECT max_revisions FROM budgets WHERE experiment_id = ?", (experiment_id,))
        return row[0] if row else None


def failure_prompt(failed: ev.TrainingFailed, proposal: ev.ProposalCreated, history: list[str]) -> list[dict]:
    evidence = {k: v for k, v in failed.evidence.items() if k not in ("violations",)}
    parts = [
        f"Architecture: {proposal.name}\nMotivation: {proposal.motivation}",
        f"Failure kind: {failed.kind}\nWhat to do: {HINTS.get(failed.kind, 'Fix the error.')}",
        f"Error: {failed.error}",
        f"Traceback:\n{failed.traceback[-MAX_PROMPT_TRACEBACK:] or '(none)'}",
        f"Log tail:\n{failed.log_tail[-1500:]}",
        f"Evidence: {json.dumps(evidence, default=str)[:1500]}",
        f"The program (revision {failed.revision}):\n```python\n{failed.code or proposal.code}\n```",
    ]
    if history:
        parts.append("Your earlier answers were refused:\n" + "\n".join(history))
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]


def vet(code: str, original: str) -> str | None:
    """Why a revised program is refused before training, or None (static checks only: nothing runs here)."""
    if code_hash(code) == code_hash(original):
        return "the revised code is identical to the failing code"
    outcome = static_check(code)
    return None if outcome.ok else f"{outcome.reason}: {outcome.feedback}"


class Debugger:
    def __init__(self, settings, memory: DebuggerMemory, llm: LLMClient | None = None, *,
                 answer_attempts: int = 2, proposal_wait_s: float = 30.0):
        self.settings, self.memory = settings, memory
        self.llm = llm if llm is not None else (LLMClient(settings) if settings.llm_configured else None)
        self.answer_attempts, self.proposal_wait_s = answer_attempts, proposal_wait_s

    def max_revisions(self, experiment_id: str) -> int:
        budget = self.memory.budget(experiment_id)
        return self.settings.debugger_max_revisions if budget is None else budget

    async def _proposal(self, failed: ev.TrainingFailed) -> ev.ProposalCreated:
        # ProposalCreated is consumed by a sibling subscriber: on a replay it may come a moment later
        deadline = asyncio.get_running_loop().time() + self.proposal_wait_s
        while True:
            proposal = self.memory.proposal(failed.experiment_id, failed.revision)
            if proposal is not None:
                return proposal
            if asyncio.get_running_loop().time() > deadline:
                raise LookupError(f"no ProposalCreated known for {failed.experiment_id} revision {failed.revision}")
            await asyncio.sleep(0.2)

    def _abandon(self, failed: ev.TrainingFailed, reason: str, **detail) -> ev.ExperimentAbandoned:
        history = [{"revision": failed.revision, "kind": failed.kind, "error": failed.error[:500], **detail}]
        return failed.caused(ev.ExperimentAbandoned, producer=PRODUCER, reason=reason,
                             revisions=failed.revision, history=history)

    def _revision(self, failed: ev.TrainingFailed, proposal: ev.ProposalCreated, code: str, *,
                  checks: dict, usage: ev.Usage | None) -> ev.ProposalCreated:
        return failed.caused(
            ev.ProposalCreated, producer=PRODUCER, discriminator=failed.revision + 1,
            name=proposal.name, code=code, motivation=proposal.motivation, role=proposal.role,
            attempt=proposal.attempt, revision=failed.revision + 1, parent_id=proposal.parent_id,
            reference_ids=list(proposal.reference_ids), origin="debugger", design=proposal.design,
            code_hash=code_hash(code), profile=proposal.profile, seed=proposal.seed, checks=checks, usage=usage)

    async def handle_failure(self, failed: ev.TrainingFailed) -> list[ev.Event]:
        if failed.kind in NOT_DEBUGGED:
            return [self._abandon(failed, f"not debugged: {NOT_DEBUGGED[failed.kind]} ({failed.kind})")]
        limit = self.max_revisions(failed.experiment_id)
        if failed.revision >= limit:
            return [self._abandon(failed, f"revisions exhausted: {failed.revision} of {limit} debugger revisions "
                                          f"failed (last: {failed.kind})")]
        proposal = await self._proposal(failed)
        if failed.kind in RETRY_AS_IS:
            return [self._revision(failed, proposal, failed.code or proposal.code, usage=None,
                                   checks={"debugger": {"retry_of": failed.revision, "failed_kind": failed.kind,
                                                        "diagnosis": "infrastructure failure: same code again"}})]
        if self.llm is None:
            return [self._offline(failed, proposal)]
        return [await self._ask(failed, proposal)]

    def _offline(self, failed: ev.TrainingFailed, proposal: ev.ProposalCreated) -> ev.Event:
        """Without an LLM: a rule-based revision when the failure's cause is recognised, else abandon."""
        original = failed.code or proposal.code
        fix = rule_revision(failed, original)
        refusal = vet(fix.code, original) if fix is not None else "no rule for this failure"
        if fix is None or refusal is not None:
            return self._abandon(failed, f"no debugger: offline mode ({refusal})")
        checks = {"debugger": {"diagnosis": fix.diagnosis, "changes": fix.changes, "rule": fix.rule,
                               "offline": True, "failed_kind": failed.kind, "failed_error": failed.error[:500],
                               "fixes_revision": failed.revision}}
        return self._revision(failed, proposal, fix.code, checks=checks, usage=None)

    async def _ask(self, failed: ev.TrainingFailed, proposal: ev.ProposalCreated) -> ev.Event:
        from services.common.llm import merge_usage

        history: list[str] = []
        usage: ev.Usage | None = None
        for _ in range(self.answer_attempts):
            try:
                answer, u = await self.llm.acomplete_json("debugger", failure_prompt(failed, proposal, history),
                                                          DebuggerAnswer)
            except LLMInvalidOutput as e:
                return self._abandon(failed, f"debugger failed: invalid LLM output: {e}")
            except LLMError as e:  # unavailable after retries, or a refused request
                return self._abandon(failed, f"debugger failed: {type(e).__name__}: {e}")
            usage = merge_usage(usage, u)
            refusal = vet(answer.code, failed.code or proposal.code)
            if refusal is None:
                checks = {"debugger": {"diagnosis": answer.diagnosis, "changes": answer.changes,
                                       "failed_kind": failed.kind, "failed_error": failed.error[:500],
                                       "fixes_revision": failed.revision}}
                return self._revision(failed, proposal, answer.code, checks=checks, usage=usage)
            history.append(f"- {refusal}")
        return self._abandon(failed, f"debugger failed: every revised program was refused ({history[-1][2:]})")
