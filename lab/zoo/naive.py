"""Step-by-step recurrent references of the zoo's core ops: the trusted test oracles.

Each is a plain loop over time that writes the recurrence exactly as the papers state it, with no
chunking and no tricks. Layout as in fla and the zoo programs: q, k [B, T, H, K]; v [B, T, H, V];
per-step scalars (beta, scalar decays) [B, T, H]; per-key decays [B, T, H, K]; states [B, H, K, V].
Each returns (o [B, T, H, V], final state). Slow by design: use them on small tensors in tests.
"""
from __future__ import annotations

import torch


def _start(q: torch.Tensor, v: torch.Tensor, initial_state):
    B, _, H, K = q.shape
    return q.new_zeros(B, H, K, v.shape[-1]) if initial_state is None else initial_state.clone()


def _read(q_t: torch.Tensor, S: torch.Tensor) -> torch.Tensor:
    return torch.einsum("bhk,bhkv->bhv", q_t, S)


def _outer(k_t: torch.Tensor, v_t: torch.Tensor) -> torch.Tensor:
    return torch.einsum("bhk,bhv->bhkv", k_t, v_t)


def naive_softmax_attention(q, k, v, scale=None):
    """o_t = sum_{s<=t} softmax_s(scale q_t.k_s) v_s (Vaswani et al. 2017), one query at a time."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    o = []
    for t in range(q.shape[1]):
        logits = torch.einsum("bhk,bshk->bhs", q[:, t], k[:, :t + 1]) * scale
        o.append(torch.einsum("bhs,bshv->bhv", logits.softmax(-1), v[:, :t + 1]))
    return torch.stack(o, dim=1), None


def naive_linear_attn(q, k, v, eps=1e-6, initial_state=None):
    """Normalised linear attention (Katharopoulos et al. 2020), q and k already feature-mapped:
    S_t = S_{t-1} + k_t^T v_t, z_t = z_{t-1} + k_t, o_t = q_t S_t / (q_t.z_t + eps).
    The state is S with z appended as a last value column: [B, H, K, V + 1]."""
    S = _start(q, torch.cat([v, v[..., :1]], -1), initial_state)
    o = []
    for t in range(q.shape[1]):
        S = S + _outer(k[:, t], torch.cat([v[:, t], torch.ones_like(v[:, t, :, :1])], -1))
        num_den = _read(q[:, t], S)
        o.append(num_den[..., :-1] / (num_den[..., -1:] + eps))
    return torch.stack(o, dim=1), S


def naive_retention(q, k, v, log_decay, scale=None, initial_state=None):
    """Retention (Sun et al. 2023) with a fixed decay gamma_h = exp(log_decay[h]) per head:
    S_t = gamma S_{t-1} + k_t^T v_t, o_t = scale q_t S_t."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    gamma = log_decay.exp()[None, :, None, None]
    S = _start(q, v, initial_state)
    o = []
    for t in range(q.shape[1]):
        S = gamma * S + _outer(k[:, t], v[:, t])
        o.append(_read(q[:, t] * scale, S))
    return torch.stack(o, dim=1), S


def naive_gla(q, k, v, g, scale=None, initial_state=None):
    """Gated linear attention (Yang et al. 2023), g = log forget gate per key dim [B, T, H, K]:
    S_t = diag(exp(g_t)) S_{t-1} + k_t^T v_t, o_t = scale q_t S_t."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    S = _start(q, v, initial_state)
    o = []
    for t in range(q.shape[1]):
        S = g[:, t].exp()[..., None] * S + _outer(k[:, t], v[:, t])
        o.append(_read(q[:, t] * scale, S))
    return torch.stack(o, dim=1), S


def naive_delta_rule(q, k, v, beta, scale=None, initial_state=None):
    """The delta rule (Schlag et al. 2021): S_t = S_{t-1} + beta_t k_t^T (v_t - k_t S_{t-1}),
    o_t = scale q_t S_t."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    S = _start(q, v, initial_state)
    o = []
    for t in range(q.shape[1]):
        v_old = _read(k[:, t], S)
        S = S + _outer(k[:, t], beta[:, t, :, None] * (v[:, t] - v_old))
        o.append(_read(q[:, t] * scale, S))
    return torch.stack(o, dim=1), S


def naive_gated_delta_rule(q, k, v, g, beta, scale=None, initial_state=None):
    """The gated delta rule (Yang et al. 2024), g = log decay [B, T, H]:
    S_t = alpha_t (I - beta_t k_t^T k_t) S_{t-1} + beta_t k_t^T v_t, alpha_t = exp(g_t), o_t = scale q_t S_t."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    S = _start(q, v, initial_state)
    o = []
    for t in range(q.shape[1]):
        S = g[:, t].exp()[..., None, None] * S
        v_old = _read(k[:, t], S)
        S = S + _outer(k[:, t], beta[:, t, :, None] * (v[:, t] - v_old))
        o.append(_read(q[:, t] * scale, S))
    return torch.stack(o, dim=1), S


def naive_ssd(q, k, v, g, initial_state=None):
    """Mamba2's selective state space recurrence (Dao & Gu 2024) with C = q, B = k, x dt = v and
    g = dt A (a log decay, [B, T, H]): h_t = exp(g_t) h_{t-1} + B_t^T (x_t dt_t), y_t = C_t h_t."""
    S = _start(q, v, initial_state)
    o = []
    for t in range(q.shape[1]):
        S = g[:, t].exp()[..., None, None] * S + _outer(k[:, t], v[:, t])
        o.append(_read(q[:, t], S))
    return torch.stack(o, dim=1), S
