"""Test-local DeltaNet (pure PyTorch, chunked delta rule) honouring the layer contract."""
import torch
import torch.nn as nn
import torch.nn.functional as F


def delta_rule_chunked(q, k, v, beta, chunk: int = 64):
    """S_t = S_{t-1} + k_t^T beta_t (v_t - k_t S_{t-1}); o_t = q_t S_t. q,k,v [B,H,T,D], beta [B,H,T]."""
    B, H, T, D = q.shape
    pad = (-T) % chunk
    if pad:
        q, k, v = (F.pad(x, (0, 0, 0, pad)) for x in (q, k, v))
        beta = F.pad(beta, (0, pad))
    N = (T + pad) // chunk
    q, k, v = (x.reshape(B, H, N, chunk, x.shape[-1]) for x in (q, k, v))
    beta = beta.reshape(B, H, N, chunk, 1)
    kb, vb = k * beta, v * beta
    eye = torch.eye(chunk, dtype=q.dtype, device=q.device)
    A = (kb @ k.transpose(-1, -2)).tril(-1)
    Tinv = torch.linalg.solve_triangular(eye + A, eye.expand_as(A), upper=False)
    W, U = Tinv @ kb, Tinv @ vb
    mask = torch.ones(chunk, chunk, dtype=torch.bool, device=q.device).triu(1)
    S = q.new_zeros(B, H, D, v.shape[-1])
    outs = []
    for n in range(N):
        qn, kn = q[:, :, n], k[:, :, n]
        u = U[:, :, n] - W[:, :, n] @ S
        att = (qn @ kn.transpose(-1, -2)).masked_fill(mask, 0)
        outs.append(qn @ S + att @ u)
        S = S + kn.transpose(-1, -2) @ u
    return torch.stack(outs, 2).reshape(B, H, N * chunk, -1)[:, :, :T]


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
        self.b = nn.Linear(hidden_size, num_heads, bias=True)
        self.conv = ShortConv(3 * hidden_size, conv_size) if use_short_conv else None

    def forward(self, hidden_states, attention_mask=None, **kwargs):
        x = hidden_states
        B, T, D = x.shape
        qkv = self.qkv(x)
        if self.conv is not None:
            qkv = self.conv(qkv)
        q, k, v = qkv.chunk(3, -1)
        q, k, v = (t.view(B, T, self.h, self.dh).transpose(1, 2) for t in (q, k, v))
        q, k = F.normalize(F.silu(q), dim=-1), F.normalize(F.silu(k), dim=-1)
        beta = torch.sigmoid(self.b(x)).transpose(1, 2)
        o = delta_rule_chunked(q.float(), k.float(), v.float(), beta.float()).to(x.dtype)
        return self.o(o.transpose(1, 2).reshape(B, T, D)), None, None
