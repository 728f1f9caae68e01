"""Render a design (see genome.py) as a complete, readable layer program.

The program honours the layer contract of the published ASI-Arch programs: `class DeltaNet(nn.Module)`,
`__init__(hidden_size, num_heads, use_short_conv, conv_size, layer_idx, **kwargs)` and
`forward(hidden_states, attention_mask=None, past_key_values=None, use_cache=False, **kwargs)
-> (o, None, past_key_values)`. It imports only torch, einops, math, typing and fla.modules names.
The memory is computed chunkwise (chunks of 32 tokens; GLA 64): a loop over chunks, never over tokens, so it is fast
on CPU.
"""
from __future__ import annotations

from typing import Any

from services.researcher.genome import DELTA_MEMORIES, canonical, describe, to_jsonable

HEADER = '''"""{name}: {summary}

{motivation}

Design (archlab offline proposer): {design}
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from fla.modules import FusedRMSNormGated, RMSNorm, ShortConvolution
from fla.modules.l2norm import l2norm
'''

SCALAR_KERNEL = '''

def chunk_scalar_memory(q, k, v, beta=None, log_decay=None, chunk_size: int = 32, scale: float = 1.0):
    """Causal linear-attention memory with a scalar decay per head and step, optionally a delta rule.
    q, k: [B, T, H, K]; v: [B, T, H, V]; beta, log_decay: [B, T, H] (None: plain write, no decay).
        delta rule:  S_t = a_t (I - b_t k_t k_t^T) S_{t-1} + b_t k_t v_t^T
        otherwise:   S_t = a_t S_{t-1} + k_t v_t^T,          o_t = scale q_t S_t,  a_t = exp(log_decay_t)
    Chunkwise parallel: inside a chunk the sequential delta corrections collapse into one triangular
    solve (WY form); only the loop over chunks is sequential.
    """
    B, T, H, K = q.shape
    out_dtype = q.dtype
    q, k, v = (rearrange(x, "b t h d -> b h t d").float() for x in (q, k, v))
    g = q.new_zeros(B, H, T) if log_decay is None else rearrange(log_decay, "b t h -> b h t").float()
    C = chunk_size
    pad = (-T) % C
    if pad:  # padded steps come after every real token: they cannot change a real output
        q, k, v = (F.pad(x, (0, 0, 0, pad)) for x in (q, k, v))
        g = F.pad(g, (0, pad))
    q, k, v = (rearrange(x, "b h (n c) d -> b h n c d", c=C) for x in (q * scale, k, v))
    g = rearrange(g, "b h (n c) -> b h n c", c=C).cumsum(-1)  # log decay from the chunk start
    causal = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()
    decays = log_decay is not None  # without decay every factor exp(g) is exactly 1: skipped, same numbers
    if decays:
        decay = (g[..., :, None] - g[..., None, :]).masked_fill(~causal, float("-inf")).exp()  # a_{j+1..i}
    if beta is not None:
        b = rearrange(F.pad(beta.float(), (0, 0, 0, pad)), "b (n c) h -> b h n c 1", c=C)
        k_beta = k * b
        A = (k_beta @ k.transpose(-1, -2))
        A = (A * decay if decays else A).tril(-1)  # A_ij = b_i a_{j+1..i} k_i.k_j, j < i
        # (I + A) [u w] = [b v, b a k]: one unit-triangular solve for both, not (I + A)^-1 then two products;
        # posed from the right on the transposes ([u w]^T (I + A)^T = rhs^T), which skips the copies a left-hand solve
        # makes of row-major operands: the same numbers, forward and backward about 1.8x faster on the CPU
        rhs = torch.cat([v * b, k_beta * g.exp()[..., None] if decays else k_beta], dim=-1)
        uw = torch.linalg.solve_triangular(A.mT, rhs.mT, upper=True, left=False, unitriangular=True).mT
        u, w = uw.split([v.shape[-1], k.shape[-1]], dim=-1)
    else:
        u, w = v, None
    S = q.new_zeros(B, H, K, v.shape[-1])
    o = []
    # each chunk's slices by unbind, not x[:, :, n]: the backward of an index writes its gradient into zeros the size
    # of the whole tensor, once per chunk; unbind's stacks the chunks' gradients once (the same numbers)
    n_chunks = q.shape[2]
    w_chunks = w.unbind(2) if w is not None else [None] * n_chunks
    decay_chunks = decay.unbind(2) if decays else [None] * n_chunks
    for q_n, k_n, g_n, u_n, w_n, decay_n in zip(q.unbind(2), k.unbind(2), g.unbind(2), u.unbind(2), w_chunks,
                                                decay_chunks):
        if w is not None:
            u_n = u_n - w_n @ S  # values corrected by the state
        if decays:
            attn = (q_n @ k_n.transpose(-1, -2)) * decay_n
            o.append((q_n * g_n.exp()[..., None]) @ S + attn @ u_n)
            S = S * g_n[..., -1, None, None].exp() + (k_n * (g_n[..., -1:] - g_n).exp()[..., None]).transpose(-1, -2) @ u_n
        else:
            attn = (q_n @ k_n.transpose(-1, -2)).masked_fill(~causal, 0)
            o.append(q_n @ S + attn @ u_n)
            S = S + k_n.transpose(-1, -2) @ u_n
    o = rearrange(torch.stack(o, dim=2), "b h n c d -> b (n c) h d")[:, :T]
    return o.to(out_dtype)
'''

GLA_KERNEL = '''

def chunk_gla(q, k, v, log_decay, chunk_size: int = 64, scale: float = 1.0):
    """Gated linear attention: a data-dependent decay per key channel.
    q, k, log_decay: [B, T, H, K]; v: [B, T, H, V].  S_t = diag(exp(log_decay_t)) S_{t-1} + k_t v_t^T, o_t = scale q_t S_t.
    Inside a chunk the decay is factored as exp(G_i) * exp(-G_j) (G: cumulative log decay from the chunk
    start); log_decay >= -1.25 per step keeps exp(-G) finite in float32 over 64 steps.
    """
    B, T, H, K = q.shape
    out_dtype = q.dtype
    q, k, v, g = (rearrange(x, "b t h d -> b h t d").float() for x in (q, k, v, log_decay))
    g = g.clamp(min=-80.0 / chunk_size)
    C = chunk_size
    pad = (-T) % C
    if pad:
        q, k, v, g = (F.pad(x, (0, 0, 0, pad)) for x in (q, k, v, g))
    q, k, v, g = (rearrange(x, "b h (n c) d -> b h n c d", c=C) for x in (q * scale, k, v, g))
    g = g.cumsum(-2)
    causal = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()
    q_g, k_g = q * g.exp(), k * (-g).exp()
    S = q.new_zeros(B, H, K, v.shape[-1])
    o = []
    for n in range(q.shape[2]):
        attn = (q_g[:, :, n] @ k_g[:, :, n].transpose(-1, -2)).masked_fill(~causal, 0)
        o.append(q_g[:, :, n] @ S + attn @ v[:, :, n])
        g_last = g[:, :, n, -1:]
        S = S * g_last.transpose(-1, -2).exp() + (k[:, :, n] * (g_last - g[:, :, n]).exp()).transpose(-1, -2) @ v[:, :, n]
    o = rearrange(torch.stack(o, dim=2), "b h n c d -> b (n c) h d")[:, :T]
    return o.to(out_dtype)
'''

# The chunk a layer computes its memory in by default. The scalar kernel's work per token grows with the chunk (its
# C x C products and solve) while its Python loop shrinks: 32 trains the delta-rule candidates of cpu-tiny 1.07-1.13x
# faster per step than 64 on one CPU thread (bench/train.py, chunk-32 against engine), the same numbers up to float
# rounding (tests/researcher/test_codegen_kernels.py). GLA keeps 64: 32 was 0.96x there, and its clamp depends on it.
SCALAR_CHUNK, GLA_CHUNK = 32, 64

FEATURE_CODE = {
    "identity": None,
    "silu": "F.silu({x})",
    "elu1": "F.elu({x}) + 1.0",
    "relu": "F.relu({x})",
    "softplus": "F.softplus({x})",
}


def _init(d: dict[str, Any]) -> list[str]:
    L = []
    a = L.append
    a("        super().__init__()")
    a("        self.hidden_size, self.num_heads, self.layer_idx = hidden_size, num_heads, layer_idx")
    a("        if hidden_size % num_heads:")
    a('            raise ValueError(f"hidden_size={hidden_size} must be divisible by num_heads={num_heads}")')
    a("        self.head_k_dim = hidden_size // num_heads")
    a(f"        self.head_v_dim = self.head_k_dim * {d['expand_v']}")
    a("        self.key_dim, self.value_dim = hidden_size, self.head_v_dim * num_heads")
    a("        self.chunk_size = chunk_size")
    a("        self.q_proj = nn.Linear(hidden_size, self.key_dim, bias=False)")
    a("        self.k_proj = nn.Linear(hidden_size, self.key_dim, bias=False)")
    a("        self.v_proj = nn.Linear(hidden_size, self.value_dim, bias=False)")
    mem = d["memory"]
    if mem in DELTA_MEMORIES:
        if d["beta"] == "const":
            a("        self.beta_logit = nn.Parameter(torch.zeros(num_heads))  # one learned write strength per head")
        else:
            a("        self.b_proj = nn.Linear(hidden_size, num_heads, bias=True)")
    if d["decay"] == "mamba_dt":
        a("        self.a_proj = nn.Linear(hidden_size, num_heads, bias=False)")
        # the zoo's spread init (docs/zoo.md): Mamba2's ranges A in [1, 16], dt in [1e-3, 1e-1] on a log grid over
        # the heads, so head 0 always has a long memory (a random draw with one head often has none)
        a("        frac = torch.linspace(0.0, 1.0, num_heads) if num_heads > 1 else torch.zeros(1)")
        a("        self.A_log = nn.Parameter(math.log(16.0) * frac)  # A = 16^frac: 1 .. 16")
        a("        dt = (0.001 * 100.0 ** frac).clamp(min=1e-4)  # 1e-3 .. 1e-1")
        a("        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # softplus^-1(dt)")
    elif d["decay"] == "logsigmoid":
        a("        self.a_proj = nn.Linear(hidden_size, num_heads, bias=True)")
        a("        # forgetting rates 1e-3 .. 1e-1 per token spread over the heads (logsigmoid(b) ~ -exp(-b))")
        a("        frac = torch.linspace(0.0, 1.0, num_heads) if num_heads > 1 else torch.zeros(1)")
        a("        with torch.no_grad():")
        a("            self.a_proj.bias.copy_(-torch.log(0.001 * 100.0 ** frac))")
    if mem == "retnet":
        a("        decay = 1.0 - 2.0 ** (-5.0 - torch.arange(num_heads, dtype=torch.float))")
        a('        self.register_buffer("log_decay", decay.log(), persistent=False)  # fixed, one per head')
    if mem == "gla":
        a("        self.gk_proj = nn.Sequential(nn.Linear(hidden_size, 16, bias=False), nn.Linear(16, self.key_dim, bias=True))")
    if d["short_conv"]:
        if d["conv_size"] is not None:
            a(f"        conv_size = {d['conv_size']}  # design: this kernel size, whatever the profile passes")
        a("        self.use_short_conv = True")
        a('        self.q_conv1d = ShortConvolution(self.key_dim, conv_size, activation="silu")')
        a('        self.k_conv1d = ShortConvolution(self.key_dim, conv_size, activation="silu")')
        a('        self.v_conv1d = ShortConvolution(self.value_dim, conv_size, activation="silu")')
    else:
        a("        self.use_short_conv = False  # design: no short convolution, whatever the profile passes")
    if d["fir"]:
        a(f"        self.fir_sizes = {tuple(d['fir'])}")
        a("        self.fir_weights = nn.ParameterList(")
        a("            [nn.Parameter(torch.randn(self.value_dim, 1, size) / size) for size in self.fir_sizes])")
        a("        self.path_gate = nn.Linear(hidden_size, num_heads * (len(self.fir_sizes) + 1), bias=True)")
    if d["output_gate"] in ("sigmoid", "swish") or d["output_norm"] == "gated_rmsnorm":
        a("        self.g_proj = nn.Linear(hidden_size, self.value_dim, bias=False)")
    if d["output_norm"] == "rmsnorm":
        a("        self.o_norm = RMSNorm(self.head_v_dim, eps=1e-5)")
    elif d["output_norm"] == "gated_rmsnorm":
        a("        self.o_norm = FusedRMSNormGated(self.head_v_dim, eps=1e-5)")
    if d["head_mix"]:
        a("        self.head_mix = nn.Parameter(torch.eye(num_heads))  # starts as no mixing")
    a("        self.o_proj = nn.Linear(self.value_dim, hidden_size, bias=False)")
    return L


def _forward(d: dict[str, Any]) -> list[str]:
    L = []
    a = L.append
    mem = d["memory"]
    a("        x = hidden_states")
    a("        B, T, _ = x.shape")
    a("        if attention_mask is not None:  # [B, T] padding mask: padded tokens write nothing")
    a("            x = x * attention_mask[:, -T:, None].to(x.dtype)")
    a("        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)")
    if d["short_conv"]:
        a("        q, _ = self.q_conv1d(q)")
        a("        k, _ = self.k_conv1d(k)")
        a("        v, _ = self.v_conv1d(v)")
    a('        q, k = (rearrange(t, "b t (h d) -> b t h d", h=self.num_heads) for t in (q, k))')
    a('        v = rearrange(v, "b t (h d) -> b t h d", h=self.num_heads)')
    fm = FEATURE_CODE[d["feature_map"]]
    if fm:
        a(f"        q, k = {fm.format(x='q')}, {fm.format(x='k')}  # feature map")
    if d["qk_norm"] == "l2":
        a("        q, k = l2norm(q), l2norm(k)")
    scale = "self.head_k_dim ** -0.5"
    if mem in DELTA_MEMORIES:
        if d["beta"] == "const":
            a("        beta = self.beta_logit.sigmoid().expand(B, T, self.num_heads)")
        elif d["beta"] == "sigmoid2":
            a("        beta = 2.0 * self.b_proj(x).sigmoid()  # in (0, 2): allows negative eigenvalues")
        else:
            a("        beta = self.b_proj(x).sigmoid()")
    if d["decay"] == "mamba_dt":
        a("        dt = F.softplus(self.a_proj(x).float() + self.dt_bias)  # [B, T, H]")
        a("        log_decay = -self.A_log.float().exp() * dt")
    elif d["decay"] == "logsigmoid":
        a("        log_decay = F.logsigmoid(self.a_proj(x).float())")
    if mem == "retnet":
        a("        log_decay = self.log_decay.expand(B, T, self.num_heads)")
    if mem == "gla":
        a("        log_decay = F.logsigmoid(self.gk_proj(x).float()) / 16.0")
        a('        log_decay = rearrange(log_decay, "b t (h d) -> b t h d", h=self.num_heads)')
        a(f"        o = chunk_gla(q, k, v, log_decay, self.chunk_size, scale={scale})")
    elif mem == "linear" and d["normalizer"] == "sum":
        a("        v_ones = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)  # last column accumulates the normaliser")
        a(f"        o = chunk_scalar_memory(q, k, v_ones, chunk_size=self.chunk_size, scale={scale})")
        a("        o = o[..., :-1] / (o[..., -1:] + 1e-6)")
    elif mem == "linear":
        a(f"        o = chunk_scalar_memory(q, k, v, chunk_size=self.chunk_size, scale={scale})")
    elif mem == "delta":
        a(f"        o = chunk_scalar_memory(q, k, v, beta=beta, chunk_size=self.chunk_size, scale={scale})")
    elif mem == "gated_delta":
        a(f"        o = chunk_scalar_memory(q, k, v, beta=beta, log_decay=log_decay, chunk_size=self.chunk_size, scale={scale})")
    elif mem == "retnet":
        a(f"        o = chunk_scalar_memory(q, k, v, log_decay=log_decay, chunk_size=self.chunk_size, scale={scale})")
    elif mem == "mamba2":
        if d["decay"] == "mamba_dt":
            a("        k = k * dt[..., None].to(k.dtype)  # SSD: the input is scaled by the step size")
        a("        o = chunk_scalar_memory(q, k, v, log_decay=log_decay, chunk_size=self.chunk_size, scale=1.0)")
    if d["fir"]:
        a("        # multi-scale FIR paths: causal depthwise convolutions of the values, mixed per token and head")
        a('        v_flat = rearrange(v, "b t h d -> b (h d) t")')
        a("        paths = [o]")
        a("        for size, weight in zip(self.fir_sizes, self.fir_weights):")
        a("            y = F.conv1d(F.pad(v_flat, (size - 1, 0)), weight.to(v_flat.dtype), groups=v_flat.shape[1])")
        a('            paths.append(rearrange(y, "b (h d) t -> b t h d", h=self.num_heads))')
        a('        mix = rearrange(self.path_gate(x), "b t (h p) -> b t h p", h=self.num_heads).softmax(-1)')
        a("        o = sum(mix[..., i, None] * path for i, path in enumerate(paths))")
    if d["head_mix"]:
        a('        o = torch.einsum("bthd,hg->btgd", o, self.head_mix)')
    if d["output_norm"] == "gated_rmsnorm":
        a('        g = rearrange(self.g_proj(x), "b t (h d) -> b t h d", h=self.num_heads)')
        a("        o = self.o_norm(o, g)")
    else:
        if d["output_norm"] == "rmsnorm":
            a("        o = self.o_norm(o)")
        if d["output_gate"] in ("sigmoid", "swish"):
            act = "torch.sigmoid" if d["output_gate"] == "sigmoid" else "F.silu"
            a(f'        o = o * {act}(rearrange(self.g_proj(x), "b t (h d) -> b t h d", h=self.num_heads))')
    a('        o = self.o_proj(rearrange(o, "b t h d -> b t (h d)"))')
    a("        return o, None, past_key_values")
    return L


def render(design: dict[str, Any], name: str, motivation: str = "") -> str:
    """A complete program for `design`; the same design always gives the same code (up to the docstring)."""
    d = canonical(design)
    summary = describe(d)
    wrapped = "\n".join(_wrap(motivation.strip(), 100)) if motivation.strip() else ""
    src = HEADER.format(name=name, summary=summary, motivation=wrapped.replace('"""', "'''"),
                        design=to_jsonable(d))
    src += GLA_KERNEL if d["memory"] == "gla" else SCALAR_KERNEL
    src += "\n\nclass DeltaNet(nn.Module):\n"
    src += f'    """{name}: {summary}."""\n\n'
    src += ("    def __init__(self, hidden_size: int = 1024, num_heads: int = 4, use_short_conv: bool = True,\n"
            "                 conv_size: int = 4, layer_idx: Optional[int] = None, "
            f"chunk_size: int = {GLA_CHUNK if d['memory'] == 'gla' else SCALAR_CHUNK}, **kwargs):\n")
    src += "\n".join(_init(d)) + "\n\n"
    src += ("    def forward(self, hidden_states: torch.Tensor, attention_mask: Optional[torch.Tensor] = None,\n"
            "                past_key_values=None, use_cache: bool = False, **kwargs) -> Tuple[torch.Tensor, None, object]:\n")
    src += "\n".join(_forward(d)) + "\n"
    return src


def layer_params(design: dict[str, Any], hidden_size: int, num_heads: int, conv_size: int = 4) -> int:
    """The parameters of one rendered layer, counted from the design as `_init` builds it (no code runs: the
    offline proposer sizes its children against the campaign's ceiling with it; tests/researcher compare it with
    the built layers). `conv_size`: the profile's kernel, used when the design keeps it."""
    d = canonical(design)
    D, H = hidden_size, num_heads
    Dv = (D // H) * d["expand_v"] * H
    n = 2 * D * D + D * Dv + Dv * D                      # q, k, v, o projections
    if d["memory"] in DELTA_MEMORIES:
        n += H if d["beta"] == "const" else D * H + H
    n += {"mamba_dt": D * H + 2 * H, "logsigmoid": D * H + H}.get(d["decay"], 0)
    if d["memory"] == "gla":
        n += D * 16 + 16 * D + D
    if d["short_conv"]:
        n += (D + D + Dv) * (d["conv_size"] or conv_size)
    if d["fir"]:
        paths = len(d["fir"]) + 1
        n += Dv * sum(d["fir"]) + D * H * paths + H * paths
    if d["output_gate"] in ("sigmoid", "swish") or d["output_norm"] == "gated_rmsnorm":
        n += D * Dv
    if d["output_norm"] in ("rmsnorm", "gated_rmsnorm"):
        n += Dv // H
    if d["head_mix"]:
        n += H * H
    return n


def model_params(design: dict[str, Any], dims: dict[str, Any]) -> int:
    """The whole model's parameters with this layer (lab/training/model.py: tied embedding, per block two RMSNorms
    and a 4x MLP, a final norm); `dims` as lab.checks.profile_dims gives them."""
    D, L = dims["hidden_size"], dims["num_layers"]
    conv = (dims.get("layer_kwargs") or {}).get("conv_size", 4)
    block = layer_params(design, D, dims["num_heads"], conv) + 2 * D + (D * 4 * D + 4 * D) + (4 * D * D + D)
    return dims["vocab_size"] * D + L * block + D


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return lines + ([line] if line else [])
