"""The zoo programs as the sandbox runs them: exec'd from source with the fla stand-in on the path.
Contract (signature, return triple, shapes), causality, cache continuation, padding, a few training
steps, and what a program may import."""
from __future__ import annotations

import ast
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from lab.zoo import ZOO, zoo_names, zoo_source

D64 = torch.float64
NAMES = zoo_names()


def _layer(exec_program, name, **kwargs):
    torch.manual_seed(0)
    module = exec_program(zoo_source(name), name)
    return module.DeltaNet(hidden_size=32, num_heads=2, layer_idx=0, some_unknown_option=1, **kwargs)


def test_registry_lists_the_seven_members_with_their_files():
    assert NAMES == ["softmax", "linear", "retnet", "gla", "deltanet", "gated_deltanet", "mamba2"]
    for name, member in ZOO.items():
        assert member.path.is_file() and member.name == name
        assert member.quadratic == (name == "softmax")
        assert member.mechanisms and member.citation and member.summary
        assert zoo_source(name) == member.path.read_text()
    with pytest.raises(KeyError):
        zoo_source("nope")


ALLOWED_IMPORTS = {"__future__", "math", "typing", "torch", "torch.nn", "torch.nn.functional", "einops",
                   "fla.modules", "fla.modules.l2norm"}


@pytest.mark.parametrize("name", NAMES)
def test_program_is_self_contained_and_guards_fla_kernels(name):
    tree = ast.parse(zoo_source(name))
    assert ast.get_docstring(tree) and "20" in ast.get_docstring(tree)  # cites a paper (year)
    top = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    assert {"DeltaNet", ZOO[name].core_op} <= top
    for node in tree.body:  # module level: only the allowed imports
        if isinstance(node, ast.Import):
            assert {a.name for a in node.names} <= ALLOWED_IMPORTS, ast.dump(node)
        elif isinstance(node, ast.ImportFrom):
            assert node.module in ALLOWED_IMPORTS, node.module
        elif isinstance(node, ast.If):  # the only place fla.ops may appear: under torch.cuda.is_available()
            assert "torch.cuda.is_available" in ast.unparse(node.test)
            assert all(n.module.startswith("fla.ops.") for n in ast.walk(node) if isinstance(n, ast.ImportFrom))
    nested = [n for f in tree.body if isinstance(f, (ast.FunctionDef, ast.ClassDef))
              for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert not nested


@pytest.mark.parametrize("name", NAMES)
def test_contract_shapes(exec_program, name):
    layer = _layer(exec_program, name)
    for Bsz in (1, 3):
        for T in (1, 37, 64):
            x = torch.randn(Bsz, T, 32)
            out = layer(x)
            assert isinstance(out, tuple) and len(out) == 3
            o, aux, cache = out
            assert o.shape == x.shape and aux is None and cache is None
            assert torch.isfinite(o).all()


@pytest.mark.parametrize("use_short_conv", [True, False])
@pytest.mark.parametrize("name", NAMES)
def test_causal(exec_program, name, use_short_conv):
    kwargs = {} if name == "softmax" else {"chunk_size": 16}
    layer = _layer(exec_program, name, use_short_conv=use_short_conv, **kwargs).double()
    x = torch.randn(2, 37, 32, dtype=D64)
    for t in (0, 15, 16, 30):  # inside and at the edges of chunks
        x2 = x.clone()
        x2[:, t + 1:] += torch.randn_like(x2[:, t + 1:])
        o, o2 = layer(x)[0], layer(x2)[0]
        torch.testing.assert_close(o[:, :t + 1], o2[:, :t + 1], rtol=0, atol=1e-5)
        assert (o[:, t + 1:] - o2[:, t + 1:]).abs().max() > 1e-4  # the future does reach the output


@pytest.mark.parametrize("name", NAMES)
def test_cache_continues_the_sequence(exec_program, name):
    """Running 37 tokens at once equals 20 tokens, then 1, then 16, through the cache."""
    from fla.models.utils import Cache
    kwargs = {} if name == "softmax" else {"chunk_size": 16}
    layer = _layer(exec_program, name, **kwargs).double()
    x = torch.randn(2, 37, 32, dtype=D64)
    full = layer(x)[0]
    cache = Cache()
    parts = [layer(x[:, a:b], past_key_values=cache, use_cache=True) for a, b in ((0, 20), (20, 21), (21, 37))]
    assert all(p[2] is cache for p in parts) and len(cache) == 1
    torch.testing.assert_close(torch.cat([p[0] for p in parts], 1), full, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_left_padding_does_not_change_real_tokens(exec_program, name):
    layer = _layer(exec_program, name).double()
    x = torch.randn(1, 20, 32, dtype=D64)
    padded = torch.cat([torch.randn(1, 5, 32, dtype=D64), x], 1)
    mask = torch.cat([torch.zeros(1, 5, dtype=torch.long), torch.ones(1, 20, dtype=torch.long)], 1)
    torch.testing.assert_close(layer(padded, attention_mask=mask)[0][:, 5:], layer(x)[0], rtol=1e-9, atol=1e-9)


class TinyLM(nn.Module):
    def __init__(self, layer_cls, vocab=48, d=32, layers=2, heads=2):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.norms = nn.ModuleList(nn.RMSNorm(d) for _ in range(layers))
        self.mixers = nn.ModuleList(layer_cls(hidden_size=d, num_heads=heads, layer_idx=i) for i in range(layers))
        self.head = nn.Linear(d, vocab)

    def forward(self, idx):
        h = self.emb(idx)
        for norm, mixer in zip(self.norms, self.mixers):
            h = h + mixer(norm(h))[0]
        return self.head(h)


@pytest.mark.parametrize("name", NAMES)
def test_trains_a_few_steps(exec_program, name):
    torch.manual_seed(0)
    model = TinyLM(exec_program(zoo_source(name), name).DeltaNet)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    x = torch.randint(48, (4, 40))
    losses = []
    for _ in range(8):  # memorise one batch: the loss must fall
        loss = F.cross_entropy(model(x[:, :-1]).flatten(0, 1), x[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0] - 0.1, losses
