"""FusedRMSNormGated: rmsnorm(x) * weight * act(g), act = swish (default) or sigmoid, as in fla."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layernorm import rms_norm


def rms_norm_gated(x, g, weight=None, bias=None, activation="swish", residual=None, prenorm=False,
                   residual_in_fp32=False, eps=1e-6):
    y, residual_out = rms_norm(x, weight, bias, residual, eps, prenorm=True, residual_in_fp32=residual_in_fp32)
    gate = F.silu(g) if activation in ("swish", "silu") else torch.sigmoid(g)
    y = (y * gate).to(x.dtype)
    return (y, residual_out) if prenorm else y


class FusedRMSNormGated(nn.Module):
    def __init__(self, hidden_size: int, elementwise_affine: bool = True, eps: float = 1e-5,
                 activation: str = "swish", device=None, dtype=None):
        super().__init__()
        if activation not in ("swish", "silu", "sigmoid"):
            raise ValueError(f"Unsupported activation: {activation}")
        self.hidden_size, self.elementwise_affine = hidden_size, elementwise_affine
        self.eps, self.activation = eps, activation
        self.register_parameter("weight", None)
        self.register_parameter("bias", None)
        if elementwise_affine:
            self.weight = nn.Parameter(torch.ones(hidden_size, device=device, dtype=dtype))

    def extra_repr(self) -> str:
        return f"{self.hidden_size}, eps={self.eps}, activation={self.activation}"

    def forward(self, x, g, residual=None, prenorm=False, residual_in_fp32=False):
        return rms_norm_gated(x, g, self.weight, self.bias, self.activation, residual, prenorm, residual_in_fp32,
                              self.eps)


class FusedRMSNormSwishGate(FusedRMSNormGated):  # fla's older name for the same module
    def __init__(self, hidden_size: int, elementwise_affine: bool = True, eps: float = 1e-5, device=None, dtype=None):
        super().__init__(hidden_size, elementwise_affine, eps, "swish", device, dtype)
