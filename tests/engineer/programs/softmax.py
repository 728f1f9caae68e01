"""Test-local causal softmax attention with short conv (which also gives it local position)."""
import torch
import torch.nn as nn
import torch.nn.functional as F


class ShortConv(nn.Module):
    """Causal depthwise convolution + SiLU, written as shifted sums (faster than conv1d on CPU)."""

    def __init__(self, d, k):
        super().__init__()
        self.k = k
        self.weight = nn.Parameter(torch.randn(k, d) / k ** 0.5)
        self.bias = nn.Parameter(torch.zeros(d))

    def forward(self, x):  # [B, T, D]
        T = x.shape[1]
        xp = F.pad(x, (0, 0, self.k - 1, 0))
        return F.silu(sum(xp[:, j:j + T] * self.weight[j] for j in range(self.k)) + self.bias)


class DeltaNet(nn.Module):
    def __init__(self, hidden_size=64, num_heads=1, use_short_conv=True, conv_size=4, layer_idx=None, **kwargs):
        super().__init__()
        self.h, self.dh = num_heads, hidden_size // num_heads
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size, bias=False)
        self.o = nn.Linear(hidden_size, hidden_size, bias=False)
        self.conv = ShortConv(3 * hidden_size, conv_size) if use_short_conv else None

    def forward(self, hidden_states, attention_mask=None, **kwargs):
        x = hidden_states
        B, T, D = x.shape
        qkv = self.qkv(x)
        if self.conv is not None:
            qkv = self.conv(qkv)
        q, k, v = qkv.chunk(3, -1)
        q, k, v = (t.view(B, T, self.h, self.dh).transpose(1, 2) for t in (q, k, v))
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o(o.transpose(1, 2).reshape(B, T, D)), None, None
