"""Linear attention with the elu + 1 feature map, normalised.

Katharopoulos, Vyas, Pappas & Fleuret, "Transformers are RNNs: Fast Autoregressive Transformers with
Linear Attention", ICML 2020 (arXiv 2006.16236).

Per head, with phi(x) = elu(x) + 1 > 0:
    S_t = S_{t-1} + phi(k_t)^T v_t,   z_t = z_{t-1} + phi(k_t),   o_t = phi(q_t) S_t / (phi(q_t) . z_t + eps)
No decay, no gate and no output norm: the plain associative memory the other members improve on.
Layer: projections -> short conv -> elu + 1 feature map -> chunked normalised linear attention -> o_proj.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from fla.modules import ShortConvolution


def chunk_linear_attn(q, k, v, chunk_size: int = 64, eps: float = 1e-6,
                      initial_state: Optional[torch.Tensor] = None, output_final_state: bool = False):
    """Normalised causal linear attention, chunked. q, k (already feature-mapped, >= 0): [B, T, H, K];
    v: [B, T, H, V]; initial_state: [B, H, K, V + 1] -> (o [B, T, H, V], final state or None).

    The normaliser z rides along as an extra value column of ones, so one state S = [sum k^T v | sum k^T]
    gives numerator and denominator at once: o = (q S_0 + causal(q k^T) [v | 1]) split as num / (den + eps).
    """
    B, T, H, K = q.shape
    out_dtype = q.dtype
    dtype = q.dtype if q.dtype in (torch.float32, torch.float64) else torch.float32
    q, k, v = (rearrange(x, "b t h d -> b h t d").to(dtype) for x in (q, k, v))
    v = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)  # [v | 1]
    C = chunk_size
    pad = (-T) % C
    if pad:  # padded steps have k = 0: they leave the state unchanged
        q, k, v = (F.pad(x, (0, 0, 0, pad)) for x in (q, k, v))
    q, k, v = (rearrange(x, "b h (n c) d -> b h n c d", c=C) for x in (q, k, v))
    causal = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()
    o_intra = (q @ k.transpose(-1, -2)).masked_fill(~causal, 0) @ v  # all chunks at once

    S = q.new_zeros(B, H, K, v.shape[-1]) if initial_state is None else initial_state.to(dtype)
    o = []
    for n in range(q.shape[2]):
        o.append(q[:, :, n] @ S + o_intra[:, :, n])
        S = S + k[:, :, n].transpose(-1, -2) @ v[:, :, n]
    o = rearrange(torch.stack(o, dim=2), "b h n c d -> b (n c) h d")[:, :T]
    o = o[..., :-1] / (o[..., -1:] + eps)
    return o.to(out_dtype), (S if output_final_state else None)


class DeltaNet(nn.Module):
    def __init__(self, hidden_size: int = 1024, num_heads: int = 4, expand_k: float = 1.0, expand_v: float = 1.0,
                 use_short_conv: bool = True, conv_size: int = 4, conv_bias: bool = False, chunk_size: int = 64,
                 norm_eps: float = 1e-6, layer_idx: Optional[int] = None, **kwargs):
        super().__init__()
        self.hidden_size, self.num_heads, self.layer_idx = hidden_size, num_heads, layer_idx
        self.key_dim, self.value_dim = int(hidden_size * expand_k), int(hidden_size * expand_v)
        if self.key_dim % num_heads or self.value_dim % num_heads:
            raise ValueError(f"key/value dims {self.key_dim}/{self.value_dim} must divide num_heads={num_heads}")
        self.head_k_dim, self.head_v_dim = self.key_dim // num_heads, self.value_dim // num_heads
        self.use_short_conv, self.chunk_size, self.norm_eps = use_short_conv, chunk_size, norm_eps

        self.q_proj = nn.Linear(hidden_size, self.key_dim, bias=False)
        self.k_proj = nn.Linear(hidden_size, self.key_dim, bias=False)
        self.v_proj = nn.Linear(hidden_size, self.value_dim, bias=False)
        if use_short_conv:
            self.q_conv1d = ShortConvolution(self.key_dim, conv_size, bias=conv_bias, activation="silu")
            self.k_conv1d = ShortConvolution(self.key_dim, conv_size, bias=conv_bias, activation="silu")
            self.v_conv1d = ShortConvolution(self.value_dim, conv_size, bias=conv_bias, activation="silu")
        self.o_proj = nn.Linear(self.value_dim, hidden_size, bias=False)

    def forward(self, hidden_states: torch.Tensor, attention_mask: Optional[torch.Tensor] = None,
                past_key_values=None, use_cache: bool = False, output_attentions: bool = False,
                **kwargs) -> Tuple[torch.Tensor, None, object]:
        B, T, _ = hidden_states.shape
        last_state = None
        if past_key_values is not None and len(past_key_values) > (self.layer_idx or 0):
            last_state = past_key_values[self.layer_idx or 0]
        conv_q = conv_k = conv_v = None
        if last_state is not None and last_state.get("conv_state") is not None:
            conv_q, conv_k, conv_v = last_state["conv_state"]

        # projections -> short conv (with SiLU; padded tokens enter it as zeros) -> heads
        q, k, v = self.q_proj(hidden_states), self.k_proj(hidden_states), self.v_proj(hidden_states)
        if self.use_short_conv:
            conv_mask = attention_mask[:, -T:] if attention_mask is not None else None
            q, conv_q = self.q_conv1d(q, mask=conv_mask, cache=conv_q, output_final_state=use_cache)
            k, conv_k = self.k_conv1d(k, mask=conv_mask, cache=conv_k, output_final_state=use_cache)
            v, conv_v = self.v_conv1d(v, mask=conv_mask, cache=conv_v, output_final_state=use_cache)
        q = rearrange(q, "b t (h d) -> b t h d", h=self.num_heads)
        k = rearrange(k, "b t (h d) -> b t h d", h=self.num_heads)
        v = rearrange(v, "b t (h d) -> b t h d", h=self.num_heads)

        # feature map: positive features make q.z a valid normaliser
        q, k = F.elu(q) + 1, F.elu(k) + 1
        if attention_mask is not None:  # padded tokens never write into the state
            keep = attention_mask[:, -T:, None].to(k.dtype)
            k, v = k * keep[..., None], v * keep[..., None]

        initial_state = last_state["recurrent_state"] if last_state is not None else None
        o, recurrent_state = chunk_linear_attn(q, k, v, self.chunk_size, self.norm_eps,
                                               initial_state=initial_state, output_final_state=use_cache)

        if past_key_values is not None and use_cache:
            past_key_values.update(recurrent_state=recurrent_state,
                                   conv_state=(conv_q, conv_k, conv_v) if self.use_short_conv else None,
                                   layer_idx=self.layer_idx or 0, offset=T)
        o = self.o_proj(rearrange(o, "b t h d -> b t (h d)"))
        return o, None, past_key_values
