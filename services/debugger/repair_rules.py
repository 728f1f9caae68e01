"""Offline self-revision: rule-based fixes for training failures with a recognisable cause (no LLM).

    fix = rule_revision(failed, code)      # a RuleFix(code, rule, diagnosis, changes) or None

Without an LLM the debugger still revises a failure whose cause the error names, so the offline lab
exercises the same path (TrainingFailed -> ProposalCreated revision n+1 -> training) as an LLM lab:

| cause (how it is recognised)                                   | rule                                          |
| --- | --- |
| dtype mismatch (runtime/eval/compile error naming dtypes,      | compute in float32: torch.bfloat16/float16/    |
|   "expected scalar type", "same dtype", BFloat16/Half)        |   half -> torch.float32, .bfloat16()/.half() -> .float() |
| shape error from a view of a non-contiguous tensor             | .view( -> .reshape(                            |
|   ("view size is not compatible", "use .reshape")             |                                               |
| NaN/inf loss at step k (kind diverged)                        | clamp exp arguments (max 30), log and sqrt     |
|                                                                |   arguments (min 1e-6 / 0), eps below 1e-6 -> 1e-5 |
| out of memory (kind memory)                                    | halve the literal chunk sizes (>= 16)          |

A rule that changes nothing returns None (the debugger then abandons, as before); a rule never changes
the architecture's idea, and every revision still meets the sanity checks in the runner. Other shape errors
(a wrong projection size, a broadcast of mismatched lengths) have no generic fix: they need an LLM.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from schemas import events as ev


@dataclass(frozen=True)
class RuleFix:
    code: str
    rule: str
    diagnosis: str
    changes: str


DTYPE_ERROR = re.compile(r"expected (?:scalar type|m1 and m2 to have the same dtype|both .* same dtype)|"
                         r"must have the same dtype|dtype mismatch|BFloat16|\bHalf\b|found dtype", re.I)
VIEW_ERROR = re.compile(r"view size is not compatible with input tensor's size and stride|use \.reshape", re.I)
LOW_PRECISION = [(r"torch\.bfloat16\b", "torch.float32"), (r"torch\.float16\b", "torch.float32"),
                 (r"torch\.half\b", "torch.float32"), (r"\.bfloat16\(\)", ".float()"), (r"\.half\(\)", ".float()")]


def _text(failed: ev.TrainingFailed) -> str:
    return "\n".join((failed.error or "", failed.traceback or "", failed.log_tail or ""))


def _sub_all(code: str, pairs: list[tuple[str, str]]) -> tuple[str, int]:
    total = 0
    for pattern, repl in pairs:
        code, n = re.subn(pattern, repl, code)
        total += n
    return code, total


def _call_args(code: str, open_paren: int) -> int | None:
    """The index of the parenthesis closing the one at `open_paren` (strings are not parsed: good enough for
    the numeric expressions these rules wrap), or None."""
    depth = 0
    for i in range(open_paren, len(code)):
        if code[i] == "(":
            depth += 1
        elif code[i] == ")":
            depth -= 1
            if depth == 0:
                return i
    return None


def wrap_call_arguments(code: str, func: str, wrap: str) -> tuple[str, int]:
    """`func(ARG)` -> `func(torch.clamp(ARG, <wrap>))` for each call of `func` (e.g. "torch.exp") whose argument
    is not already clamped. Returns (code, number of calls wrapped)."""
    out, i, n = [], 0, 0
    pattern = re.compile(re.escape(func) + r"\(")
    while True:
        m = pattern.search(code, i)
        if m is None:
            out.append(code[i:])
            break
        start = m.end() - 1
        end = _call_args(code, start)
        arg = code[start + 1:end] if end is not None else ""
        if end is None or arg.lstrip().startswith("torch.clamp(") or "," in _top_level(arg):
            out.append(code[i:m.end()])
            i = m.end()
            continue
        out.append(code[i:start + 1] + f"torch.clamp({arg}, {wrap})")
        i, n = end, n + 1
    return "".join(out), n


def _top_level(arg: str) -> str:
    """The argument text with nested parentheses and brackets removed (to see its top-level commas)."""
    depth, keep = 0, []
    for ch in arg:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0:
            keep.append(ch)
    return "".join(keep)


def _fix_dtype(failed: ev.TrainingFailed, code: str) -> RuleFix | None:
    if failed.kind not in ("runtime_error", "eval_error", "compile_error") or not DTYPE_ERROR.search(_text(failed)):
        return None
    new, n = _sub_all(code, LOW_PRECISION)
    if not n:
        return None
    return RuleFix(new, "dtype_float32", "a dtype mismatch: low-precision intermediates (bfloat16/float16) meet "
                                         "float32 tensors outside autocast",
                   f"computed in float32: {n} low-precision cast(s) replaced")


def _fix_view(failed: ev.TrainingFailed, code: str) -> RuleFix | None:
    if failed.kind not in ("runtime_error", "eval_error") or not VIEW_ERROR.search(_text(failed)):
        return None
    new, n = re.subn(r"\.view\(", ".reshape(", code)
    if not n:
        return None
    return RuleFix(new, "view_to_reshape", "a shape error: .view() of a non-contiguous tensor",
                   f"{n} .view( -> .reshape(")


def _fix_diverged(failed: ev.TrainingFailed, code: str) -> RuleFix | None:
    if failed.kind != "diverged":
        return None
    new, n_exp = wrap_call_arguments(code, "torch.exp", "max=30.0")
    new, n_mexp = re.subn(r"(?<![\w.])(\w+)\.exp\(\)", r"\1.clamp(max=30.0).exp()", new)
    new, n_log = wrap_call_arguments(new, "torch.log", "min=1e-6")
    new, n_sqrt = wrap_call_arguments(new, "torch.sqrt", "min=0.0")
    new, n_eps = re.subn(r"\beps(\s*[:=][^=\n]*?=?\s*|\s*=\s*)1e-(?:[6-9]|1\d)\b", r"eps\g<1>1e-5", new)
    n = n_exp + n_mexp + n_log + n_sqrt + n_eps
    if not n:
        return None
    step = failed.evidence.get("step")
    return RuleFix(new, "stabilise_numerics",
                   f"the loss became NaN/inf{f' at step {step}' if step is not None else ''}: unbounded exp/log/sqrt "
                   "arguments or a tiny eps",
                   f"clamped {n_exp + n_mexp} exp, {n_log} log, {n_sqrt} sqrt argument(s); {n_eps} eps raised to 1e-5")


def _fix_memory(failed: ev.TrainingFailed, code: str) -> RuleFix | None:
    if failed.kind != "memory":
        return None
    changed = []

    def halve(m: re.Match) -> str:
        size = int(m.group(2))
        if size < 16:
            return m.group(0)
        changed.append(size)
        return f"{m.group(1)}{size // 2}"

    new = re.sub(r"\b((?:chunk_size|chunk|block_size|BT)(?:\s*:\s*int)?\s*=\s*)(\d+)\b", halve, code)
    if not changed:
        return None
    return RuleFix(new, "halve_chunks", "out of memory: the chunked computation materialises too much at once",
                   f"chunk sizes {sorted(set(changed))} halved")


RULES = (_fix_dtype, _fix_view, _fix_diverged, _fix_memory)


def rule_revision(failed: ev.TrainingFailed, code: str) -> RuleFix | None:
    """The first rule that recognises the failure and changes the code, or None."""
    for rule in RULES:
        fix = rule(failed, code)
        if fix is not None and fix.code != code:
            return fix
    return None
