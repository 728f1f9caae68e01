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
4. Causality of the scored forward (issue 25): a second forward child (same program, same weights, its own
   sandbox) receives a probe for every scored request: a random subset of its rows, each with the tokens after
   a random cut replaced by another held-out sequence's tokens. A causal model gives the same logits at and
   before the cut in both children (within `TOLERANCE[autocast]`); a mismatch fails the run as
   `noncausal_at_scoring`. The probe runs in another interpreter on purpose: the scored child never sees a
   probe, so it cannot tell which of its rows are checked, nor replay what it answered for the real row.
5. The held-out data comes from `eval_seed` (a per-campaign secret, lab/training/heldout.py) when one is
   given, so a program cannot regenerate the evaluation batches from a seed in the repository.

A program that patches torch.nn.functional.cross_entropy, writes its own result file or fakes its
metrics changes only its claim: the scored loss is its true loss. Its logits are its own to choose
(that is what a model is); the held-out targets are not in its reach. See docs/security.md.
"""
from __future__ import annotations

import json
import math
import os
import random
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

from lab.sandbox import Limits, SandboxResult, open_child_file, run_python_module
from lab.training.frames import FrameError, recv_frame, send_frame

FORWARD_MODULE = "lab.training.forward"
FORWARD_PREIMPORT = ("torch", "lab.training.runner")
HELDOUT_SEED = 1_000_003  # batches of the training distribution that no training run draws (public: no campaign)
WEIGHTS_LIMIT = 4 << 30
NONCAUSAL = "noncausal_at_scoring"  # the TrainingFailed kind of a scored forward that read a later token
# Largest allowed difference between the scored and the probe logits at and before the cut, relative to
# max(1, |logit|): a causal model computes those positions from the same prefix, so they differ only by
# float rounding of a different batch (other rows, another kernel blocking). fp32: ~1e4 ulps of 2^-23;
# bf16 autocast: 16 ulps of bf16's 2^-8. A peek that moves a logit by less gains nothing measurable.
TOLERANCE = {"fp32": 1e-3, "bf16": 6.25e-2}
PROBE_ROWS = 0.25  # share of each scored request's rows (at least one) re-sent to the probe child
DONOR_POOL = 256  # earlier rows kept as continuations for probes of a one-row request


class ScoringFailed(Exception):
    def __init__(self, message: str, kind: str = "eval_error", evidence: dict | None = None):
        super().__init__(message)
        self.kind, self.evidence = kind, evidence or {}


class RemoteModel:
    """Stands in for the CausalLM in trusted evaluation code: `model(ids) -> (logits, aux)` is answered by
    the forward child. Only the shape [B, T, vocab] and dtype float32 are accepted back.

    With `probe` (a connection to a second forward child of the same program and weights), every call is
    also checked for causality: see `_check_causal`."""

    def __init__(self, conn: socket.socket, vocab_size: int, timeout_s: float, probe: socket.socket | None = None,
                 autocast: str = "fp32", probe_rows: float = PROBE_ROWS):
        self.conn, self.vocab, self.training, self.calls = conn, vocab_size, False, 0
        self.probe, self.tolerance, self.probe_rows = probe, TOLERANCE.get(autocast, TOLERANCE["bf16"]), probe_rows
        self.rng = random.SystemRandom()  # os.urandom: nothing the program can reproduce or observe
        self.donors: list = []  # rows of earlier requests (continuations for a one-row request)
        self.probed_rows, self.max_probe_diff, self.probe_s = 0, 0.0, 0.0
        for c in (conn, probe):
            if c is not None:
                c.settimeout(timeout_s)

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
        logits = self._forward(self.conn, x)
        self.calls += 1
        if self.probe is not None:
            t0 = time.perf_counter()
            self._check_causal(x, logits)
            self.probe_s += time.perf_counter() - t0
        return logits, torch.zeros(())

    def _forward(self, conn: socket.socket, x):
        import torch
        try:
            send_frame(conn, {"op": "forward", "shape": list(x.shape), "dtype": "int64"}, x.numpy().tobytes())
            header, payload = recv_frame(conn, max_payload=x.numel() * self.vocab * 4)
        except (OSError, FrameError) as e:
            raise ScoringFailed(f"the forward child stopped answering: {e}") from None
        if not header.get("ok"):
            raise ScoringFailed(f"the model's forward failed in evaluation: {header.get('error', '?')}")
        want = [*x.shape, self.vocab]
        if header.get("shape") != want or header.get("dtype") != "float32" or len(payload) != math.prod(want) * 4:
            raise ScoringFailed(f"the forward child answered logits of shape {header.get('shape')} "
                                f"({header.get('dtype')}, {len(payload)} bytes); expected {want} float32")
        return torch.frombuffer(bytearray(payload), dtype=torch.float32).reshape(want)

    def _donor(self, x, row: int, cut: int):
        """A continuation for `row` after `cut`: another row of this request or of an earlier one (held-out data
        too, so in-distribution), preferably one whose next token differs, so that reading even one token
        ahead changes the logits at the cut."""
        T = x.shape[1]
        pool = [x[i] for i in range(x.shape[0]) if i != row] + [d[:T] for d in self.donors if d.shape[0] >= T]
        self.rng.shuffle(pool)
        for d in pool:
            if int(d[cut + 1]) != int(x[row, cut + 1]):
                return d
        d = x[row].clone()  # nothing differs there: shift the row's own tokens by one id
        d[cut + 1:] = (d[cut + 1:] + 1) % self.vocab
        return d

    def _check_causal(self, x, logits) -> None:
        """Re-send a random subset of the rows of `x` to the probe child, each with its tokens after a random cut
        replaced by another sequence's; the logits at and before the cut must match the scored ones."""
        B, T = x.shape
        if T >= 2:
            rows = self.rng.sample(range(B), max(1, round(self.probe_rows * B)))
            cuts = [self.rng.randrange(T - 1) for _ in rows]  # position `cut` predicts the first replaced token
            probe = x[rows].clone()
            for j, (r, c) in enumerate(zip(rows, cuts)):
                probe[j, c + 1:] = self._donor(x, r, c)[c + 1:]
            plogits = self._forward(self.probe, probe)
            for j, (r, c) in enumerate(zip(rows, cuts)):
                # a NaN (or inf) where the other child has a number is a difference; the same NaN in both is not
                scored, seen = logits[r, :c + 1], plogits[j, :c + 1]
                apart = (scored.isnan() != seen.isnan()) | ((scored - seen).abs() > 0) & ~scored.isfinite()
                scale = scored.nan_to_num(0.0, 0.0, 0.0).abs().max().clamp(min=1.0)
                per_position = ((scored - seen).nan_to_num(0.0, 0.0, 0.0).abs().amax(-1) / scale).masked_fill(
                    apart.any(-1), math.inf)
                diff = per_position.max().item()
                self.max_probe_diff = max(self.max_probe_diff, diff)
                if diff > self.tolerance:
                    pos = int((per_position > self.tolerance).nonzero()[0])
                    raise ScoringFailed(
                        f"the scored forward is not causal: with the tokens after position {c} replaced, the logits "
                        f"at or before it changed by {diff:.3g} (relative; tolerance {self.tolerance:g}), first at "
                        f"position {pos}", kind=NONCAUSAL,
                        evidence={"call": self.calls, "row": r, "cut": c, "first_position": pos,
                                  "relative_diff": diff, "tolerance": self.tolerance, "shape": [B, T]})
            self.probed_rows += len(rows)
        self.donors = (self.donors + [x[i] for i in range(B)])[-DONOR_POOL:]


def heldout_loss(model, profile, batches: int | None = None, eval_seed: int | None = None) -> float:
    """Mean next-token cross-entropy at the labelled positions of `batches` held-out batches, computed here.
    `eval_seed`: the campaign's secret seed (None: the public HELDOUT_SEED, for runs outside a campaign)."""
    import torch.nn.functional as F

    from lab.training.data import IGNORE
    from lab.training.heldout import derive, heldout_batch_fn

    batch_fn = heldout_batch_fn(profile, HELDOUT_SEED if eval_seed is None else derive(eval_seed, "heldout-loss"))
    total, count = 0.0, 0
    for i in range(batches or profile.log_every):
        x, y = batch_fn(i)
        logits = model(x)[0]
        mask = y != IGNORE
        total += F.cross_entropy(logits[mask], y[mask], reduction="sum").item()
        count += int(mask.sum())
    return total / max(count, 1)


def copy_regular_file(src: Path, root: Path, dst: Path, limit: int = WEIGHTS_LIMIT) -> None:
    """Copy a file the untrusted child wrote, refusing symlinks anywhere on its path out of `root`."""
    root = root.resolve()
    parent = src.parent.resolve()
    if parent != root and root not in parent.parents:
        raise ScoringFailed(f"the weights file's directory leads outside the run's scratch ({parent})")
    try:
        f = open_child_file(parent / src.name, limit)
    except OSError as e:
        raise ScoringFailed(f"no trained weights to score ({src.name}: {e.strerror})") from None
    except ValueError:
        raise ScoringFailed(f"the weights file is not a regular file under {limit >> 20} MB") from None
    with f, open(dst, "wb") as out:
        shutil.copyfileobj(f, out, 1 << 20)


class _ForwardChild:
    """One sandboxed forward child (lab/training/forward.py: a fresh interpreter, the program + a copy of the
    weights) and the Unix socket it connects to, in a scratch directory of its own."""

    def __init__(self, job: dict, weights: Path, limits: Limits, autocast: str):
        self.dir = Path(tempfile.mkdtemp(prefix="archlab-fwd-"))  # short: a socket path has at most 107 bytes
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.conn: socket.socket | None = None
        self.box: dict = {}
        self.kill = threading.Event()
        shutil.copyfile(weights, self.dir / weights.name)
        sock_path = self.dir / "scorer.sock"
        self.listener.bind(str(sock_path))
        self.listener.listen(1)
        self.listener.settimeout(0.5)
        fjob = {"code": job["code"], "profile": job["profile"], "profile_overrides": job.get("profile_overrides") or {},
                "layer_class_name": job.get("layer_class_name", "DeltaNet"), "weights": str(self.dir / weights.name),
                "socket": str(sock_path), "autocast": autocast}
        (self.dir / "job.json").write_text(json.dumps(fjob))
        self.thread = threading.Thread(target=self._run, args=(limits,), daemon=True)
        self.thread.start()

    def _run(self, limits: Limits) -> None:
        self.box["res"] = run_python_module(FORWARD_MODULE, [str(self.dir / "job.json")], scratch=self.dir,
                                            limits=limits, stop=self.kill)

    def accept(self, deadline: float, stop: threading.Event | None) -> socket.socket | None:
        """The child's connection, or None when it ended, the deadline passed or `stop` was set."""
        while self.conn is None:
            if stop is not None and stop.is_set():
                self.kill.set()
                return None
            if not self.thread.is_alive() or time.monotonic() > deadline:
                return None
            try:
                self.conn, _ = self.listener.accept()
            except socket.timeout:
                continue
        return self.conn

    def close(self, graceful: bool) -> SandboxResult:
        """Ask the child to exit (graceful), or just hang up (it then fails on its next read); its SandboxResult."""
        if self.conn is not None:
            if graceful:
                try:
                    send_frame(self.conn, {"op": "close"})
                except OSError:
                    pass
            self.conn.close()
            self.conn = None
        self.thread.join(timeout=30)
        if self.thread.is_alive():
            self.kill.set()
            self.thread.join()
        self.listener.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return self.box.get("res") or SandboxResult(False, "crashed", None, error="the forward child did not report")


def score(job: dict, train_scratch: Path, *, limits: Limits, stop: threading.Event | None = None,
          autocast: str = "fp32", eval_seed: int | None = None, probe: bool = True,
          benchmark: bool = True) -> tuple[dict, SandboxResult]:
    """Evaluate the trained weights of `job` (a runner job with evaluate=False) through a fresh forward child,
    whose forward runs under `autocast` (the mode the run trained under), on held-out data drawn from
    `eval_seed` (None: the public seeds). `probe`: check every request's causality on a second child.
    `benchmark`: also run the profile's benchmark battery (False: the held-out loss alone, as a rung needs).

    Returns (trusted fields: final_loss, metrics, benchmark, eval_s; the scored forward child's SandboxResult)."""
    import torch

    from lab.training.evaluate import evaluate
    from lab.training.profiles import get_profile
    from lab.training.runner import WEIGHTS_NAME

    torch.set_num_threads(max(1, limits.threads))
    profile = get_profile(job["profile"], **(job.get("profile_overrides") or {}))
    t0 = time.perf_counter()
    trusted = Path(tempfile.mkdtemp(prefix="archlab-score-"))  # evaluation files: out of any child's reach
    children: list[_ForwardChild] = []
    fields: dict = {}
    try:
        weights = trusted / WEIGHTS_NAME
        copy_regular_file(Path(job["workdir"]) / WEIGHTS_NAME, train_scratch, weights)
        children = [_ForwardChild(job, weights, limits, autocast) for _ in range(2 if probe else 1)]
        deadline = time.monotonic() + limits.wall_s
        conns = [c.accept(deadline, stop) for c in children]
        if all(conns):
            try:
                model = RemoteModel(conns[0], profile.vocab_size, timeout_s=max(1.0, deadline - time.monotonic()),
                                    probe=conns[1] if probe else None, autocast=autocast)
                loss = heldout_loss(model, profile, eval_seed=eval_seed)
                scores = evaluate(model, profile, trusted / "eval", device="cpu", eval_seed=eval_seed) \
                    if benchmark else SimpleNamespace(metrics={}, benchmark=None)
                probe_metrics = {"scoring/probe_rows": float(model.probed_rows),
                                 "scoring/probe_max_diff": model.max_probe_diff,
                                 "scoring/probe_s": model.probe_s} if probe else {}
                fields = {"final_loss": loss, "metrics": {**scores.metrics, **probe_metrics},
                          "benchmark": scores.benchmark, "forward_calls": model.calls}
            except ScoringFailed as e:
                fields = {"error": str(e), "kind": e.kind, "evidence": e.evidence}
            except Exception as e:  # noqa: BLE001 - trusted evaluation code failed on these logits
                fields = {"error": f"{type(e).__name__}: {e}", "kind": "eval_error"}
        results = [c.close(graceful="error" not in fields) for c in children]
        children = []
        res = next((r for r in results if not r.ok), results[0])  # the scored child's, unless the probe's failed
        if not all(conns) and "error" not in fields:
            fields = {"error": f"the forward child never connected ({res.kind}: {res.error})", "kind": "eval_error"}
        fields["eval_s"] = time.perf_counter() - t0
        return fields, res
    except ScoringFailed as e:
        return {"error": str(e), "kind": e.kind, "eval_s": time.perf_counter() - t0}, SandboxResult(
            False, "exception", None, error=str(e))
    finally:
        for c in children:  # only after an exception above
            c.kill.set()
            c.close(graceful=False)
        shutil.rmtree(trusted, ignore_errors=True)


def forward_limits(training: Limits, profile) -> Limits:
    return replace(training, wall_s=profile.eval_time_limit_s + 120, writable=(), preimport=FORWARD_PREIMPORT)


def run_and_score(module: str, args: list[str], *, job: dict, scratch: Path, limits: Limits,
                  on_line: Callable[[str], None] | None = None, stop: threading.Event | None = None,
                  eval_seed: int | None = None, probe: bool = True,
                  score_threads: Callable[[], int] | None = None,
                  trained: SandboxResult | None = None) -> SandboxResult:
    """Run the training child, then (for a job with evaluate=False) score it here: the returned result's
    final_loss, metrics and benchmark are the trusted ones; a failure of the forward child or of the
    evaluation is a failed result (kind of the forward child, eval_error, or noncausal_at_scoring).
    `eval_seed`: the campaign's secret evaluation seed (lab/training/heldout.py); None outside a campaign.
    `score_threads`: the threads the scoring may use, asked when it starts (the run's share of the cores then:
    a run that started alone on both cores is scored beside the next run's training).
    `trained`: the training child's result when its weights are already in the job's workdir (a reused baseline,
    services/engineer/baseline_cache.py): no child runs, the weights are scored."""
    res = trained or run_python_module(module, args, scratch=scratch, limits=limits, on_line=on_line, stop=stop)
    if job.get("evaluate", True) or not res.ok or not isinstance(res.result, dict) or "final_loss" not in res.result:
        return res
    from lab.training.profiles import get_profile
    from lab.training.train import AUTOCAST_METRIC, AUTOCAST_MODES
    profile = get_profile(job["profile"], **(job.get("profile_overrides") or {}))
    mode = res.result.get("autocast") if res.result.get("autocast") in AUTOCAST_MODES else "fp32"
    flimits = forward_limits(limits, profile)
    if score_threads is not None:
        flimits = replace(flimits, threads=max(1, int(score_threads())))
    fields, fwd = score(job, scratch, limits=flimits, stop=stop, autocast=mode, eval_seed=eval_seed, probe=probe)
    if fwd.kind in ("forbidden", "timeout", "memory", "crashed", "cancelled", "unconfined") and (
            "error" in fields or fwd.kind == "forbidden"):
        return replace(fwd, error=f"while scoring: {fwd.error}", wall_s=res.wall_s + fwd.wall_s)
    if "error" in fields:
        error = {"type": "ScoringFailed", "kind": fields.get("kind", "eval_error"), "message": fields["error"],
                 "evidence": {**(fields.get("evidence") or {}), "forward_kind": fwd.kind,
                              "forward_error": fwd.error[:500]}}
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
