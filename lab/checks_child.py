"""The sandboxed half of the sanity checks: runs UNTRUSTED layer programs (in a child process only).

    python -m lab.checks_child SPEC.json

SPEC holds {"programs": [{"id", "code"}], "dims": {...}, "lengths": [L, 4L]}. One child checks many
programs (a torch import costs 1-2 s). For each program, in order, the first failure ends its checks:
  build         the class loads, builds at the profile's size, runs forward + backward, keeps the contract
  param_budget  a full model of the profile with this layer stays within the profile's max_params and the
                campaign's ceiling relative to its baseline (dims["ceiling"], issue 24); its forward FLOPs per
                token are counted (evidence "flops_per_token")
  shape         right output shape and finite values for several batch sizes and lengths (one length not
                divisible by any chunk size), and no sample's output depends on another sample of the batch
  causality     perturbing the tokens after t leaves every output up to t unchanged (several t)
  complexity    FLOPs, the largest intermediate tensor and the op-output volume grow sub-quadratically
                from L to 4L (counted, so noise-free); wall time (min of interleaved repeats) is evidence
                and decides only borderline counts
The results go, as JSON, to the file named by env ARCHLAB_SANDBOX_RESULT.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
import traceback


import torch
from torch.utils._python_dispatch import TorchDispatchMode

from lab.program import load_layer_class
from lab.training.model import CausalLM
from lab.training.train import autocast_context, is_dtype_error

# The decision rests on COUNTED growth (deterministic, immune to a busy machine): FLOPs of products, the
# largest tensor and the total volume of op outputs, from L to 4L. Wall time (min of interleaved repeats)
# is evidence, and decides only borderline counts: on a loaded 2-core box a linear layer's time exponent
# was seen at 1.6 at these small lengths, so time alone never rejects.
SUBQUADRATIC_EXPONENT = 1.5   # counted growth exponent (log_4 of the 4L/L ratio) above which a layer is quadratic
BORDERLINE_EXPONENT = 1.3     # counted growth this high is rejected if time grows beyond TIME_EXPONENT_LIMIT too
TIME_EXPONENT_LIMIT = 1.7


class CheckFailed(Exception):
    def __init__(self, reason: str, feedback: str, **evidence):
        super().__init__(feedback)
        self.reason, self.feedback, self.evidence = reason, feedback, evidence



def _matmul_flops(func, args, out, kwargs=None) -> int:
    """FLOPs of the ops that dominate a layer's cost (matrix products, convolutions, attention kernels)."""
    name = func.__name__.split(".")[0] if hasattr(func, "__name__") else str(func)
    if name in ("mm", "bmm", "addmm", "baddbmm"):
        a = args[1] if name in ("addmm", "baddbmm") else args[0]
        return 2 * out.numel() * a.shape[-1]
    if name in ("convolution", "_convolution"):
        weight = args[1]
        return 2 * out.numel() * weight[0].numel()
    if name.startswith("_scaled_dot_product"):
        q, k = args[0], args[1]
        return 4 * q.numel() * k.shape[-2]
    if name == "linalg_solve_triangular":   # n x n triangular, m right-hand sides: n^2 m
        a = args[0]
        rhs_count = out.shape[-1] if (kwargs or {}).get("left", True) else out.shape[-2]
        return a.numel() * rhs_count
    return 0


class TensorMeter(TorchDispatchMode):
    """Counts FLOPs of products and the largest tensor any op produces: an L x L attention matrix cannot hide.
    (Its own dispatch mode, not torch's FlopCounterMode, whose first use costs ~1.7 s of imports.)"""

    def __init__(self):
        super().__init__()
        self.flops, self.max_numel, self.total_numel = 0, 0, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        outs = out if isinstance(out, (tuple, list)) else (out,)
        for t in outs:
            if isinstance(t, torch.Tensor):
                self.max_numel = max(self.max_numel, t.numel())
                self.total_numel += t.numel()
        if isinstance(outs[0], torch.Tensor):
            try:
                self.flops += _matmul_flops(func._overloadpacket, args, outs[0], kwargs)
            except Exception:  # an exotic signature: it only loses a count
                pass
        return out


# The runner's autocast policy (lab/training/train.py, Profile.autocast "auto" on a CPU): a program runs in fp32
# unless its first forward fails there with a dtype error; it is then checked, as it will train, under bf16 autocast,
# with the tolerance the monitor uses for bf16 (outputs compared in float32).
_MODE = {"autocast": "fp32"}
TOLERANCE = {"fp32": 1e-4, "bf16": 2 ** -5}


def _forward(layer, x):
    with autocast_context(_MODE["autocast"], "cpu"):
        out = layer(x)
    if not isinstance(out, (tuple, list)) or len(out) < 2:
        raise CheckFailed("build", f"forward must return a tuple (output, aux_or_None, past_key_values), "
                                   f"got {type(out).__name__}")
    if not isinstance(out[0], torch.Tensor):
        raise CheckFailed("build", f"the first element of forward's result must be a tensor, got {type(out[0]).__name__}")
    return out[0].float() if _MODE["autocast"] == "bf16" else out[0]


def _build(layer_cls, dims: dict):
    """The layer, built and run forward + backward once (seed 0); returns (layer, input)."""
    torch.manual_seed(0)
    layer = layer_cls(hidden_size=dims["hidden_size"], num_heads=dims["num_heads"], layer_idx=0, **dims["layer_kwargs"])
    x = torch.randn(2, 64, dims["hidden_size"], requires_grad=True)  # a friendly length: odd lengths: the shape check
    _forward(layer, x).float().square().mean().backward()
    return layer, x


def _count_params(layer_cls, dims) -> tuple[int, int, CausalLM]:
    layer = layer_cls(hidden_size=dims["hidden_size"], num_heads=dims["num_heads"], layer_idx=0, **dims["layer_kwargs"])
    layer_params = sum(p.numel() for p in layer.parameters())
    model = CausalLM(layer_cls, dims["vocab_size"], dims["hidden_size"], dims["num_layers"], dims["num_heads"],
                     dims["layer_kwargs"])
    return sum(p.numel() for p in model.parameters()), layer_params, model


def _flops_per_token(model: CausalLM, vocab_size: int, length: int) -> float:
    """Forward FLOPs per token of the whole model (products counted by TensorMeter: projections, the mixer's
    kernels, MLPs, the LM head), at `length` tokens: the compute a candidate spends, beside its parameters."""
    meter = TensorMeter()
    with torch.no_grad(), autocast_context(_MODE["autocast"], "cpu"), meter:
        model(torch.randint(0, vocab_size, (1, length)))
    return meter.flops / length


def _too_big(total: int, per_layer: int, dims: dict) -> str:
    """The refusal of a model above the ceiling: the campaign's (relative to its baseline) or the profile's."""
    ceiling = dims.get("ceiling") or {}
    if ceiling.get("max_params") == dims["max_params"]:
        base = ceiling.get("baseline_params") or 0
        return (f"the model has {total:,} parameters ({per_layer:,} per layer) but this campaign allows at most "
                f"{dims['max_params']:,}: {dims['max_params'] / base - 1:+.0%} of its baseline's {base:,} "
                f"(size-matched search; this program is {total / base - 1:+.0%}). Keep the parent's size: shrink "
                "projections or expansions, or pay for a new part by removing another")
    return (f"the model has {total:,} parameters ({per_layer:,} per layer) but the profile allows "
            f"{dims['max_params']:,}: shrink projections or expansions")


def check_program(code: str, dims: dict, lengths: tuple[int, int], repeats: int = 3) -> dict:
    timings: dict[str, float] = {}
    evidence: dict = {}
    D, H = dims["hidden_size"], dims["num_heads"]
    t0 = time.perf_counter()
    try:
        # --- build
        _MODE["autocast"] = "fp32"
        try:
            layer_cls = load_layer_class(code)
            try:
                layer, x = _build(layer_cls, dims)
            except (RuntimeError, TypeError) as e:
                if not is_dtype_error(e):
                    raise
                _MODE["autocast"] = "bf16"   # as the runner will train it (the fp32 error is kept if bf16 fails too)
                try:
                    layer, x = _build(layer_cls, dims)
                except Exception:
                    _MODE["autocast"] = "fp32"
                    raise e from None
                evidence["autocast"] = "bf16"
        except CheckFailed:
            raise
        except Exception as e:
            raise CheckFailed("build", f"the layer failed to build or run forward/backward at hidden_size={D}, "
                                       f"num_heads={H}: {type(e).__name__}: {e}", traceback=traceback.format_exc(limit=4))
        if x.grad is None or not torch.isfinite(x.grad).all():
            raise CheckFailed("build", "backward gave no finite gradient for the input: the output must be a "
                                       "differentiable function of hidden_states")
        timings["build"] = time.perf_counter() - t0

        # --- param_budget
        t = time.perf_counter()
        total, per_layer, model = _count_params(layer_cls, dims)
        evidence["params"], evidence["layer_params"] = total, per_layer
        if total > dims["max_params"]:
            raise CheckFailed("param_budget", _too_big(total, per_layer, dims), params=total,
                              max_params=dims["max_params"],
                              baseline_params=(dims.get("ceiling") or {}).get("baseline_params"))
        timings["param_budget"] = time.perf_counter() - t

        # --- shape (and batch independence)
        t = time.perf_counter()
        layer.eval()
        with torch.no_grad():
            for B, T in ((1, 67), (3, 130), (2, 64)):
                xb = torch.randn(B, T, D)
                try:
                    ob = _forward(layer, xb)
                except CheckFailed:
                    raise
                except Exception as e:
                    raise CheckFailed("shape", f"forward failed for batch {B}, length {T}: {type(e).__name__}: {e}. "
                                      "The layer must accept any length, including lengths not divisible by the "
                                      "chunk size (pad inside the core op)", batch=B, length=T,
                                      traceback=traceback.format_exc(limit=4))
                if tuple(ob.shape) != (B, T, D):
                    raise CheckFailed("shape", f"output shape {tuple(ob.shape)} != input shape {(B, T, D)}",
                                      batch=B, length=T, got=list(ob.shape))
                if not torch.isfinite(ob).all():
                    raise CheckFailed("shape", f"non-finite output for batch {B}, length {T}: check divisions, "
                                      "exponentials and normalisers", batch=B, length=T)
                if B == 3:
                    alone = torch.cat([_forward(layer, xb[i:i + 1]) for i in range(B)])
                    err = (alone - ob).abs().max().item()
                    scale = 1.0 + ob.abs().max().item()
                    evidence["batch_independence_err"] = err
                    if err > TOLERANCE[_MODE["autocast"]] * scale:
                        raise CheckFailed("shape", f"samples of a batch influence each other (max difference "
                                          f"{err:.3g} between a sample run alone and in a batch of 3): never mix "
                                          "information across the batch dimension", max_abs_diff=err)
        timings["shape"] = time.perf_counter() - t

        # --- causality: perturb the future, the past must not move (in eval and in training mode; the two
        # forwards of a comparison share their RNG state, so dropout masks agree)
        t = time.perf_counter()

        def seeded_forward(x):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                return _forward(layer, x)

        with torch.no_grad():
            T = 150
            xc = torch.randn(2, T, D)
            worst = 0.0
            for training in (False, True):
                layer.train(training)
                base = seeded_forward(xc)
                scale = 1.0 + base.abs().max().item()
                for pos in (0, 31, 63, 64, 100, 148):
                    xp = xc.clone()
                    xp[:, pos + 1:] = torch.randn_like(xp[:, pos + 1:]) * 3.0
                    err = (seeded_forward(xp)[:, :pos + 1] - base[:, :pos + 1]).abs().max().item()
                    worst = max(worst, err)
                    if not err <= TOLERANCE[_MODE["autocast"]] * scale:
                        mode = "training" if training else "eval"
                        raise CheckFailed("causality", f"information leaks from the future ({mode} mode): changing "
                                          f"the tokens after position {pos} changed the outputs up to {pos} by "
                                          f"{err:.3g}. Every output may depend only on current and earlier tokens "
                                          "(mask attention, use causal convolutions, never pool over the whole "
                                          "sequence)", position=pos, max_abs_diff=err, mode=mode)
            layer.eval()
            evidence["causality_max_diff"] = worst
        timings["causality"] = time.perf_counter() - t

        # --- complexity: counted FLOPs and largest tensor at L and 4L, plus min-of-repeats wall time
        t = time.perf_counter()
        measures = {}
        best = {L: math.inf for L in lengths}
        with torch.no_grad():
            inputs = {L: torch.randn(1, L, D) for L in lengths}
            for L in lengths:
                meter = TensorMeter()
                with meter:
                    _forward(layer, inputs[L])
                measures[L] = {"flops": meter.flops, "max_numel": meter.max_numel, "total_numel": meter.total_numel}
            for _ in range(repeats):  # interleaved, so a burst of load hits both lengths alike
                for L in lengths:
                    s = time.perf_counter()
                    _forward(layer, inputs[L])
                    best[L] = min(best[L], time.perf_counter() - s)
        for L in lengths:
            measures[L]["time_s"] = best[L]
        L1, L2 = lengths
        growth = math.log(L2 / L1)

        def exponent(key):
            a, b = measures[L1][key], measures[L2][key]
            return math.log(b / a) / growth if a > 0 and b > 0 else 0.0

        exps = {k: round(exponent(k), 3) for k in ("flops", "max_numel", "total_numel", "time_s")}
        evidence["complexity"] = {"lengths": list(lengths), "exponents": exps,
                                  "measures": {str(k): v for k, v in measures.items()}}
        counted = max(exps["flops"], exps["max_numel"], exps["total_numel"])
        if counted > SUBQUADRATIC_EXPONENT or (counted > BORDERLINE_EXPONENT and exps["time_s"] > TIME_EXPONENT_LIMIT):
            raise CheckFailed("complexity", f"cost grows quadratically with length: from L={L1} to {L2} FLOPs grow "
                              f"as L^{exps['flops']}, the largest tensor as L^{exps['max_numel']}, time as "
                              f"L^{exps['time_s']} (limit L^{SUBQUADRATIC_EXPONENT}). Replace full attention "
                              "matrices by a recurrent state or chunkwise computation (chunk 64): only "
                              "chunk x chunk blocks may be materialised", exponents=exps)
        timings["complexity"] = time.perf_counter() - t

        # --- size: forward FLOPs per token of the whole model (a layer that passed every check runs in it)
        t = time.perf_counter()
        evidence["flops_per_token"] = round(_flops_per_token(model, dims["vocab_size"], lengths[0]))
        timings["flops"] = time.perf_counter() - t
    except CheckFailed as e:
        return {"ok": False, "reason": e.reason, "feedback": e.feedback, "evidence": {**evidence, **e.evidence},
                "timings": timings}
    except Exception as e:  # a check itself crashed on this program
        return {"ok": False, "reason": "sandbox", "feedback": f"{type(e).__name__}: {e}",
                "evidence": {**evidence, "traceback": traceback.format_exc(limit=4)}, "timings": timings}
    return {"ok": True, "reason": None, "feedback": "", "evidence": evidence, "timings": timings}


def main(argv: list[str]) -> int:
    torch.set_num_threads(int(os.environ.get("ARCHLAB_CHECK_THREADS", "1")))
    with open(argv[0]) as f:
        spec = json.load(f)
    results = []
    for prog in spec["programs"]:
        r = check_program(prog["code"], spec["dims"], tuple(spec["lengths"]), spec.get("repeats", 3))
        results.append({"id": prog["id"], **r})
        print(json.dumps({"id": prog["id"], "ok": r["ok"], "reason": r["reason"]}), flush=True)
    out = os.environ.get("ARCHLAB_SANDBOX_RESULT")
    if out:
        with open(out, "w") as f:
            json.dump({"results": results}, f, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
