"""Padding helpers with fla.layers.utils' signatures (originally flash-attn's bert_padding).

A batch [B, T, ...] with an attention mask is turned into one packed sequence of its valid
tokens ([total, ...] then unsqueezed to [1, total, ...]) plus `cu_seqlens`, and back.
Plain indexing is differentiable, so no custom autograd functions are needed.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange


def index_first_axis(x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """x[indices] along the first axis (x: [N, ...])."""
    assert x.ndim >= 2
    return x[indices]


def index_put_first_axis(x: torch.Tensor, indices: torch.Tensor, first_axis_dim: int) -> torch.Tensor:
    """A zero tensor [first_axis_dim, ...] with x written at `indices`."""
    assert indices.ndim == 1 and x.ndim >= 2
    return x.new_zeros(first_axis_dim, *x.shape[1:]).index_put((indices,), x)


def get_unpad_data(attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """attention_mask [B, T] (1 = valid) -> (indices of valid tokens in the flattened batch,
    cu_seqlens [B + 1] int32, longest sequence length)."""
    lens = attention_mask.sum(dim=-1, dtype=torch.int32)
    indices = torch.nonzero(attention_mask.flatten(), as_tuple=False).flatten()
    cu_seqlens = F.pad(lens.cumsum(dim=0, dtype=torch.int32), (1, 0))
    return indices, cu_seqlens, int(lens.max().item())


def pad_input(hidden_states: torch.Tensor, indices: torch.Tensor, batch_size: int, seq_len: int) -> torch.Tensor:
    """[total, ...] -> [batch_size, seq_len, ...] with zeros at the padded positions."""
    output = index_put_first_axis(hidden_states, indices, batch_size * seq_len)
    return rearrange(output, "(b s) ... -> b s ...", b=batch_size)


def unpad_input(q, states, attention_mask: torch.Tensor, q_len: int, keepdim: bool = False):
    """fla's unpad_input for prefill (q_len == key length) and one-token decoding (q_len == 1)."""
    indices_k, cu_seqlens_k, max_k = get_unpad_data(attention_mask)
    batch_size, seq_len = states[0].shape[:2]
    state = tuple(index_first_axis(rearrange(s, "b s ... -> (b s) ..."), indices_k) for s in states)
    single = isinstance(q, torch.Tensor)
    qs = (q,) if single else tuple(q)
    if q_len == seq_len:
        qs = tuple(index_first_axis(rearrange(x, "b s ... -> (b s) ..."), indices_k) for x in qs)
        cu_seqlens_q, max_q, indices_q = cu_seqlens_k, max_k, indices_k
    elif q_len == 1:
        max_q = 1
        cu_seqlens_q = torch.arange(batch_size + 1, dtype=torch.int32, device=qs[0].device)
        indices_q = cu_seqlens_q[:-1]
        qs = tuple(x.squeeze(1) for x in qs)
    else:
        raise NotImplementedError("only q_len == k_len (prefilling) or q_len == 1 (decoding) is supported")
    if keepdim:
        qs = tuple(x.unsqueeze(0) for x in qs)
        state = tuple(s.unsqueeze(0) for s in state)
    return (qs[0] if single else qs), state, indices_q, (cu_seqlens_q, cu_seqlens_k), (max_q, max_k)


__all__ = ["get_unpad_data", "index_first_axis", "index_put_first_axis", "pad_input", "unpad_input"]
