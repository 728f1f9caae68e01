"""Causal softmax attention: the quadratic upper reference.

Vaswani, Shazeer, Parmar, Uszkoreit, Jones, Gomez, Kaiser & Polosukhin, "Attention Is All You Need",
NeurIPS 2017 (arXiv 1706.03762); rotary position embedding from Su et al., "RoFormer", arXiv 2104.09864.

Per head:  o_t = sum_{s <= t} softmax_s(q_t . k_s / sqrt(K)) v_s.
Time and memory grow with T^2: this member is the accuracy reference, not a candidate.
Layer: projections -> short conv -> rotary positions on q, k -> causal scaled dot-product attention
-> o_proj. The key/value cache (attn_state) grows with the sequence.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from fla.modules import ShortConvolution


def softmax_attention(q, k, v, scale: Optional[float] = None, key_mask: Optional[torch.Tensor] = None):
    """q: [B, Tq, H, K]; k, v: [B, Tk, H, *] with Tk >= Tq, the last Tq keys at the queries' own positions;
    key_mask: [B, Tk] (True = a real token) or None -> o [B, Tq, H, V]."""
    Tq, Tk = q.shape[1], k.shape[1]
    q, k, v = (rearrange(x, "b t h d -> b h t d") for x in (q, k, v))
    if Tq == Tk and key_mask is None:
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
    else:
        rows = torch.arange(Tq, device=q.device)[:, None] + (Tk - Tq)
        allowed = torch.arange(Tk, device=q.device)[None, :] <= rows  # [Tq, Tk]
        if key_mask is not None:  # a query always sees itself, so no row is empty
            allowed = (allowed & key_mask[:, None, None, :].bool()) | (torch.arange(Tk, device=q.device) == rows)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, scale=scale)
    return rearrange(o, "b h t d -> b t h d")


def rotary(x: torch.Tensor, offset: int, theta: float = 10000.0) -> torch.Tensor:
    """Rotate pairs (x_i, x_{i + K/2}) of x [B, T, H, K] by position-dependent angles (RoPE)."""
    T, K = x.shape[1], x.shape[-1]
    inv_freq = theta ** -(torch.arange(0, K // 2, device=x.device, dtype=torch.float32) * 2 / K)
    angles = torch.arange(offset, offset + T, device=x.device, dtype=torch.float32)[:, None] * inv_freq  # [T, K/2]
    cos, sin = (f(angles)[None, :, None, :].to(x.dtype) for f in (torch.cos, torch.sin))
    x1, x2 = x[..., :K // 2], x[..., K // 2:2 * (K // 2)]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin, x[..., 2 * (K // 2):]], dim=-1)


class DeltaNet(nn.Module):
    def __init__(self, hidden_size: int = 1024, num_heads: int = 4, expand_k: float = 1.0, expand_v: float = 1.0,
                 use_short_conv: bool = True, conv_size: int = 4, conv_bias: bool = False, use_rope: bool = True,
                 rope_theta: float = 10000.0, layer_idx: Optional[int] = None, **kwargs):
        super().__init__()
        self.hidden_size, self.num_heads, self.layer_idx = hidden_size, num_heads, layer_idx
        self.key_dim, self.value_dim = int(hidden_size * expand_k), int(hidden_size * expand_v)
        if self.key_dim % num_heads or self.value_dim % num_heads:
            raise ValueError(f"key/value dims {self.key_dim}/{self.value_dim} must divide num_heads={num_heads}")
        self.head_k_dim, self.head_v_dim = self.key_dim // num_heads, self.value_dim // num_heads
        self.use_short_conv, self.use_rope, self.rope_theta = use_short_conv, use_rope, rope_theta

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

        # positions: the keys and values of earlier calls come from the cache
        past = last_state["attn_state"] if last_state is not None and last_state.get("attn_state") else None
        offset = past[0].shape[1] if past is not None else 0
        if self.use_rope:
            q, k = rotary(q, offset, self.rope_theta), rotary(k, offset, self.rope_theta)
        if past_key_values is not None and use_cache:
            past_key_values.update(attn_state=(k, v),
                                   conv_state=(conv_q, conv_k, conv_v) if self.use_short_conv else None,
                                   layer_idx=self.layer_idx or 0, offset=T)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=1), torch.cat([past[1], v], dim=1)
        key_mask = attention_mask[:, -k.shape[1]:] if attention_mask is not None else None

        o = softmax_attention(q, k, v, key_mask=key_mask)
        o = self.o_proj(rearrange(o, "b t h d -> b t (h d)"))
        return o, None, past_key_values
