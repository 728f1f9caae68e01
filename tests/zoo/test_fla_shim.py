"""The pure-PyTorch fla stand-in: names, call signatures and numerics against manual formulas."""
from __future__ import annotations

import importlib

import pytest
import torch
import torch.nn.functional as F

D64 = torch.float64


def test_shim_provides_the_names_programs_import(shim):
    import fla
    from fla.layers.utils import get_unpad_data, index_first_axis, pad_input  # noqa: F401
    from fla.models.utils import Cache  # noqa: F401
    from fla.modules import FusedRMSNormGated, RMSNorm, ShortConvolution  # noqa: F401
    from fla.modules.l2norm import l2norm  # noqa: F401

    assert fla.IS_ARCHLAB_SHIM
    assert fla.__file__.startswith(str(shim))
    with pytest.raises(ImportError):  # no kernels: a program must guard `fla.ops` itself
        importlib.import_module("fla.ops")


def _manual_conv(x, weight, bias=None):  # x [B, T, D], weight [D, 1, W]
    y = F.conv1d(x.transpose(1, 2), weight, bias, padding=weight.shape[-1] - 1, groups=x.shape[-1])
    return y[..., :x.shape[1]].transpose(1, 2)


@pytest.mark.parametrize("activation,bias", [("silu", False), (None, True)])
def test_short_conv_matches_manual_depthwise_conv(shim, activation, bias):
    from fla.modules import ShortConvolution
    torch.manual_seed(0)
    conv = ShortConvolution(6, 4, bias=bias, activation=activation).double()
    x = torch.randn(3, 11, 6, dtype=D64)
    y, state = conv(x)
    ref = _manual_conv(x, conv.weight, conv.bias)
    ref = F.silu(ref) if activation else ref
    assert state is None
    torch.testing.assert_close(y, ref)
    assert y.is_contiguous()   # not a transposed view: every op after it runs faster on the dense layout


def test_short_conv_is_causal(shim):
    from fla.modules import ShortConvolution
    torch.manual_seed(0)
    conv = ShortConvolution(5, 4).double()
    x = torch.randn(2, 20, 5, dtype=D64)
    x2 = x.clone()
    x2[:, 12:] += torch.randn_like(x2[:, 12:])
    y, _ = conv(x)
    y2, _ = conv(x2)
    torch.testing.assert_close(y[:, :12], y2[:, :12], rtol=0, atol=1e-12)
    assert (y[:, 12:] - y2[:, 12:]).abs().max() > 1e-3


def test_short_conv_cache_continues_a_sequence_and_holds_the_last_inputs(shim):
    from fla.modules import ShortConvolution
    torch.manual_seed(0)
    conv = ShortConvolution(5, 4).double()
    x = torch.randn(2, 13, 5, dtype=D64)
    y_full, state_full = conv(x, output_final_state=True)
    torch.testing.assert_close(state_full, x[:, -4:].transpose(1, 2))  # [N, D, W]: the last W inputs
    y1, state = conv(x[:, :7], output_final_state=True)
    y2, state2 = conv(x[:, 7:8], cache=state, output_final_state=True)  # one decoding step
    y3, _ = conv(x[:, 8:], cache=state2, output_final_state=True)
    torch.testing.assert_close(torch.cat([y1, y2, y3], 1), y_full)
    _, short_state = conv(x[:, :2], output_final_state=True)  # fewer inputs than W: zero-padded state
    assert torch.equal(short_state[..., :2], torch.zeros(2, 5, 2, dtype=D64))


def test_short_conv_packed_sequences_and_mask(shim):
    from fla.modules import ShortConvolution
    torch.manual_seed(0)
    conv = ShortConvolution(4, 3).double()
    a, b = torch.randn(1, 5, 4, dtype=D64), torch.randn(1, 8, 4, dtype=D64)
    packed, states = conv(torch.cat([a, b], 1), cu_seqlens=torch.tensor([0, 5, 13]), output_final_state=True)
    torch.testing.assert_close(packed, torch.cat([conv(a)[0], conv(b)[0]], 1))  # no leak across the boundary
    assert states.shape == (2, 4, 3)
    x = torch.randn(2, 6, 4, dtype=D64)
    mask = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    y, _ = conv(x, mask=mask)
    torch.testing.assert_close(y, conv(x * mask[..., None])[0])


def test_l2norm_matches_formula_and_is_finite_at_zero(shim):
    from fla.modules.l2norm import l2norm
    x = torch.randn(3, 7, 16, dtype=D64)
    torch.testing.assert_close(l2norm(x), x / torch.sqrt((x * x).sum(-1, keepdim=True) + 1e-6))
    z = torch.zeros(2, 8, requires_grad=True)
    l2norm(z).sum().backward()
    assert torch.isfinite(z.grad).all()
    assert l2norm(torch.randn(4, 8).bfloat16()).dtype == torch.bfloat16


def test_rmsnorm_matches_formula_with_residual_and_prenorm(shim):
    from fla.modules import RMSNorm
    torch.manual_seed(0)
    norm = RMSNorm(8, eps=1e-5).double()
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    x, r = torch.randn(2, 5, 8, dtype=D64), torch.randn(2, 5, 8, dtype=D64)
    manual = lambda t: t / torch.sqrt(t.pow(2).mean(-1, keepdim=True) + 1e-5) * norm.weight  # noqa: E731
    torch.testing.assert_close(norm(x), manual(x))
    y, res = norm(x, residual=r, prenorm=True)
    torch.testing.assert_close(y, manual(x + r))
    torch.testing.assert_close(res, x + r)


@pytest.mark.parametrize("activation", ["swish", "sigmoid"])
def test_fused_rmsnorm_gated_matches_formula(shim, activation):
    from fla.modules import FusedRMSNormGated
    torch.manual_seed(0)
    norm = FusedRMSNormGated(8, eps=1e-5, activation=activation).double()
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    x, g = torch.randn(2, 5, 3, 8, dtype=D64), torch.randn(2, 5, 3, 8, dtype=D64)
    gate = F.silu(g) if activation == "swish" else torch.sigmoid(g)
    ref = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * norm.weight * gate
    torch.testing.assert_close(norm(x, g), ref)


def test_unpad_then_pad_round_trip(shim):
    from einops import rearrange
    from fla.layers.utils import get_unpad_data, index_first_axis, pad_input
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1]])
    x = torch.randn(3, 5, 4, requires_grad=True)
    indices, cu_seqlens, max_len = get_unpad_data(mask)
    assert cu_seqlens.tolist() == [0, 3, 8, 9] and cu_seqlens.dtype == torch.int32 and max_len == 5
    packed = index_first_axis(rearrange(x, "b s d -> (b s) d"), indices).unsqueeze(0)
    assert packed.shape == (1, 9, 4)
    back = pad_input(packed.squeeze(0), indices, 3, 5)
    torch.testing.assert_close(back, x * mask[..., None])
    back.sum().backward()
    torch.testing.assert_close(x.grad, mask[..., None].float().expand(3, 5, 4))


def test_cache_update_and_lookup(shim):
    from fla.models.utils import Cache
    cache = Cache()
    assert len(cache) == 0
    cache.update(recurrent_state=torch.ones(1), conv_state=(1, 2, 3), layer_idx=0, offset=5)
    cache.update(attn_state=(torch.zeros(1, 2, 3), torch.zeros(1, 2, 3)), layer_idx=1, offset=5)
    cache.update(attn_state=(torch.zeros(1, 4, 3), torch.zeros(1, 4, 3)), layer_idx=1, offset=4)
    assert len(cache) == 2 and cache[0]["conv_state"] == (1, 2, 3)
    assert cache[1]["attn_state"][0].shape == (1, 6, 3)  # keys grow along time
    assert cache.get_seq_length() == 5
