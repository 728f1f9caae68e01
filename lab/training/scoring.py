"""Trusted scoring: the numbers the judge reads are computed here, never in the program's interpreter.

    res = run_and_score(job, scratch=..., limits=..., on_line=..., stop=...)

1. The training child (sandbox, the program's interpreter) trains and saves the weights (a state_dict)
   into its workdir; its own final loss is kept only as a claim (`metrics["train/claimed_final_loss"]`).
2. A fresh sandbox child (lab/training/forward.py: a new interpreter, the program + the weights)
   answers forward requests over a Unix socket: token ids in, logits out (raw float32, shape checked), under
   the autocast mode the training child trained in (its result's `autocast`: "fp32" or "bf16"; the mode is
   only ever one of the two, and a program could pick its own precision inside forward anyway).
3. This process (the engineer, which never imports the program) drives the evaluation through
   `RemoteModel`: the held-out loss (cross-entropy it computes itself on batches it draws and whose
   targets never leave it) becomes `final_loss`; lm-eval and every other benchmark in evaluate.py run
   here unchanged, on the remote logits, and give `metrics` and `benchmark`.

A program that patches torch.nn.functional.cross_entropy, writes its own result file or fakes its
metrics changes only its claim: the scored loss is its true loss. Its logits are its own to choose
(that is what a model is); the held-out targets are not in its reach. See docs/security.md.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import socket
import stat
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

from lab.sandbox import Limits, SandboxResult, run_python_module
from lab.training.frames import FrameError, recv_frame, send_frame

FORWARD_MODULE = "lab.training.forward"
FORWARD_PREIMPORT = ("torch", "lab.training.runner")
HELDOUT_SEED = 1_000_003  # batches of the training distribution that no training run draws
WEIGHTS_LIMIT = 4 << 30


class ScoringFailed(Exception):
    def __init__(self, message: str, kind: str = "eval_error"):
        super().__init__(message)
        self.kind = kind


class RemoteModel:
    """Stands in for the CausalLM in trusted evaluation code: `model(ids) -> (logits, aux)` is answered by
    the forward child. Only the shape [B, T, vocab] and dtype float32 are accepted back."""

    def __init__(self, conn: socket.socket, vocab_size: int, timeout_s: float):
        self.conn, self.vocab, self.training, self.calls = conn, vocab_size, False, 0
        conn.settimeout(timeout_s)

    def eval(self):
        self.training = False
        return self

    def train(self, mode: bool = True):
        self.training = mode
        return self

    def to(self, *args, **kwargs):
        return self

    def parameters(self):
        return iter(())

    def __call__(self, input_ids):
        import torch
        x = input_ids.detach().to("cpu", torch.int64).contiguous()
        if x.dim() != 2:
            raise ScoringFailed(f"trusted evaluation asked for ids of shape {tuple(x.shape)}")
        try:
            send_frame(self.conn, {"op": "forward", "shape": list(x.shape), "dtype": "int64"}, x.numpy().tobytes())
            header, payload = recv_frame(self.conn, max_payload=x.numel() * self.vocab * 4)
        except (OSError, FrameError) as e:
            raise ScoringFailed(f"the forward child stopped answering: {e}") from None
        if not header.get("ok"):
            raise ScoringFailed(f"the model's forward failed in evaluation: {header.get('error', '?')}")
        want = [*x.shape, self.vocab]
        if header.get("shape") != want or header.get("dtype") != "float32" or len(payload) != math.prod(want) * 4:
            raise ScoringFailed(f"the forward child answered logits of shape {header.get('shape')} "
                                f"({header.get('dtype')}, {len(payload)} bytes); expected {want} float32")
        self.calls += 1
        return torch.frombuffer(bytearray(payload), dtype=torch.float32).reshape(want), torch.zeros(())


def heldout_loss(model, profile, batches: int | None = None) -> float:
    """Mean next-token cross-entropy at the labelled positions of `batches` held-out batches, computed here."""
    import torch.nn.functional as F

    from lab.training.data import IGNORE
    from lab.training.runner import make_batch_fn

    batch_fn = make_batch_fn(profile, HELDOUT_SEED)
    total, count = 0.0, 0
    for i in range(batches or profile.log_every):
        x, y = batch_fn(i)
        logits = model(x)[0]
        mask = y != IGNORE
        total += F.cross_entropy(logits[mask], y[mask], reduction="sum").item()
        count += int(mask.sum())
    return total / max(count, 1)


def _copy_regular_file(src: Path, root: Path, dst: Path, limit: int = WEIGHTS_LIMIT) -> None:
    """Copy a file the untrusted child wrote, refusing symlinks anywhere on its path out of `root`."""
    root = root.resolve()
    parent = src.parent.resolve()
    if parent != root and root not in parent.parents:
        raise ScoringFailed(f"the weights file's directory leads outside the run's scratch ({parent})")
    try:
        fd = os.open(parent / src.name, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as e:
        raise ScoringFailed(f"no trained weights to score ({src.name}: {e.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            raise ScoringFailed(f"the weights file is not a regular file under {limit >> 20} MB")
        with open(dst, "wb") as out:
            shutil.copyfileobj(f, out, 1 << 20)


def score(job: dict, train_scratch: Path, *, limits: Limits, stop: threading.Event | None = None,
          autocast: str = "fp32") -> tuple[dict, SandboxResult]:
    """Evaluate the trained weights of `job` (a runner job with evaluate=False) through a fresh forward child,
    whose forward runs under `autocast` (the mode the run trained under).

    Returns (trusted fields: final_loss, metrics, benchmark, eval_s; the forward child's SandboxResult)."""
    import torch

    from lab.training.evaluate import evaluate
    from lab.training.profiles import get_profile
    from lab.training.runner import WEIGHTS_NAME

    torch.set_num_threads(max(1, limits.threads))
    profile = get_profile(job["profile"], **(job.get("profile_overrides") or {}))
    t0 = time.perf_counter()
    fwd = Path(tempfile.mkdtemp(prefix="archlab-fwd-"))  # short: a Unix socket path has at most 107 bytes
    trusted = Path(tempfile.mkdtemp(prefix="archlab-score-"))  # evaluation files: out of any child's reach
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    box: dict = {}
    try:
        _copy_regular_file(Path(job["workdir"]) / WEIGHTS_NAME, train_scratch, fwd / WEIGHTS_NAME)
        sock_path = fwd / "scorer.sock"
        listener.bind(str(sock_path))
        listener.listen(1)
        fjob = {"code": job["code"], "profile": job["profile"], "profile_overrides": job.get("profile_overrides") or {},
                "layer_class_name": job.get("layer_class_name", "DeltaNet"), "weights": str(fwd / WEIGHTS_NAME),
                "socket": str(sock_path), "autocast": autocast}
        (fwd / "job.json").write_text(json.dumps(fjob))
        kill = threading.Event()

        def child() -> None:
            box["res"] = run_python_module(FORWARD_MODULE, [str(fwd / "job.json")], scratch=fwd, limits=limits,
                                           stop=kill)

        thread = threading.Thread(target=child, daemon=True)
        thread.start()
        deadline = time.monotonic() + limits.wall_s
        listener.settimeout(0.5)
        conn = None
        while conn is None:
            if stop is not None and stop.is_set():
                kill.set()
                break
            if not thread.is_alive() or time.monotonic() > deadline:
                break
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                continue
        fields: dict = {}
        if conn is not None:
            try:
                model = RemoteModel(conn, profile.vocab_size, timeout_s=max(1.0, deadline - time.monotonic()))
                loss = heldout_loss(model, profile)
                scores = evaluate(model, profile, trusted / "eval", device="cpu")
                fields = {"final_loss": loss, "metrics": dict(scores.metrics), "benchmark": scores.benchmark,
                          "forward_calls": model.calls}
                send_frame(conn, {"op": "close"})
            except ScoringFailed as e:
                fields = {"error": str(e), "kind": e.kind}
            except Exception as e:  # noqa: BLE001 - trusted evaluation code failed on these logits
                fields = {"error": f"{type(e).__name__}: {e}", "kind": "eval_error"}
            finally:
                conn.close()
        thread.join(timeout=30)
        if thread.is_alive():
            kill.set()
            thread.join()
        res = box.get("res") or SandboxResult(False, "crashed", None, error="the forward child did not report")
        if conn is None and "error" not in fields:
            fields = {"error": f"the forward child never connected ({res.kind}: {res.error})", "kind": "eval_error"}
        fields["eval_s"] = time.perf_counter() - t0
        return fields, res
    except ScoringFailed as e:
        return {"error": str(e), "kind": e.kind, "eval_s": time.perf_counter() - t0}, box.get("res") or SandboxResult(
            False, "exception", None, error=str(e))
    finally:
        listener.close()
        shutil.rmtree(fwd, ignore_errors=True)
        shutil.rmtree(trusted, ignore_errors=True)


def forward_limits(training: Limits, profile) -> Limits:
    return replace(training, wall_s=profile.eval_time_limit_s + 120, writable=(), preimport=FORWARD_PREIMPORT)


def run_and_score(module: str, args: list[str], *, job: dict, scratch: Path, limits: Limits,
                  on_line: Callable[[str], None] | None = None, stop: threading.Event | None = None) -> SandboxResult:
    """Run the training child, then (for a job with evaluate=False) score it here: the returned result's
    final_loss, metrics and benchmark are the trusted ones; a failure of the forward child or of the
    evaluation is a failed result (kind of the forward child, or eval_error)."""
    res = run_python_module(module, args, scratch=scratch, limits=limits, on_line=on_line, stop=stop)
    if job.get("evaluate", True) or not res.ok or not isinstance(res.result, dict) or "final_loss" not in res.result:
        return res
    from lab.training.profiles import get_profile
    from lab.training.train import AUTOCAST_METRIC, AUTOCAST_MODES
    profile = get_profile(job["profile"], **(job.get("profile_overrides") or {}))
    mode = res.result.get("autocast") if res.result.get("autocast") in AUTOCAST_MODES else "fp32"
    fields, fwd = score(job, scratch, limits=forward_limits(limits, profile), stop=stop, autocast=mode)
    if fwd.kind in ("forbidden", "timeout", "memory", "crashed", "cancelled", "unconfined") and (
            "error" in fields or fwd.kind == "forbidden"):
        return replace(fwd, error=f"while scoring: {fwd.error}", wall_s=res.wall_s + fwd.wall_s)
    if "error" in fields:
        error = {"type": "ScoringFailed", "kind": fields.get("kind", "eval_error"), "message": fields["error"],
                 "evidence": {"forward_kind": fwd.kind, "forward_error": fwd.error[:500]}}
        return replace(res, ok=False, kind="exception", error=f"ScoringFailed: {fields['error']}"[:500],
                       result={"error": error}, traceback=fwd.traceback or res.traceback,
                       stderr_tail=fwd.stderr_tail or res.stderr_tail)
    claimed = res.result.get("final_loss")
    result = dict(res.result)
    result.update(final_loss=fields["final_loss"], benchmark=fields["benchmark"], eval_s=fields["eval_s"],
                  autocast=mode,
                  metrics={**fields["metrics"], "heldout/loss": fields["final_loss"],
                           AUTOCAST_METRIC: float(mode == "bf16"),
                           **({"train/claimed_final_loss": claimed} if isinstance(claimed, (int, float)) else {})},
                  scored_by="trusted")
    return replace(res, result=result)
