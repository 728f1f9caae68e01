"""RMSNorm with fla's signature: forward(x, residual=None, prenorm=False, residual_in_fp32=False)."""
from __future__ import annotations

import torch
import torch.nn as nn

from .l2norm import _compute_dtype


def rms_norm(x, weight=None, bias=None, residual=None, eps=1e-5, prenorm=False, residual_in_fp32=False):
    """y = x / sqrt(mean(x^2) + eps) * weight + bias; with `residual`, x is x + residual first and
    prenorm=True also returns that sum (the pre-norm residual stream)."""
    dtype = x.dtype
    if residual is not None:
        x = x.float() + residual.float() if residual_in_fp32 else x + residual
    residual_out = x
    xc = x.to(_compute_dtype(dtype))
    y = xc * torch.rsqrt(xc.square().mean(-1, keepdim=True) + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    y = y.to(dtype)
    return (y, residual_out) if prenorm else y


class RMSNorm(nn.Module):
    def __init__(self, hidden_size: int, elementwise_affine: bool = True, bias: bool = False, eps: float = 1e-5,
                 device=None, dtype=None):
        super().__init__()
        self.hidden_size, self.elementwise_affine, self.eps = hidden_size, elementwise_affine, eps
        self.register_parameter("weight", None)
        self.register_parameter("bias", None)
        if elementwise_affine:
            self.weight = nn.Parameter(torch.ones(hidden_size, device=device, dtype=dtype))
            if bias:
                self.bias = nn.Parameter(torch.zeros(hidden_size, device=device, dtype=dtype))

    def extra_repr(self) -> str:
        return f"{self.hidden_size}, eps={self.eps}"

    def forward(self, x, residual=None, prenorm=False, residual_in_fp32=False):
        return rms_norm(x, self.weight, self.bias, residual, self.eps, prenorm, residual_in_fp32)
