"""l2norm(x) = x / sqrt(sum(x^2) + eps) over the last dim (fla.modules.l2norm semantics)."""
from __future__ import annotations

import torch
import torch.nn as nn


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    # fla computes in float32 inside its kernels; keep float64 exact for tests
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def l2norm(x: torch.Tensor, eps: float = 1e-6, output_dtype: torch.dtype | None = None) -> torch.Tensor:
    xc = x.to(_compute_dtype(x.dtype))
    y = xc * torch.rsqrt(xc.square().sum(-1, keepdim=True) + eps)
    return y.to(output_dtype or x.dtype)


l2_norm = l2norm


class L2Norm(nn.Module):
    def __init__(self, eps: float = 1e-6, output_dtype: torch.dtype | None = None):
        super().__init__()
        self.eps, self.output_dtype = eps, output_dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return l2norm(x, self.eps, self.output_dtype)
