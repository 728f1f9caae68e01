"""The runner's autocast policy (Profile.autocast, lab/training/train.py; issue 15, point 4).

"auto": bf16 autocast on CUDA; on a CPU fp32, unless the program's first step fails in fp32 with a dtype error:
then the model is put back as built and trains from step 0 under bf16 autocast. MIXED is written here on the
pattern of 39 of the 106 published ASI-Arch programs: a chunk matrix cast to bfloat16 and then multiplied with
float32 values (`att_inv = att_inv.to(torch.bfloat16)`; `u = att_inv @ v`), which only autocast reconciles.
"""
import math

import pytest
import torch

from lab.program import load_layer_class
from lab.training.monitor import Monitor, TrainingStopped
from lab.training.profiles import get_profile
from lab.training.runner import TrainJob, build_model, make_batch_fn, run_job
from lab.training.train import AUTOCAST_METRIC, AutocastModel, fixed_autocast, is_dtype_error
from tests.engineer.helpers import source

MIXED = '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class DeltaNet(nn.Module):
    """Causal linear attention whose (causal) attention matrix is cast to bfloat16 before it meets v."""

    def __init__(self, hidden_size=64, num_heads=1, layer_idx=None, **kwargs):
        super().__init__()
        self.q, self.k, self.v = (nn.Linear(hidden_size, hidden_size, bias=False) for _ in range(3))
        self.o = nn.Linear(hidden_size, hidden_size, bias=False)

    def forward(self, hidden_states, attention_mask=None, **kwargs):
        T = hidden_states.shape[1]
        q, k = F.elu(self.q(hidden_states)) + 1, F.elu(self.k(hidden_states)) + 1
        v = self.v(hidden_states)
        att = (q @ k.transpose(-1, -2)).tril()
        att = att / att.sum(-1, keepdim=True).clamp(min=1e-6)
        att = att.to(torch.bfloat16)  # as the published programs do (they ran under bf16 autocast)
        return self.o(att @ v), None, None
'''
# as some published programs do (an annealing schedule): every forward advances a counter, so two forwards of the
# same past differ a little; under bf16 that shows as one rounding step of a logit (Monitor.perturbation_tol_bf16)
COUNTING = MIXED.replace("        return self.o(att @ v), None, None", """\
        self.calls += 1
        return self.o(att @ v) * (1 + 2e-3 * self.calls), None, None""").replace(
    "        self.o = nn.Linear", "        self.calls = 0\n        self.o = nn.Linear")
# and one that reads the next token: a leak, which the bf16 tolerance still catches
LEAKY = MIXED.replace("        return self.o(att @ v), None, None", """\
        nxt = torch.cat([hidden_states[:, 1:], torch.zeros_like(hidden_states[:, :1])], 1)
        return self.o(att @ v) + nxt, None, None""")
assert COUNTING != MIXED and LEAKY != MIXED
SMALL = {"steps": 5, "log_every": 5, "checkpoint_every": 5, "batch_size": 8, "eval_examples": 16}


def _job(tmp_path, code, evaluate=False, **overrides):
    return TrainJob(code=code, profile="cpu-micro", seed=0, workdir=str(tmp_path / "work"), evaluate=evaluate,
                    profile_overrides={**SMALL, **overrides})


def test_the_mixed_program_fails_in_fp32(tmp_path):
    with pytest.raises(RuntimeError) as err:
        run_job(_job(tmp_path, MIXED, autocast="fp32"))
    assert is_dtype_error(err.value), err.value


def test_the_mixed_program_trains_and_evaluates_under_the_policy_on_cpu(tmp_path):
    res = run_job(_job(tmp_path, MIXED, evaluate=True))
    assert res.autocast == "bf16" and res.metrics[AUTOCAST_METRIC] == 1.0 and res.device == "cpu"
    assert res.steps == 5 and math.isfinite(res.final_loss) and 0 <= res.benchmark <= 1
    ckpt = torch.load(tmp_path / "work" / "checkpoints" / "latest.pt", weights_only=False)
    assert ckpt["autocast"] == "bf16"  # a resumed run keeps the mode it started in


def test_a_program_that_trains_in_fp32_stays_in_fp32_and_unchanged(tmp_path):
    auto = run_job(_job(tmp_path / "auto", source("deltanet")))
    fp32 = run_job(_job(tmp_path / "fp32", source("deltanet"), autocast="fp32"))
    assert auto.autocast == "fp32" and auto.metrics == {AUTOCAST_METRIC: 0.0}
    assert auto.loss_curve == fp32.loss_curve


def test_the_retry_starts_from_the_model_as_built(tmp_path):
    """auto = fp32 step 0, a dtype error, the model put back, bf16 from step 0: the same run as bf16 from the start
    (COUNTING's forward counter included: the failed forward's count is undone too)."""
    for code in (MIXED, COUNTING):
        auto = run_job(_job(tmp_path / "auto", code))
        bf16 = run_job(_job(tmp_path / "bf16", code, autocast="bf16"))
        assert auto.autocast == bf16.autocast == "bf16" and auto.loss_curve == bf16.loss_curve


def test_an_error_that_bf16_does_not_cure_is_the_fp32_one(tmp_path):
    code = MIXED.replace("return self.o(att @ v), None, None", "return self.o(att @ v).half() @ v, None, None")
    with pytest.raises(RuntimeError) as err:
        run_job(_job(tmp_path, code))
    fp32 = pytest.raises(RuntimeError, run_job, _job(tmp_path / "fp32", code, autocast="fp32"))
    assert str(err.value) == str(fp32.value) and is_dtype_error(err.value)


def test_the_policy_by_device_and_setting():
    assert fixed_autocast(get_profile("cpu-micro"), "cuda") == "bf16"  # the paper's setting
    assert fixed_autocast(get_profile("cpu-micro"), "cpu") is None  # the first step decides
    assert fixed_autocast(get_profile("cpu-micro", autocast="fp32"), "cuda") == "fp32"
    assert fixed_autocast(get_profile("cpu-micro", autocast="bf16"), "cpu") == "bf16"
    with pytest.raises(ValueError, match="autocast"):
        get_profile("cpu-micro", autocast="fp16")


def test_autocast_model_returns_float32_logits():
    profile = get_profile("cpu-micro")
    model = build_model(load_layer_class(MIXED), profile)
    logits, _ = AutocastModel(model, "bf16", "cpu").eval()(torch.randint(profile.vocab_size, (2, 16)))
    assert logits.dtype == torch.float32 and logits.shape == (2, 16, profile.vocab_size)


def test_the_scored_model_is_the_trained_one_under_bf16(tmp_path):
    """Two sandbox children (~11 s): training, then the trusted scorer's forward child, which must run the model
    under bf16 autocast too (in fp32 MIXED's forward raises and the run would fail as eval_error)."""
    from lab.training.sandboxed import run_training_sandboxed
    res = run_training_sandboxed(MIXED, "cpu-micro", 0, scratch=tmp_path, profile_overrides=dict(SMALL, steps=10,
                                                                                                   log_every=5))
    assert res.ok, (res.kind, res.error, res.stderr_tail[-2000:])
    r = res.result
    assert r["scored_by"] == "trusted" and r["autocast"] == "bf16" and r["metrics"][AUTOCAST_METRIC] == 1.0
    assert math.isfinite(r["final_loss"]) and 0 <= r["benchmark"] <= 1


def test_a_counting_mixed_program_passes_the_leak_check_at_the_bf16_tolerance(tmp_path):
    res = run_job(_job(tmp_path, COUNTING))
    assert res.autocast == "bf16" and math.isfinite(res.final_loss)
    # the fp32 tolerance would have stopped it: its second forward moves a bf16 logit by a rounding step
    profile = get_profile("cpu-micro", **SMALL)
    torch.manual_seed(0)
    model = AutocastModel(build_model(load_layer_class(COUNTING), profile), "bf16", "cpu")
    x, _ = make_batch_fn(profile, 0)(0)
    with pytest.raises(TrainingStopped, match="future_perturbation"):
        Monitor().check_model(1, model, x)
    Monitor().check_model(1, model, x, bf16=True)


def test_a_leak_is_still_caught_under_bf16(tmp_path):
    with pytest.raises(TrainingStopped) as stop:
        run_job(_job(tmp_path, LEAKY))
    assert stop.value.kind == "suspected_leak" and stop.value.evidence.get("autocast") == "bf16", stop.value.evidence


def test_the_checks_follow_the_same_policy():
    """The researcher's (and the debugger's) sanity checks run a program as the runner will train it: a mixed
    program builds and passes the shape and causality checks under bf16 autocast (recorded in the evidence; this
    test program materialises the full attention matrix, so the complexity check then refuses it, as it must); a
    plain program stays in fp32."""
    from lab.checks import SanityChecker
    from lab.zoo import zoo_source

    mixed, plain = SanityChecker(repeats=1).check_many([MIXED, zoo_source("deltanet")], profile="cpu-micro")
    assert mixed.reason == "complexity", (mixed.reason, mixed.feedback)   # in fp32 it failed "build" (dtype)
    assert mixed.evidence.get("autocast") == "bf16" and "causality" in mixed.timings
    assert plain.ok and "autocast" not in plain.evidence
