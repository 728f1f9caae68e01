"""DeltaNet: linear attention with the delta rule -- the archlab baseline.

Schlag, Irie & Schmidhuber, "Linear Transformers Are Secretly Fast Weight Programmers", ICML 2021;
Yang, Wang, Zhang, Shen & Kim, "Parallelizing Linear Transformers with the Delta Rule over Sequence
Length", NeurIPS 2024 (the chunked WY/UT form used here).

Per head, a fast-weight state S [K, V] is corrected towards each new key/value pair:
    S_t = S_{t-1} + beta_t k_t^T (v_t - k_t S_{t-1}),    o_t = scale * q_t S_t
with q, k = L2-normalised SiLU features after a short causal convolution and beta_t = sigmoid(w_b x_t).
Layer: projections -> short conv -> SiLU + L2 norm of q, k -> sigmoid beta -> chunked delta rule
-> per-head RMSNorm (or gated RMSNorm) -> o_proj.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from fla.modules import FusedRMSNormGated, RMSNorm, ShortConvolution
from fla.modules.l2norm import l2norm

_HAS_FLA_OPS = False
if torch.cuda.is_available():  # fla's Triton kernels exist only with CUDA; never imported on CPU
    try:
        from fla.ops.delta_rule import chunk_delta_rule as fla_chunk_delta_rule
        _HAS_FLA_OPS = True
    except Exception:  # the CPU stand-in of fla has no fla.ops
        _HAS_FLA_OPS = False


def chunk_delta_rule(q, k, v, beta, chunk_size: int = 64, scale: Optional[float] = None,
                     initial_state: Optional[torch.Tensor] = None, output_final_state: bool = False):
    """The delta rule, chunked. q, k: [B, T, H, K]; v: [B, T, H, V]; beta: [B, T, H];
    initial_state: [B, H, K, V] -> (o [B, T, H, V], final state [B, H, K, V] or None).

    Within a chunk the C sequential corrections collapse into one triangular solve (WY form):
    with A_ij = beta_i k_i.k_j (j < i) and T = (I + A)^-1, the corrected values are
    u = T (beta v) - T (beta k) S_0, so the chunk's output is q S_0 + causal(q k^T) u and the state
    becomes S_0 + k^T u. Only the loop over chunks is sequential.
    """
    B, T, H, K = q.shape
    scale = K ** -0.5 if scale is None else scale
    out_dtype = q.dtype
    dtype = q.dtype if q.dtype in (torch.float32, torch.float64) else torch.float32
    q, k, v, beta = (rearrange(x, "b t h ... -> b h t ...").to(dtype) for x in (q, k, v, beta))
    C = chunk_size
    pad = (-T) % C
    if pad:  # padded steps have k = 0 and beta = 0: they leave the state unchanged
        q, k, v = (F.pad(x, (0, 0, 0, pad)) for x in (q, k, v))
        beta = F.pad(beta, (0, pad))
    q, k, v = (rearrange(x, "b h (n c) d -> b h n c d", c=C) for x in (q * scale, k, v))
    beta = rearrange(beta, "b h (n c) -> b h n c 1", c=C)
    k_beta, v_beta = k * beta, v * beta

    eye = torch.eye(C, dtype=dtype, device=q.device)
    causal = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()
    A = (k_beta @ k.transpose(-1, -2)).tril(-1)  # A_ij = beta_i k_i.k_j for j < i
    T_inv = torch.linalg.solve_triangular(eye + A, eye.expand_as(A), upper=False)
    w, u = T_inv @ k_beta, T_inv @ v_beta

    S = q.new_zeros(B, H, K, v.shape[-1]) if initial_state is None else initial_state.to(dtype)
    o = []
    for n in range(q.shape[2]):
        q_n, k_n = q[:, :, n], k[:, :, n]
        u_n = u[:, :, n] - w[:, :, n] @ S  # values corrected against the state entering the chunk
        attn = (q_n @ k_n.transpose(-1, -2)).masked_fill(~causal, 0)
        o.append(q_n @ S + attn @ u_n)
        S = S + k_n.transpose(-1, -2) @ u_n
    o = rearrange(torch.stack(o, dim=2), "b h n c d -> b (n c) h d")[:, :T]
    return o.to(out_dtype), (S if output_final_state else None)


class DeltaNet(nn.Module):
    def __init__(self, hidden_size: int = 1024, num_heads: int = 4, expand_k: float = 1.0, expand_v: float = 1.0,
                 use_short_conv: bool = True, conv_size: int = 4, conv_bias: bool = False, use_gate: bool = False,
                 chunk_size: int = 64, norm_eps: float = 1e-5, layer_idx: Optional[int] = None, **kwargs):
        super().__init__()
        self.hidden_size, self.num_heads, self.layer_idx = hidden_size, num_heads, layer_idx
        self.key_dim, self.value_dim = int(hidden_size * expand_k), int(hidden_size * expand_v)
        if self.key_dim % num_heads or self.value_dim % num_heads:
            raise ValueError(f"key/value dims {self.key_dim}/{self.value_dim} must divide num_heads={num_heads}")
        self.head_k_dim, self.head_v_dim = self.key_dim // num_heads, self.value_dim // num_heads
        self.use_short_conv, self.use_gate, self.chunk_size = use_short_conv, use_gate, chunk_size

        self.q_proj = nn.Linear(hidden_size, self.key_dim, bias=False)
        self.k_proj = nn.Linear(hidden_size, self.key_dim, bias=False)
        self.v_proj = nn.Linear(hidden_size, self.value_dim, bias=False)
        self.b_proj = nn.Linear(hidden_size, num_heads, bias=False)
        if use_short_conv:
            self.q_conv1d = ShortConvolution(self.key_dim, conv_size, bias=conv_bias, activation="silu")
            self.k_conv1d = ShortConvolution(self.key_dim, conv_size, bias=conv_bias, activation="silu")
            self.v_conv1d = ShortConvolution(self.value_dim, conv_size, bias=conv_bias, activation="silu")
        if use_gate:
            self.g_proj = nn.Linear(hidden_size, self.value_dim, bias=False)
            self.o_norm = FusedRMSNormGated(self.head_v_dim, eps=norm_eps)
        else:
            self.o_norm = RMSNorm(self.head_v_dim, eps=norm_eps)
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
        else:
            q, k, v = F.silu(q), F.silu(k), F.silu(v)
        q = rearrange(q, "b t (h d) -> b t h d", h=self.num_heads)
        k = rearrange(k, "b t (h d) -> b t h d", h=self.num_heads)
        v = rearrange(v, "b t (h d) -> b t h d", h=self.num_heads)

        # feature map: unit-norm queries and keys keep the delta rule's correction stable
        q, k = l2norm(q), l2norm(k)
        beta = self.b_proj(hidden_states).sigmoid()  # [B, T, H] learning rate of each write
        if attention_mask is not None:  # padded tokens never write into the state
            keep = attention_mask[:, -T:, None].to(k.dtype)
            k, v = k * keep[..., None], v * keep[..., None]

        initial_state = last_state["recurrent_state"] if last_state is not None else None
        if hidden_states.is_cuda and _HAS_FLA_OPS:
            o, recurrent_state = fla_chunk_delta_rule(q, k, v, beta, initial_state=initial_state,
                                                      output_final_state=use_cache)
        else:
            o, recurrent_state = chunk_delta_rule(q, k, v, beta, self.chunk_size, initial_state=initial_state,
                                                  output_final_state=use_cache)

        if past_key_values is not None and use_cache:
            past_key_values.update(recurrent_state=recurrent_state,
                                   conv_state=(conv_q, conv_k, conv_v) if self.use_short_conv else None,
                                   layer_idx=self.layer_idx or 0, offset=T)
        if self.use_gate:
            g = rearrange(self.g_proj(hidden_states), "b t (h d) -> b t h d", h=self.num_heads)
            o = self.o_norm(o, g)
        else:
            o = self.o_norm(o)
        o = self.o_proj(rearrange(o, "b t h d -> b t (h d)"))
        return o, None, past_key_values
