import math

import pytest
import torch

from lab.training.model import CausalLM
from lab.training.monitor import Monitor, TrainingStopped
from lab.training.profiles import get_profile
from lab.training.runner import build_model, make_batch_fn
from lab.training.train import train
from tests.engineer.helpers import LeakyLayer, MixLayer, NaNLayer, layer_class


def test_leaky_layer_is_stopped_by_the_future_perturbation_rule():
    profile = get_profile("cpu-micro", steps=30)
    model = build_model(LeakyLayer, profile)
    with pytest.raises(TrainingStopped) as stop:
        train(model, profile, make_batch_fn(profile, 0), seed=0, device="cpu", monitor=Monitor())
    assert stop.value.kind == "suspected_leak"
    assert stop.value.evidence["rule"] == "future_perturbation" and stop.value.evidence["step"] == 1


def test_leak_shows_as_implausibly_low_loss_on_unpredictable_tokens():
    """With the structural rule off, the loss rule alone catches a model that learnt to copy the future."""
    profile = get_profile("cpu-bytes", steps=60, hidden_size=32, num_layers=1, num_heads=1, seq_len=32,
                          batch_size=8, lr=1e-2)
    torch.manual_seed(0)
    model = build_model(LeakyLayer, profile)
    monitor = Monitor(perturbation_tol=math.inf, leak_check_every=10)
    with pytest.raises(TrainingStopped) as stop:
        train(model, profile, make_batch_fn(profile, 0), seed=0, device="cpu", monitor=monitor)
    ev = stop.value.evidence
    assert stop.value.kind == "suspected_leak" and ev["rule"] == "unpredictable_tokens_ce"
    assert ev["ce_nats"] < ev["floor_nats"] == pytest.approx(0.5 * ev["unigram_entropy_nats"], abs=1e-3)


def test_nan_layer_is_stopped_as_diverged():
    profile = get_profile("cpu-micro", steps=10)
    model = build_model(NaNLayer, profile)
    with pytest.raises(TrainingStopped) as stop:
        train(model, profile, make_batch_fn(profile, 0), seed=0, device="cpu", monitor=Monitor())
    assert stop.value.kind == "diverged" and stop.value.evidence["step"] == 1


def test_causal_models_pass_the_leak_checks():
    monitor = Monitor()
    for name in ("deltanet", "linear", "softmax"):
        torch.manual_seed(0)
        model = CausalLM(layer_class(name), 256, 32, 2, 1, {"use_short_conv": True, "conv_size": 4})
        monitor.check_model(1, model, torch.randint(256, (8, 128)))  # raises if it fails
    monitor.check_model(1, CausalLM(MixLayer, 64, 16, 1, 1), torch.randint(64, (8, 100)))


def test_too_slow_after_warmup_relative_to_the_reference():
    monitor = Monitor(reference_step_s=0.1, slow_factor=2.5, warmup_steps=5, window=4)
    for step in range(1, 6):
        monitor.on_step(step, 1.0, 10.0)  # warm-up steps may be slow
    for step in range(6, 9):
        monitor.on_step(step, 1.0, 0.3)  # 3x slower, but the window is not full yet
    with pytest.raises(TrainingStopped) as stop:
        monitor.on_step(9, 1.0, 0.3)
    assert stop.value.kind == "too_slow" and stop.value.evidence["ratio"] == pytest.approx(3.0)
    ok = Monitor(reference_step_s=0.1, warmup_steps=0, window=4)
    for step in range(1, 50):
        ok.on_step(step, 1.0, 0.2 if step % 5 else 5.0)  # a 2x step plus rare hiccups: median is fine
    no_reference = Monitor(reference_step_s=None, warmup_steps=0, window=2)
    for step in range(1, 10):
        no_reference.on_step(step, 1.0, 100.0)


def test_non_finite_loss_is_diverged():
    for bad in (float("nan"), float("inf")):
        with pytest.raises(TrainingStopped) as stop:
            Monitor().on_step(3, bad, 0.1)
        assert stop.value.kind == "diverged"
