"""Offline self-revision (services/debugger/repair_rules.py): each rule is checked on a program that really
fails (the exception of a real forward/backward is the failure's error), and its revision really runs."""
import math

import pytest
import torch

from schemas import events as ev
from lab.program import load_layer_class
from services.debugger.repair_rules import rule_revision, wrap_call_arguments

LAYER = '''
import torch
import torch.nn as nn


class DeltaNet(nn.Module):
    def __init__(self, hidden_size=32, num_heads=1, chunk_size: int = 64, eps=1e-12, **kwargs):
        super().__init__()
        self.q = nn.Linear(hidden_size, hidden_size)
        self.o = nn.Linear(hidden_size, hidden_size)
        self.chunk_size, self.eps = chunk_size, eps

    def forward(self, hidden_states, attention_mask=None, **kwargs):
        B, T, D = hidden_states.shape
        q = self.q(hidden_states)
        BODY
        return self.o(o), None, None
'''


def program(body: str) -> str:
    return LAYER.replace("BODY", body)


def run(code: str) -> torch.Tensor:
    torch.manual_seed(0)
    layer = load_layer_class(code)(hidden_size=32)
    x = torch.randn(2, 16, 32, requires_grad=True)
    out = layer(x)[0]
    out.float().sum().backward()
    return out


def failure(code: str, kind: str = "runtime_error", **fields) -> ev.TrainingFailed:
    error = ""
    if kind in ("runtime_error", "eval_error"):
        with pytest.raises(Exception) as info:
            run(code)
        error = f"{type(info.value).__name__}: {info.value}"
    return ev.TrainingFailed(campaign_id="c", experiment_id="e", revision=0, engineer_id="eng", kind=kind,
                             error=error, code=code, **fields)


def test_dtype_mismatch_is_computed_in_float32():
    code = program("o = torch.cumsum(q.to(torch.bfloat16), dim=1) @ self.o.weight")
    fix = rule_revision(failure(code), code)
    assert fix is not None and fix.rule == "dtype_float32" and "bfloat16" not in fix.code
    assert torch.isfinite(run(fix.code)).all()


def test_view_of_a_non_contiguous_tensor_becomes_reshape():
    code = program("o = q.transpose(1, 2).view(B, D * T).view(B, D, T).transpose(1, 2)")
    fix = rule_revision(failure(code), code)
    assert fix is not None and fix.rule == "view_to_reshape"
    assert run(fix.code).shape == (2, 16, 32)


def test_nan_at_step_k_clamps_exp_log_and_eps():
    code = program("w = torch.exp(q * 200.0)\n        o = torch.cumsum(w, 1) / (torch.cumsum(w, 1).sum(-1, keepdim=True) "
                   "+ self.eps)")
    assert not torch.isfinite(run(code)).all()  # inf / inf: the NaN a training run meets at some step
    failed = failure(code, kind="diverged", evidence={"step": 37, "loss": math.nan})
    fix = rule_revision(failed, code)
    assert fix is not None and fix.rule == "stabilise_numerics" and "step 37" in fix.diagnosis
    assert "torch.exp(torch.clamp(q * 200.0, max=30.0))" in fix.code and "eps=1e-5" in fix.code
    assert torch.isfinite(run(fix.code)).all()
    assert rule_revision(failure(fix.code, kind="diverged"), fix.code) is None or \
        "torch.clamp(torch.clamp" not in rule_revision(failure(fix.code, kind="diverged"), fix.code).code


def test_out_of_memory_halves_chunk_sizes_and_stops_at_16():
    code = program("o = q")
    fix = rule_revision(failure(code, kind="memory"), code)
    assert fix is not None and fix.rule == "halve_chunks" and "chunk_size: int = 32" in fix.code
    small = code.replace("chunk_size: int = 64", "chunk_size: int = 8")
    assert rule_revision(failure(small, kind="memory"), small) is None


def test_unrecognised_failures_get_no_rule():
    code = program("o = q[:, :, :7]")  # a real shape error with no generic fix
    assert rule_revision(failure(code), code) is None
    assert rule_revision(failure(code, kind="timeout"), code) is None


def test_wrap_call_arguments_handles_nesting_and_skips_multi_argument_calls():
    src = "a = torch.exp(f(x, y) * (z + 1)) + torch.exp(x, out=b) + torch.exp(torch.clamp(x, max=1))"
    out, n = wrap_call_arguments(src, "torch.exp", "max=30.0")
    assert n == 1 and out.startswith("a = torch.exp(torch.clamp(f(x, y) * (z + 1), max=30.0))")
