"""The decay initialisation of Gated DeltaNet and Mamba2: Mamba2's ranges spread over the heads, so head 0
always starts with a long memory (with one head a random draw usually forgot within ~20 tokens and MQAR
over 128 tokens never left its plateau)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lab.zoo import zoo_source


@pytest.mark.parametrize("name", ["gated_deltanet", "mamba2"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_head_starts_with_a_memory_longer_than_the_sequence(exec_program, name, seed):
    torch.manual_seed(seed)
    layer = exec_program(zoo_source(name), name).DeltaNet(hidden_size=64, num_heads=1)
    rate = (layer.A_log.exp() * F.softplus(layer.dt_bias)).item()  # -log(decay) per token, input-free part
    assert rate == pytest.approx(0.001, rel=1e-3)
    assert math.exp(-rate * 128) > 0.85  # most of the state survives a cpu-tiny sequence


@pytest.mark.parametrize("name", ["gated_deltanet", "mamba2"])
def test_heads_cover_mamba2_ranges_on_a_log_grid(exec_program, name):
    layer = exec_program(zoo_source(name), name).DeltaNet(hidden_size=64, num_heads=8)
    A, dt = layer.A_log.exp().detach(), F.softplus(layer.dt_bias).detach()
    assert A[0].item() == pytest.approx(1.0) and A[-1].item() == pytest.approx(16.0)
    assert dt[0].item() == pytest.approx(1e-3, rel=1e-4) and dt[-1].item() == pytest.approx(0.1, rel=1e-4)
    ratios = (A * dt)[1:] / (A * dt)[:-1]
    assert torch.allclose(ratios, ratios[0].expand_as(ratios), rtol=1e-4)  # log-spaced timescales
