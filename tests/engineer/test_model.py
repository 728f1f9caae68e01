import pytest
import torch

from lab.training.data import IGNORE
from lab.training.model import CausalLM, lm_loss
from tests.engineer.helpers import MixLayer, layer_class


def test_shapes_tied_head_and_layer_kwargs():
    model = CausalLM(MixLayer, vocab_size=50, hidden_size=16, num_layers=3, num_heads=2,
                     layer_kwargs={"conv_size": 4})
    logits, aux = model(torch.randint(50, (2, 7)))
    assert logits.shape == (2, 7, 50)
    assert aux.shape == () and aux.item() == 0.0
    assert model.head.weight is model.embed.weight
    assert [b.mixer.layer_idx for b in model.blocks] == [0, 1, 2]
    assert all(b.mixer.num_heads == 2 and b.mixer.kwargs == {"conv_size": 4} for b in model.blocks)
    n_layer = sum(p.numel() for p in model.blocks[0].parameters())
    assert model.num_params() == 50 * 16 + 3 * n_layer + 16  # embedding counted once + blocks + final norm


def test_aux_losses_are_summed_and_added_to_the_loss():
    torch.manual_seed(0)
    model = CausalLM(MixLayer, 30, 8, 2, 1, layer_kwargs={"aux_value": 0.25})
    x, y = torch.randint(30, (3, 5)), torch.randint(30, (3, 5))
    _, aux = model(x)
    assert aux.item() == pytest.approx(0.5)
    loss, aux2 = lm_loss(model, x, y)
    assert aux2.item() == pytest.approx(0.5)
    logits, _ = model(x)
    expected = torch.nn.functional.cross_entropy(logits.reshape(-1, 30), y.reshape(-1))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_loss_only_on_labelled_positions():
    torch.manual_seed(0)
    model = CausalLM(MixLayer, 30, 8, 1, 1)
    x = torch.randint(30, (2, 6))
    y = torch.full((2, 6), IGNORE)
    y[0, 2], y[1, 5] = 7, 9
    loss, _ = lm_loss(model, x, y)
    logp = torch.log_softmax(model(x)[0], -1)
    assert loss.item() == pytest.approx(-(logp[0, 2, 7] + logp[1, 5, 9]).item() / 2, rel=1e-5)


def test_the_test_programs_are_causal_and_trainable():
    for name in ("deltanet", "linear", "softmax"):
        torch.manual_seed(0)
        model = CausalLM(layer_class(name), 40, 16, 2, 2, {"use_short_conv": True, "conv_size": 4})
        x = torch.randint(40, (2, 70))  # crosses a 64-token chunk boundary
        x2 = x.clone()
        x2[:, 40:] = (x2[:, 40:] + 1) % 40
        a, b = model(x)[0], model(x2)[0]
        assert torch.allclose(a[:, :40], b[:, :40], atol=1e-5), name
        assert not torch.allclose(a[:, 40:], b[:, 40:]), name


def test_contract_violation_is_explained():
    class Bad(MixLayer):
        def forward(self, hidden_states, attention_mask=None, **kwargs):
            return hidden_states

    with pytest.raises(TypeError, match="layer contract"):
        CausalLM(Bad, 10, 8, 1, 1)(torch.randint(10, (1, 4)))
