"""Gated linear attention (GLA): linear attention with a data-dependent forget gate per key dimension.

Yang, Wang, Shen, Panda & Kim, "Gated Linear Attention Transformers with Hardware-Efficient Training",
ICML 2024 (arXiv 2312.06635).

Per head, with a gate alpha_t = sigmoid(W2 W1 x_t + b)^(1/16) in (0, 1)^K (low-rank, 16):
    S_t = diag(alpha_t) S_{t-1} + k_t^T v_t,    o_t = scale * q_t S_t
then a per-head RMSNorm with a SiLU output gate, as in the paper.
Layer: projections -> short conv -> gate (log space) -> chunked GLA -> gated RMSNorm -> o_proj.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from fla.modules import FusedRMSNormGated, ShortConvolution

_HAS_FLA_OPS = False
if torch.cuda.is_available():  # fla's Triton kernels exist only with CUDA; never imported on CPU
    try:
        from fla.ops.gla import chunk_gla as fla_chunk_gla
        _HAS_FLA_OPS = True
    except Exception:  # the CPU stand-in of fla has no fla.ops
        _HAS_FLA_OPS = False


def _two_level_scores(q, k, b, c: int):
    """Intra-chunk scores A_ij = sum_d q_id k_jd exp(b_id - b_jd) (j <= i, else 0) from bounded factors only.
    q, k, b: [..., C, K]; the chunk is cut into sub-chunks of c. Between sub-chunks I > J the split
    exp(b_i - r) exp(r - b_j) is taken around r = b at the end of J (both factors <= 1); inside a
    sub-chunk the pairwise exponent is formed directly."""
    C = q.shape[-2]
    qs, ks, bs = (rearrange(x, "... (m c) d -> ... m c d", c=c) for x in (q, k, b))
    r = bs[..., -1, :]  # [..., M, K]
    q_ref = qs[..., :, None, :, :] * (bs[..., :, None, :, :] - r[..., None, :, None, :]).clamp(max=0).exp()
    k_ref = ks * (r[..., None, :] - bs).exp()
    A_between = torch.einsum("...IJik,...Jjk->...IJij", q_ref, k_ref)  # [..., M, M, c, c]
    sub_causal = torch.ones(c, c, dtype=torch.bool, device=q.device).tril()
    pair = (bs[..., :, None, :] - bs[..., None, :, :]).masked_fill(~sub_causal[..., None], float("-inf")).exp()
    A_within = (qs[..., :, None, :] * ks[..., None, :, :] * pair).sum(-1)  # [..., M, c, c]
    block = torch.arange(C // c, device=q.device)
    A = torch.where((block[:, None] == block[None, :])[:, :, None, None], A_within[..., :, None, :, :],
                    torch.where((block[:, None] > block[None, :])[:, :, None, None], A_between, 0.0))
    return rearrange(A, "... I J i j -> ... (I i) (J j)")


def chunk_gla(q, k, v, g, chunk_size: int = 64, scale: Optional[float] = None,
              initial_state: Optional[torch.Tensor] = None, output_final_state: bool = False,
              sub_chunk_size: int = 8, max_log_decay: float = 30.0):
    """Gated linear attention, chunked. q, k, g (log gate <= 0): [B, T, H, K]; v: [B, T, H, V];
    initial_state: [B, H, K, V] -> (o [B, T, H, V], final state [B, H, K, V] or None).

    With b_i = g_1 + ... + g_i (per key dim) inside a chunk, the intra-chunk scores are
    A_ij = sum_d q_id k_jd exp(b_id - b_jd) for j <= i. While every chunk decays by less than
    exp(-max_log_decay), the split (q exp(b)) (k exp(-b))^T is exact and cheap; once gates close it would
    overflow, and the scores come from bounded factors in sub-chunks instead (_two_level_scores, as in
    the paper's secondary chunking). Across chunks the state carries everything, with factors <= 1 only.
    """
    B, T, H, K = q.shape
    scale = K ** -0.5 if scale is None else scale
    out_dtype = q.dtype
    dtype = q.dtype if q.dtype in (torch.float32, torch.float64) else torch.float32
    q, k, v, g = (rearrange(x, "b t h d -> b h t d").to(dtype) for x in (q, k, v, g))
    C = chunk_size
    pad = (-T) % C
    if pad:  # padded steps have k = 0 and no decay: they leave the state unchanged
        q, k, v, g = (F.pad(x, (0, 0, 0, pad)) for x in (q, k, v, g))
    q, k, v, g = (rearrange(x, "b h (n c) d -> b h n c d", c=C) for x in (q * scale, k, v, g))
    b = g.cumsum(-2)  # [B, H, N, C, K]

    causal = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()
    if (-b[..., -1, :]).max() <= max_log_decay:  # exp(-b) <= exp(max_log_decay): no overflow
        A = ((q * b.exp()) @ (k * (-b).exp()).transpose(-1, -2)).masked_fill(~causal, 0)
    else:
        A = _two_level_scores(q, k, b, math.gcd(C, sub_chunk_size))
    o_intra = A @ v  # all chunks at once

    S = q.new_zeros(B, H, K, v.shape[-1]) if initial_state is None else initial_state.to(dtype)
    o = []
    for n in range(q.shape[2]):
        b_n = b[:, :, n]
        o.append((q[:, :, n] * b_n.exp()) @ S + o_intra[:, :, n])
        b_last = b_n[..., -1:, :]  # [B, H, 1, K]
        S = b_last.transpose(-1, -2).exp() * S + (k[:, :, n] * (b_last - b_n).exp()).transpose(-1, -2) @ v[:, :, n]
    o = rearrange(torch.stack(o, dim=2), "b h n c d -> b (n c) h d")[:, :T]
    return o.to(out_dtype), (S if output_final_state else None)


class DeltaNet(nn.Module):
    def __init__(self, hidden_size: int = 1024, num_heads: int = 4, expand_k: float = 1.0, expand_v: float = 1.0,
                 use_short_conv: bool = True, conv_size: int = 4, conv_bias: bool = False, chunk_size: int = 64,
                 norm_eps: float = 1e-5, gate_low_rank_dim: int = 16, gate_logit_normalizer: float = 16.0,
                 layer_idx: Optional[int] = None, **kwargs):
        super().__init__()
        self.hidden_size, self.num_heads, self.layer_idx = hidden_size, num_heads, layer_idx
        self.key_dim, self.value_dim = int(hidden_size * expand_k), int(hidden_size * expand_v)
        if self.key_dim % num_heads or self.value_dim % num_heads:
            raise ValueError(f"key/value dims {self.key_dim}/{self.value_dim} must divide num_heads={num_heads}")
        self.head_k_dim, self.head_v_dim = self.key_dim // num_heads, self.value_dim // num_heads
        self.use_short_conv, self.chunk_size = use_short_conv, chunk_size

        self.q_proj = nn.Linear(hidden_size, self.key_dim, bias=False)
        self.k_proj = nn.Linear(hidden_size, self.key_dim, bias=False)
        self.v_proj = nn.Linear(hidden_size, self.value_dim, bias=False)
        # low-rank data-dependent forget gate, one value per key dimension
        self.gk_proj = nn.Sequential(nn.Linear(hidden_size, gate_low_rank_dim, bias=False),
                                     nn.Linear(gate_low_rank_dim, self.key_dim, bias=True))
        self.gate_logit_normalizer = gate_logit_normalizer
        if use_short_conv:
            self.q_conv1d = ShortConvolution(self.key_dim, conv_size, bias=conv_bias, activation="silu")
            self.k_conv1d = ShortConvolution(self.key_dim, conv_size, bias=conv_bias, activation="silu")
            self.v_conv1d = ShortConvolution(self.value_dim, conv_size, bias=conv_bias, activation="silu")
        self.g_proj = nn.Linear(hidden_size, self.value_dim, bias=False)
        self.o_norm = FusedRMSNormGated(self.head_v_dim, eps=norm_eps)
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

        # alpha = sigmoid(.)^(1/16): log alpha = logsigmoid(.) / 16, close to 1 at init
        gk = F.logsigmoid(self.gk_proj(hidden_states).to(self.gk_proj[1].weight.dtype)) / self.gate_logit_normalizer
        gk = rearrange(gk, "b t (h d) -> b t h d", h=self.num_heads)
        if attention_mask is not None:  # padded tokens never write into the state
            keep = attention_mask[:, -T:, None].to(k.dtype)
            k, v = k * keep[..., None], v * keep[..., None]

        initial_state = last_state["recurrent_state"] if last_state is not None else None
        if hidden_states.is_cuda and _HAS_FLA_OPS:
            o, recurrent_state = fla_chunk_gla(q, k, v, g=gk, initial_state=initial_state,
                                               output_final_state=use_cache)
        else:
            o, recurrent_state = chunk_gla(q, k, v, gk, self.chunk_size, initial_state=initial_state,
                                           output_final_state=use_cache)

        if past_key_values is not None and use_cache:
            past_key_values.update(recurrent_state=recurrent_state,
                                   conv_state=(conv_q, conv_k, conv_v) if self.use_short_conv else None,
                                   layer_idx=self.layer_idx or 0, offset=T)
        g = rearrange(self.g_proj(hidden_states), "b t (h d) -> b t h d", h=self.num_heads)
        o = self.o_norm(o, g)  # per-head norm, then the swish output gate
        o = self.o_proj(rearrange(o, "b t h d -> b t (h d)"))
        return o, None, past_key_values
