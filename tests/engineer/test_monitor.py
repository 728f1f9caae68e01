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
    monitor = Monitor(reference_step_s=0.1, slow_factor=2.5, warmup_steps=5, window=4, probe_every=0)
    for step in range(1, 6):
        monitor.on_step(step, 1.0, 10.0)  # warm-up steps may be slow
    for step in range(6, 16):
        monitor.on_step(step, 1.0, 0.3)  # 3x slower: the window fills (step 9), then must stay over for 8 steps
    with pytest.raises(TrainingStopped) as stop:
        monitor.on_step(16, 1.0, 0.3)
    assert stop.value.kind == "too_slow" and stop.value.evidence["ratio"] == pytest.approx(3.0)
    assert stop.value.evidence["machine_load"] == 1.0 and stop.value.evidence["limit_ratio"] == 2.5
    ok = Monitor(reference_step_s=0.1, warmup_steps=0, window=4, probe_every=0)
    for step in range(1, 50):
        ok.on_step(step, 1.0, 0.2 if step % 5 else 5.0)  # a 2x step plus rare hiccups: median is fine
    no_reference = Monitor(reference_step_s=None, warmup_steps=0, window=2, probe_every=0)
    for step in range(1, 10):
        no_reference.on_step(step, 1.0, 100.0)


def test_a_burst_of_load_shorter_than_two_windows_does_not_stop_the_run():
    """CI stopped a debugger's revision at 2.64x over a 20-step window of 27 ms steps: half a second of other work."""
    monitor = Monitor(reference_step_s=0.1, slow_factor=2.5, warmup_steps=0, window=4, probe_every=0)
    steps = [0.1] * 10 + [0.4] * 8 + [0.1] * 30 + [0.4] * 8 + [0.1] * 10   # two bursts of two windows
    for step, cost in enumerate(steps, 1):
        monitor.on_step(step, 1.0, cost)
    slow = Monitor(reference_step_s=0.1, slow_factor=2.5, warmup_steps=0, window=4, probe_every=0)
    with pytest.raises(TrainingStopped):
        for step, cost in enumerate([0.1] * 10 + [0.4] * 20, 1):
            slow.on_step(step, 1.0, cost)
    assert slow.steps_seen == 20   # the window is over from step 13 (3 of 4 slow), stopped at the 8th such step


def test_the_reference_scales_with_the_load_the_probe_measures_now(monkeypatch):
    """The baseline trained alone; a candidate beside other runs steps slower on every op, its probe too."""
    import lab.training.monitor as monitor_module
    probe = {"s": 2e-4}
    monkeypatch.setattr(monitor_module, "probe_cost", lambda: probe["s"])
    loaded = Monitor(reference_step_s=0.1, slow_factor=2.5, warmup_steps=0, window=4, probe_every=1,
                     reference_probe_s=1e-4)    # the probe runs 2x slower now than in the baseline's run
    for step in range(1, 40):
        loaded.on_step(step, 1.0, 0.45)   # 4.5x the baseline's step, under 2.5 x 2
    assert loaded.machine_load() == pytest.approx(2.0) and loaded.probe_s == pytest.approx(2e-4)
    with pytest.raises(TrainingStopped) as stop:
        for step in range(40, 60):
            loaded.on_step(step, 1.0, 0.6)   # 6x: slower than the load explains
    assert stop.value.evidence["machine_load"] == 2.0 and stop.value.evidence["limit_ratio"] == 5.0
    probe["s"] = 0.5e-4   # a quieter machine than the baseline's: the limit never tightens below 2.5x
    quiet = Monitor(reference_step_s=0.1, slow_factor=2.5, warmup_steps=0, window=4, probe_every=1,
                    reference_probe_s=1e-4)
    for step in range(1, 40):
        quiet.on_step(step, 1.0, 0.24)
    assert quiet.machine_load() == 1.0


def test_the_probe_leaves_the_training_rng_alone_and_costs_little():
    from lab.training.monitor import probe_cost
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    costs = [probe_cost() for _ in range(20)]
    assert torch.equal(torch.rand(4), expected)
    assert 0 < min(costs) < 0.01   # about 0.1 ms alone: every 10th step of a 27 ms cpu-micro step is < 0.1 %


def test_a_run_records_its_probe_for_the_next_reference(tmp_path):
    from lab.training.runner import TrainJob, run_job
    from lab.zoo.registry import zoo_source
    torch.set_num_threads(1)
    result = run_job(TrainJob(code=zoo_source("deltanet"), profile="cpu-micro", seed=0, workdir=str(tmp_path),
                              evaluate=False, profile_overrides={"steps": 30}))
    assert result.probe_s is not None and 0 < result.probe_s < 0.01


def test_non_finite_loss_is_diverged():
    for bad in (float("nan"), float("inf")):
        with pytest.raises(TrainingStopped) as stop:
            Monitor().on_step(3, bad, 0.1)
        assert stop.value.kind == "diverged"
