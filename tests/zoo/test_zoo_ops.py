"""Each zoo core op (chunked) against its step-by-step reference in naive.py, in float64:
forward output, final state, and the gradients with respect to every input."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lab.zoo import ZOO, naive, zoo_source

D64 = torch.float64
B, H, K, V = 2, 2, 8, 6


def _inputs(T: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=D64)  # noqa: E731
    return dict(q=r(B, T, H, K), k=F.normalize(r(B, T, H, K), dim=-1), v=r(B, T, H, V),
                beta=torch.rand(B, T, H, generator=g, dtype=D64),
                g_scalar=-2 * torch.rand(B, T, H, generator=g, dtype=D64),
                g_vector=F.logsigmoid(3 * r(B, T, H, K)) / 4,
                state=r(B, H, K, V), state_plus=r(B, H, K, V + 1).abs())


# name -> (reference, which inputs the op takes after q, k, v, which initial state)
CASES = {
    "deltanet": (naive.naive_delta_rule, ("beta",), "state"),
    "gated_deltanet": (naive.naive_gated_delta_rule, ("g_scalar", "beta"), "state"),
    "gla": (naive.naive_gla, ("g_vector",), "state"),
    "mamba2": (naive.naive_ssd, ("g_scalar",), "state"),
    "retnet": (naive.naive_retention, ("log_decay",), "state"),
    "linear": (naive.naive_linear_attn, (), "state_plus"),
}


def _op(exec_program, name):
    return getattr(exec_program(zoo_source(name), name), ZOO[name].core_op)


def _run_both(op, ref, extra_names, state_name, T, chunk_size, **op_kwargs):
    x = _inputs(T)
    x["log_decay"] = torch.log(1 - 2.0 ** (-5.0 - torch.arange(H, dtype=D64)))
    if op_kwargs.pop("positive_qk", False):  # linear attention takes feature-mapped (positive) q, k
        x["q"], x["k"] = F.elu(x["q"]) + 1, F.elu(x["k"]) + 1
    names = ["q", "k", "v", *extra_names, state_name]
    leaves = {n: x[n].clone().requires_grad_() for n in names}
    args = [leaves[n] for n in names[:-1]]
    o1, s1 = op(*args, chunk_size=chunk_size, initial_state=leaves[state_name], output_final_state=True, **op_kwargs)
    grads1 = torch.autograd.grad((o1 * torch.cos(o1)).sum() + (s1 ** 2).sum(), list(leaves.values()))
    o2, s2 = ref(*args, initial_state=leaves[state_name])
    grads2 = torch.autograd.grad((o2 * torch.cos(o2)).sum() + (s2 ** 2).sum(), list(leaves.values()))
    return (o1, s1, grads1), (o2, s2, grads2), names


@pytest.mark.parametrize("T,chunk_size", [(37, 16), (64, 16), (1, 16), (20, 64)])
@pytest.mark.parametrize("name", sorted(CASES))
def test_chunked_op_matches_recurrence_forward_and_backward(exec_program, name, T, chunk_size):
    ref, extra, state_name = CASES[name]
    (o1, s1, g1), (o2, s2, g2), names = _run_both(_op(exec_program, name), ref, extra, state_name, T, chunk_size,
                                                  positive_qk=(name == "linear"))
    assert o1.shape == (B, T, H, V)
    torch.testing.assert_close(o1, o2, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(s1, s2, rtol=1e-9, atol=1e-9)
    for n, a, b in zip(names, g1, g2):  # retnet's log_decay is a buffer in the layer; checked all the same
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-8, msg=f"gradient of {n} differs")


@pytest.mark.parametrize("sub_chunk_size", [4, 8, 16])
def test_gla_two_level_scores(exec_program, sub_chunk_size):
    """max_log_decay=0 forces the bounded two-level intra-chunk scores (used once gates close)."""
    (o1, s1, g1), (o2, s2, g2), _ = _run_both(_op(exec_program, "gla"), naive.naive_gla, ("g_vector",), "state",
                                              37, 16, sub_chunk_size=sub_chunk_size, max_log_decay=0.0)
    torch.testing.assert_close(o1, o2, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(s1, s2, rtol=1e-9, atol=1e-9)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-8)


def test_gla_stays_finite_with_closed_gates_in_float32(exec_program):
    """exp(-cumulative log gate) overflows float32 after ~88; the two-level chunking never forms it."""
    chunk_gla = _op(exec_program, "gla")
    x = _inputs(64)
    q, k, v = (x[n].float().requires_grad_() for n in ("q", "k", "v"))
    g = torch.full((B, 64, H, K), -8.0)  # 64 steps of -8: cumulative -512 inside one chunk
    o, _ = chunk_gla(q, k, v, g, chunk_size=64)
    o.sum().backward()
    assert torch.isfinite(o).all() and all(torch.isfinite(t.grad).all() for t in (q, k, v))
    o_ref, _ = naive.naive_gla(q.double(), k.double(), v.double(), g.double())
    torch.testing.assert_close(o.double(), o_ref, rtol=1e-4, atol=1e-4)


def test_gated_ops_stay_finite_with_strong_decay_in_float32(exec_program):
    x = _inputs(64)
    q, k, v, beta = (x[n].float() for n in ("q", "k", "v", "beta"))
    g = torch.full((B, 64, H), -30.0)
    o, _ = _op(exec_program, "gated_deltanet")(q, k, v, g, beta, chunk_size=64)
    o2, _ = _op(exec_program, "mamba2")(q, k, v, g, chunk_size=64)
    assert torch.isfinite(o).all() and torch.isfinite(o2).all()


def test_softmax_attention_matches_reference(exec_program):
    op = _op(exec_program, "softmax")
    x = _inputs(37)
    q, k, v = (x[n].clone().requires_grad_() for n in ("q", "k", "v"))
    o1 = op(q, k, v)
    o2, _ = naive.naive_softmax_attention(q, k, v)
    torch.testing.assert_close(o1, o2)
    g1 = torch.autograd.grad(o1.pow(2).sum(), (q, k, v))
    g2 = torch.autograd.grad(o2.pow(2).sum(), (q, k, v))
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b)
    # queries that continue cached keys: the last 5 queries over all 37 keys
    torch.testing.assert_close(op(q[:, -5:], k, v), o2[:, -5:])


def test_chunk_size_does_not_change_the_result(exec_program):
    op = _op(exec_program, "deltanet")
    x = _inputs(100)
    outs = [op(x["q"], x["k"], x["v"], x["beta"], chunk_size=c)[0] for c in (8, 32, 64, 128)]
    for o in outs[1:]:
        torch.testing.assert_close(o, outs[0], rtol=1e-10, atol=1e-10)
    assert math.isfinite(outs[0].sum().item())
