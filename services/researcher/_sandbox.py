"""A thin adapter to the shared sandbox (services/common/sandbox.py) with a private fallback.

The fallback runs the module in a child Python with a wall-clock limit, an address-space limit, a
scratch working directory and an environment without secrets; it returns the same fields as the
shared SandboxResult. The shared implementation is used as soon as it exists.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class FallbackResult:
    ok: bool
    kind: str                      # ok | timeout | memory | forbidden | exception | crashed
    returncode: int | None
    traceback: str = ""
    stdout_tail: str = ""
    result: dict | None = None
    wall_s: float = 0.0
    extra: dict = field(default_factory=dict)


def run_python_module(module: str, args: list[str], *, scratch: Path, wall_s: float, mem_mb: int, threads: int = 1):
    try:
        from services.common.sandbox import Limits, run_python_module as shared_run
    except ImportError:
        return _fallback(module, args, scratch=scratch, wall_s=wall_s, mem_mb=mem_mb, threads=threads)
    # torch._dynamo is imported by the checks' dispatch mode: import it (trusted) before the hook is armed
    limits = Limits(wall_s=wall_s, mem_mb=mem_mb, threads=threads,
                    preimport=("torch", "torch._dynamo", "einops"))
    return shared_run(module, args, scratch=scratch, limits=limits)


def _fallback(module, args, *, scratch: Path, wall_s: float, mem_mb: int, threads: int) -> FallbackResult:
    result_path = scratch / "sandbox_result.json"
    keep = ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TORCHDYNAMO_DISABLE")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(PYTHONPATH=str(REPO_ROOT), ARCHLAB_SANDBOX_RESULT=str(result_path), OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), ARCHLAB_CHECK_THREADS=str(threads), TORCHDYNAMO_DISABLE="1")

    def limit():  # runs in the child before exec
        limit_bytes = mem_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))
        os.setsid()

    t = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", module, *args], cwd=scratch, env=env, capture_output=True,
                              text=True, timeout=wall_s, preexec_fn=limit)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"")
        out = out.decode(errors="replace") if isinstance(out, bytes) else out
        return FallbackResult(False, "timeout", None, stdout_tail=out[-4000:], wall_s=time.perf_counter() - t,
                              result=_read(result_path))
    wall = time.perf_counter() - t
    tail = (proc.stdout + proc.stderr)[-4000:]
    if proc.returncode == 0:
        return FallbackResult(True, "ok", 0, stdout_tail=tail, result=_read(result_path), wall_s=wall)
    kind = "memory" if "MemoryError" in proc.stderr or "std::bad_alloc" in proc.stderr else (
        "exception" if "Traceback" in proc.stderr else "crashed")
    return FallbackResult(False, kind, proc.returncode, traceback=proc.stderr[-4000:], stdout_tail=tail,
                          result=_read(result_path), wall_s=wall)


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
