"""Shared helpers for the engineer tests: small layers with known behaviour."""
import torch
import torch.nn as nn

from tests.engineer.programs import layer_class, source  # noqa: F401  (re-exported)


class MixLayer(nn.Module):
    """A causal contract layer: a causal running mean of a projection; returns a fixed aux loss."""

    def __init__(self, hidden_size, num_heads, layer_idx=None, aux_value=None, **kwargs):
        super().__init__()
        self.layer_idx, self.num_heads, self.kwargs = layer_idx, num_heads, kwargs
        self.proj = nn.Linear(hidden_size, hidden_size)
        self.aux_value = aux_value

    def forward(self, hidden_states, attention_mask=None, **kwargs):
        h = self.proj(hidden_states)
        steps = torch.arange(1, h.shape[1] + 1, device=h.device, dtype=h.dtype)[None, :, None]
        out = h.cumsum(1) / steps
        aux = None if self.aux_value is None else h.new_tensor(self.aux_value)
        return out, aux, None


class LeakyLayer(MixLayer):
    """Adds the NEXT token's hidden state: a future leak."""

    def forward(self, hidden_states, attention_mask=None, **kwargs):
        out, aux, cache = super().forward(hidden_states)
        nxt = torch.cat([hidden_states[:, 1:], torch.zeros_like(hidden_states[:, :1])], 1)
        return out + 4.0 * nxt, aux, cache


class NaNLayer(MixLayer):
    def forward(self, hidden_states, attention_mask=None, **kwargs):
        out, aux, cache = super().forward(hidden_states)
        return out * torch.log(-hidden_states.abs() - 1.0), aux, cache  # log of a negative number


LEAKY_SOURCE = '''
import torch, torch.nn as nn
class DeltaNet(nn.Module):
    def __init__(self, hidden_size, num_heads, **kwargs):
        super().__init__()
        self.proj = nn.Linear(hidden_size, hidden_size)
    def forward(self, hidden_states, attention_mask=None, **kwargs):
        nxt = torch.cat([hidden_states[:, 1:], torch.zeros_like(hidden_states[:, :1])], 1)
        return self.proj(hidden_states) + nxt, None, None
'''

BROKEN_SOURCE = '''
import torch.nn as nn
class DeltaNet(nn.Module):
    def __init__(self, hidden_size, num_heads, **kwargs):
        super().__init__()
    def forward(self, hidden_states, attention_mask=None, **kwargs):
        raise RuntimeError("shape mismatch in the generated layer")
'''
