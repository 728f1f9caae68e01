"""ShortConvolution: a depthwise causal Conv1d over [B, T, D], with fla's call signature.

forward(x, residual=None, mask=None, cache=None, output_final_state=False, cu_seqlens=None)
returns (y, final_state). The state is the last W inputs of each sequence, shape [N, D, W]
(W = kernel size, N = batch or number of packed sequences); an incoming `cache` holds the W
inputs before x (its last W-1 are used) and, as in fla, is updated in place.
With `cu_seqlens` (x is [1, total, D], sequences packed back to back) no sequence sees
another's tokens.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def _causal_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                 initial_state: torch.Tensor | None, want_state: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """x: [B, T, D], weight: [D, 1, W], initial_state: [B, D, W] or None -> (y [B, T, D], state [B, D, W] when
    `want_state`, else None)."""
    B, T, D = x.shape
    W = weight.shape[-1]
    xt = x.transpose(1, 2)  # [B, D, T]
    past = initial_state[..., 1:].to(x.dtype) if initial_state is not None else xt.new_zeros(B, D, W - 1)
    x_full = torch.cat([past, xt], dim=-1)  # [B, D, W - 1 + T]
    y = F.conv1d(x_full, weight.to(x.dtype), None if bias is None else bias.to(x.dtype), groups=D)
    state = F.pad(x_full, (1, 0))[..., -W:] if want_state else None  # last W inputs, zero-padded on the left
    # y comes out [B, D, T]: returned as a contiguous [B, T, D], not as its transposed view, because every op after
    # it (activation, head split, norms, the memory's products) runs slower on the strided layout (with the copy here
    # a cpu-tiny candidate's step is 1.04-1.13x faster on one thread: docs/engineer.md)
    return y.transpose(1, 2).contiguous(), state


class ShortConvolution(nn.Conv1d):
    def __init__(self, hidden_size: int, kernel_size: int, bias: bool = False, activation: str | None = "silu",
                 backend: str | None = "triton", device=None, dtype=None, **kwargs):
        super().__init__(hidden_size, hidden_size, kernel_size, groups=hidden_size, bias=bias,
                         padding=kernel_size - 1, device=device, dtype=dtype)
        if activation is not None and activation not in ("silu", "swish"):
            raise ValueError(f"Activation `{activation}` not supported yet.")
        self.hidden_size, self.activation, self.backend = hidden_size, activation, backend

    def extra_repr(self) -> str:
        return super().extra_repr() + f", activation={self.activation}"

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                cache: torch.Tensor | None = None, output_final_state: bool = False,
                cu_seqlens: torch.LongTensor | None = None, **kwargs) -> tuple[torch.Tensor, torch.Tensor | None]:
        if mask is not None:
            if cu_seqlens is not None:
                raise ValueError("`mask` and `cu_seqlens` cannot be provided at the same time")
            x = x * mask.unsqueeze(-1).to(x.dtype)
        want_state = output_final_state or cache is not None
        if cu_seqlens is None:
            y, state = _causal_conv(x, self.weight, self.bias, cache, want_state)
        else:  # packed sequences: convolve each one on its own
            bounds = cu_seqlens.tolist()
            ys, states = [], []
            for n, (s, e) in enumerate(zip(bounds[:-1], bounds[1:])):
                y_n, st_n = _causal_conv(x[:, s:e], self.weight, self.bias,
                                         None if cache is None else cache[n:n + 1], want_state)
                ys.append(y_n)
                states.append(st_n)
            y, state = torch.cat(ys, dim=1), torch.cat(states, dim=0) if want_state else None
        if self.activation is not None:
            y = F.silu(y)
        if residual is not None:
            y = y + residual
        if cache is not None:  # fla updates a given cache in place
            with torch.no_grad():
                cache.copy_(state.detach().to(cache.dtype))
        return y, (state if output_final_state else None)

    @property
    def state_size(self) -> int:
        return self.hidden_size * self.kernel_size[0]
