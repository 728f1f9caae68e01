"""RetNet-style retention: linear attention with a fixed exponential decay per head.

Sun, Dong, Huang, Ma, Xia, Xue, Wang & Wei, "Retentive Network: A Successor to Transformer for Large
Language Models", arXiv 2307.08621 (2023).

Per head h with the fixed decay gamma_h = 1 - 2^(-5 - h):
    S_t = gamma_h S_{t-1} + k_t^T v_t,    o_t = scale * q_t S_t
then a per-head norm and a SiLU (swish) output gate, as in the paper's multi-scale retention (its
GroupNorm is an RMSNorm per head here, and the xPos rotation is left out: the short convolution and the
decay already tell positions apart).
Layer: projections -> short conv -> fixed decay -> chunked retention -> gated RMSNorm -> o_proj.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from fla.modules import FusedRMSNormGated, ShortConvolution

_HAS_FLA_OPS = False
if torch.cuda.is_available():  # fla's Triton kernels exist only with CUDA; never imported on CPU
    try:
        from fla.ops.simple_gla import chunk_simple_gla as fla_chunk_simple_gla
        _HAS_FLA_OPS = True
    except Exception:  # the CPU stand-in of fla has no fla.ops
        _HAS_FLA_OPS = False


def chunk_retention(q, k, v, log_decay, chunk_size: int = 64, scale: Optional[float] = None,
                    initial_state: Optional[torch.Tensor] = None, output_final_state: bool = False):
    """Retention, chunked. q, k: [B, T, H, K]; v: [B, T, H, V]; log_decay: [H] (log gamma < 0);
    initial_state: [B, H, K, V] -> (o [B, T, H, V], final state [B, H, K, V] or None).

    Inside a chunk D_ij = gamma^(i - j) for j <= i: o = gamma^(i+1) q S_0 + (D * causal(q k^T)) v and
    S <- gamma^C S_0 + (gamma^(C-1-j) k)^T v. The decay matrix is the same for every chunk.
    """
    B, T, H, K = q.shape
    scale = K ** -0.5 if scale is None else scale
    out_dtype = q.dtype
    dtype = q.dtype if q.dtype in (torch.float32, torch.float64) else torch.float32
    q, k, v = (rearrange(x, "b t h d -> b h t d").to(dtype) for x in (q, k, v))
    C = chunk_size
    pad = (-T) % C
    if pad:  # padded steps come after the last token: they only touch the final state, corrected below
        q, k, v = (F.pad(x, (0, 0, 0, pad)) for x in (q, k, v))
    q, k, v = (rearrange(x, "b h (n c) d -> b h n c d", c=C) for x in (q * scale, k, v))
    b = log_decay.to(dtype)[:, None] * torch.arange(1, C + 1, dtype=dtype, device=q.device)  # [H, C]
    causal = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()
    decay = (b[:, :, None] - b[:, None, :]).masked_fill(~causal, float("-inf")).exp()  # [H, C, C]
    o_intra = ((q @ k.transpose(-1, -2)) * decay[:, None]) @ v  # all chunks at once
    q_decay, k_decay = b.exp()[:, :, None], (b[:, -1:] - b).exp()[:, :, None]  # [H, C, 1]

    S = q.new_zeros(B, H, K, v.shape[-1]) if initial_state is None else initial_state.to(dtype)
    o = []
    for n in range(q.shape[2]):
        o.append((q[:, :, n] * q_decay) @ S + o_intra[:, :, n])
        S = b[:, -1:].exp()[..., None] * S + (k[:, :, n] * k_decay).transpose(-1, -2) @ v[:, :, n]
    if pad:  # the padded steps decayed the state pad times too often
        S = S * (-pad * log_decay.to(dtype)).exp()[:, None, None]
    o = rearrange(torch.stack(o, dim=2), "b h n c d -> b (n c) h d")[:, :T]
    return o.to(out_dtype), (S if output_final_state else None)


class DeltaNet(nn.Module):
    def __init__(self, hidden_size: int = 1024, num_heads: int = 4, expand_k: float = 1.0, expand_v: float = 1.0,
                 use_short_conv: bool = True, conv_size: int = 4, conv_bias: bool = False, chunk_size: int = 64,
                 norm_eps: float = 1e-5, layer_idx: Optional[int] = None, **kwargs):
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
        # multi-scale fixed decays, gamma_h = 1 - 2^(-5 - h): a buffer, not learned
        self.register_buffer("log_decay", torch.log(1 - 2.0 ** (-5.0 - torch.arange(num_heads, dtype=torch.float32))))
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

        if attention_mask is not None:  # padded tokens never write into the state
            keep = attention_mask[:, -T:, None].to(k.dtype)
            k, v = k * keep[..., None], v * keep[..., None]

        initial_state = last_state["recurrent_state"] if last_state is not None else None
        if hidden_states.is_cuda and _HAS_FLA_OPS:
            o, recurrent_state = fla_chunk_simple_gla(q, k, v, g_gamma=self.log_decay, initial_state=initial_state,
                                                      output_final_state=use_cache)
        else:
            o, recurrent_state = chunk_retention(q, k, v, self.log_decay, self.chunk_size,
                                                 initial_state=initial_state, output_final_state=use_cache)

        if past_key_values is not None and use_cache:
            past_key_values.update(recurrent_state=recurrent_state,
                                   conv_state=(conv_q, conv_k, conv_v) if self.use_short_conv else None,
                                   layer_idx=self.layer_idx or 0, offset=T)
        g = rearrange(self.g_proj(hidden_states), "b t (h d) -> b t h d", h=self.num_heads)
        o = self.o_norm(o, g)  # per-head norm, then the swish output gate
        o = self.o_proj(rearrange(o, "b t h d -> b t (h d)"))
        return o, None, past_key_values
