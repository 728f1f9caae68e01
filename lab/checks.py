"""Sanity checks of a proposed layer before it may train. Each failure carries actionable feedback.

Static (here, no code runs): it parses ("syntax"), and imports only allowed modules and calls no
dangerous builtin ("forbidden_import"). Dynamic (in the sandbox child, checks_child.py): build,
param_budget, shape, causality, complexity. One sandbox run covers every dynamic check of a program.
"""
from __future__ import annotations

import ast
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.sandbox import Limits, run_python_module

ALLOWED_MODULES = ("torch", "einops", "math", "typing", "functools", "dataclasses", "fla", "__future__",
                   "transformers.processing_utils", "collections", "itertools", "numbers", "enum", "abc", "warnings")
FORBIDDEN_CALLS = {"open", "exec", "eval", "__import__", "compile", "breakpoint", "input", "globals", "vars",
                   "setattr", "delattr"}
FORBIDDEN_ATTRS = {"__subclasses__", "__globals__", "__builtins__", "__code__", "__bases__", "__mro__",
                   "system", "popen", "load_library", "hub",
                   # modules reachable as attributes of allowed ones (torch.os, dataclasses.sys.modules, ...)
                   "os", "sys", "modules", "subprocess", "builtins", "importlib", "ctypes", "socket", "shutil",
                   "pathlib", "io", "environ", "__import__", "__loader__", "__spec__", "__dict__", "__getattribute__",
                   "f_globals", "f_back", "gi_frame", "cr_frame", "_getframe"}
# builtins that reach an attribute by a string: the string is vetted like an attribute name, and one
# that is not a literal (computed at run time) is refused, since it cannot be vetted (hasattr only answers
# a bool and stays allowed)
ATTR_BY_NAME = {"getattr"}


@dataclass
class CheckOutcome:
    ok: bool
    reason: str | None = None          # a schemas.events.RejectReason when not ok
    feedback: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def _allowed(module: str) -> bool:
    return any(module == m or module.startswith(m + ".") for m in ALLOWED_MODULES)


def static_check(code: str) -> CheckOutcome:
    """Parse and vet imports and builtins without running anything."""
    t = time.perf_counter()
    try:
        tree = ast.parse(code)
    except SyntaxError as e:
        return CheckOutcome(False, "syntax", f"the program does not parse: {e.msg} at line {e.lineno}: "
                            f"{(e.text or '').strip()!r}", {"line": e.lineno, "msg": e.msg})
    for node in ast.walk(tree):
        modules = []
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = ["." * node.level + (node.module or "")]
        for m in modules:
            if not _allowed(m):
                return CheckOutcome(False, "forbidden_import", f"import of `{m}` (line {node.lineno}) is not allowed: "
                                    f"a layer may import only {', '.join(ALLOWED_MODULES)}",
                                    {"module": m, "line": node.lineno})
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_CALLS:
            return CheckOutcome(False, "forbidden_import", f"call of builtin `{node.func.id}` (line {node.lineno}) is "
                                "not allowed in a layer program", {"builtin": node.func.id, "line": node.lineno})
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ATTR_BY_NAME \
                and len(node.args) >= 2:
            name = node.args[1]
            if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
                return CheckOutcome(False, "forbidden_import", f"`{node.func.id}` with a computed attribute name "
                                    f"(line {node.lineno}) cannot be vetted: name the attribute literally",
                                    {"builtin": node.func.id, "line": node.lineno})
            if name.value in FORBIDDEN_ATTRS or name.value.startswith("__"):
                return CheckOutcome(False, "forbidden_import", f"access to `.{name.value}` through "
                                    f"`{node.func.id}` (line {node.lineno}) is not allowed in a layer program",
                                    {"attribute": name.value, "line": node.lineno})
        if isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_ATTRS:
            return CheckOutcome(False, "forbidden_import", f"access to `.{node.attr}` (line {node.lineno}) is not "
                                "allowed in a layer program", {"attribute": node.attr, "line": node.lineno})
    if not any(isinstance(n, ast.ClassDef) and n.name == "DeltaNet" for n in tree.body):
        return CheckOutcome(False, "build", "the program defines no top-level `class DeltaNet(nn.Module)`: the layer "
                            "contract requires it", {})
    return CheckOutcome(True, timings={"static": time.perf_counter() - t})





def profile_dims(profile: str, ceiling: dict[str, int] | None = None) -> dict[str, Any]:
    """The model shape the checks build the layer at: the profile's. `ceiling` ({"max_params", "baseline_params"},
    the campaign's size-matched limit from ParentSampled) lowers the profile's max_params when it is tighter."""
    from lab.training.profiles import get_profile
    p = get_profile(profile)
    dims = {"hidden_size": p.hidden_size, "num_heads": p.num_heads, "num_layers": p.num_layers,
            "vocab_size": p.vocab_size, "layer_kwargs": dict(p.layer_kwargs), "max_params": p.max_params}
    if ceiling and ceiling.get("max_params") and ceiling["max_params"] < p.max_params:
        dims["max_params"], dims["ceiling"] = int(ceiling["max_params"]), dict(ceiling)
    return dims


class SanityChecker:
    """Runs the static checks here and the dynamic ones in one sandboxed child per call."""

    def __init__(self, *, lengths: tuple[int, int] = (256, 1024), repeats: int = 3, wall_s: float = 180.0,
                 mem_mb: int = 4096, scratch_root: Path | None = None):
        self.lengths, self.repeats, self.wall_s, self.mem_mb = lengths, repeats, wall_s, mem_mb
        self.scratch_root = scratch_root

    def static(self, code: str) -> CheckOutcome:
        return static_check(code)

    def check(self, code: str, profile: str = "cpu-tiny", ceiling: dict[str, int] | None = None) -> CheckOutcome:
        """Static, then dynamic checks of one program (`ceiling`: see profile_dims)."""
        return self.check_many([code], profile, ceiling)[0]

    def check_many(self, codes: list[str], profile: str = "cpu-tiny",
                   ceiling: dict[str, int] | None = None) -> list[CheckOutcome]:
        """Every program through the static checks, then the survivors through ONE sandbox child."""
        outcomes: list[CheckOutcome | None] = []
        pending = []
        for i, code in enumerate(codes):
            s = static_check(code)
            outcomes.append(None if s.ok else s)
            if s.ok:
                pending.append({"id": str(i), "code": code})
        if not pending:
            return outcomes
        with tempfile.TemporaryDirectory(prefix="archlab-checks-", dir=self.scratch_root) as tmp:
            scratch = Path(tmp)
            spec = scratch / "spec.json"
            spec.write_text(json.dumps({"programs": pending, "dims": profile_dims(profile, ceiling),
                                        "lengths": list(self.lengths), "repeats": self.repeats}))
            wall = self.wall_s * max(1, len(pending)) ** 0.5 if len(pending) > 1 else self.wall_s
            # torch._dynamo is imported by the checks' dispatch mode: import it (trusted) before the hook is armed
            limits = Limits(wall_s=max(wall, self.wall_s), mem_mb=self.mem_mb, threads=1,
                            preimport=("torch", "torch._dynamo", "einops"))
            res = run_python_module("lab.checks_child", [str(spec)], scratch=scratch, limits=limits)
        by_id = {r["id"]: r for r in ((res.result or {}).get("results") or [])}
        if not by_id and res.result is None:  # results are written at the end: read the per-program lines
            by_id = _results_from_lines(getattr(res, "stdout_tail", "") or "")
        culprit_found = False
        rerun = []
        for p in pending:
            i = int(p["id"])
            r = by_id.get(p["id"])
            if r is not None and "feedback" in r:
                outcomes[i] = CheckOutcome(r["ok"], r["reason"], r["feedback"], r["evidence"], r["timings"])
            elif r is not None:  # reported on stdout only (the child died later): passed or failed, no detail
                outcomes[i] = None
                rerun.append(p)
            elif not culprit_found:  # the first program without a result is the one that ended the child
                culprit_found = True
                what = getattr(res, "error", "") or (res.traceback or res.stdout_tail or "")[-800:]
                reason = "forbidden_import" if res.kind == "forbidden" else "sandbox"
                outcomes[i] = CheckOutcome(False, reason, f"the sandbox ended with '{res.kind}' while checking this "
                                           f"program: {what}", {"kind": res.kind, "returncode": res.returncode,
                                                               "wall_s": res.wall_s})
            else:
                rerun.append(p)
        if rerun:  # programs that shared a child with the culprit get a child of their own
            for p, o in zip(rerun, self.check_many([p["code"] for p in rerun], profile, ceiling)):
                outcomes[int(p["id"])] = o
        return outcomes


def _results_from_lines(stdout: str) -> dict[str, dict]:
    out = {}
    for line in stdout.splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if isinstance(r, dict) and "id" in r:
            out[str(r["id"])] = r
    return out
