"""A small causal language model around any token-mixing layer that honours the layer contract:

    class DeltaNet(nn.Module):
        def __init__(self, ..., hidden_size, num_heads, ..., **kwargs)
        def forward(self, hidden_states, attention_mask=None, ...) -> (output, aux_loss_or_None, cache)

The model adds no positional embedding: a mixer that needs positions (softmax attention)
brings its own (e.g. RoPE or a short convolution), exactly as in fla's model classes.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from lab.training.data import IGNORE


class MLP(nn.Module):
    def __init__(self, d: int, ratio: int = 4):
        super().__init__()
        self.up, self.down = nn.Linear(d, ratio * d), nn.Linear(ratio * d, d)

    def forward(self, x):
        return self.down(F.gelu(self.up(x)))


class Block(nn.Module):
    """Pre-norm: x + mixer(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, mixer: nn.Module, d: int):
        super().__init__()
        self.mixer_norm, self.mlp_norm = nn.RMSNorm(d), nn.RMSNorm(d)
        self.mixer, self.mlp = mixer, MLP(d)

    def forward(self, x):
        out = self.mixer(self.mixer_norm(x), attention_mask=None)
        if not isinstance(out, (tuple, list)) or len(out) < 2:
            raise TypeError("layer contract: forward must return (output, aux_loss_or_None, cache), "
                            f"got {type(out).__name__}")
        h, aux = out[0], out[1]
        if h.shape != x.shape:
            raise ValueError(f"layer contract: output shape {tuple(h.shape)} != input shape {tuple(x.shape)}")
        x = x + h
        return x + self.mlp(self.mlp_norm(x)), aux


class CausalLM(nn.Module):
    def __init__(self, layer_cls: type[nn.Module], vocab_size: int, hidden_size: int, num_layers: int,
                 num_heads: int, layer_kwargs: dict | None = None, max_len: int = 2048):
        super().__init__()
        self.vocab_size, self.max_len = vocab_size, max_len
        self.embed = nn.Embedding(vocab_size, hidden_size)
        self.blocks = nn.ModuleList([
            Block(layer_cls(hidden_size=hidden_size, num_heads=num_heads, layer_idx=i, **(layer_kwargs or {})),
                  hidden_size)
            for i in range(num_layers)])
        self.norm = nn.RMSNorm(hidden_size)
        self.head = nn.Linear(hidden_size, vocab_size, bias=False)
        self.head.weight = self.embed.weight  # tied
        # Tied scales as in Vaswani et al.: entries N(0, 1/d), multiplied by sqrt(d) on input, so
        # tokens enter the residual stream at unit scale and initial logits are O(1). (Small
        # GPT-2-style embeddings drown token identity and MQAR does not learn: measured.)
        nn.init.normal_(self.embed.weight, std=hidden_size ** -0.5)
        self.embed_scale = hidden_size ** 0.5

    def hidden(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """input ids [B, T] -> (final-normed hidden states [B, T, D], sum of the layers' aux losses)."""
        x = self.embed(input_ids) * self.embed_scale
        aux_total = x.new_zeros((), dtype=torch.float32)
        for block in self.blocks:
            x, aux = block(x)
            if aux is not None:
                aux_total = aux_total + aux.float().sum()
        return self.norm(x), aux_total

    def forward(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """input ids [B, T] -> (logits [B, T, V], sum of the layers' aux losses, a scalar)."""
        h, aux = self.hidden(input_ids)
        return self.head(h), aux

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())  # the tied head is counted once


def lm_loss(model: CausalLM, input_ids: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean next-token cross-entropy over labelled positions, aux loss). Labels are already
    shifted; the head runs only where there is a label (MQAR labels 1 position in 4)."""
    h, aux = model.hidden(input_ids)
    labelled = labels != IGNORE
    if not bool(labelled.all()):
        h, labels = h[labelled], labels[labelled]
    logits = model.head(h).float()
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1)), aux
