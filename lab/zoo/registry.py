"""The architecture zoo: classic token mixers written under the layer contract, as program files.

Each member is one self-contained program (programs/<name>.py) defining `class DeltaNet(nn.Module)`
and a core-op function with a predictable name (ZooMember.core_op) that tests compare with the
step-by-step references in naive.py. The members serve as campaign baselines and seeds, and their
`mechanisms` name the components the offline proposer recombines.

Mechanism vocabulary (one word per component, in the order a layer applies them):
  short_conv            depthwise causal conv (kernel 4, SiLU) on q, k, v
  rope                  rotary positions on q, k
  elu1_feature_map      phi(x) = elu(x) + 1 on q, k
  l2_qk                 L2-normalised q, k (after SiLU)
  fixed_decay           a constant per-head decay gamma_h
  vector_gate           a data-dependent forget gate per key dimension (low-rank, sigmoid^(1/16))
  scalar_gate           a data-dependent scalar decay per head, exp(-exp(A_log) softplus(w x + dt_bias))
  sigmoid_beta          a data-dependent write strength beta = sigmoid(w x) per head
  softmax_attention     causal softmax over all past keys (quadratic)
  linear_attention      an additive outer-product memory S += k^T v
  normalized_readout    o = q S / (q z): the running key sum as denominator
  delta_rule            the memory is corrected towards v: S += beta k^T (v - k S)
  ssd                   the state-space recurrence of Mamba2 with the step size dt scaling the input
  d_skip                a learned per-head skip D x around the recurrence
  output_rmsnorm        a per-head RMSNorm on the mixer output
  output_gate           a SiLU output gate from the input (with the per-head norm: gated RMSNorm)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PROGRAMS_DIR = Path(__file__).resolve().parent / "programs"


@dataclass(frozen=True)
class ZooMember:
    name: str
    path: Path  # the program file
    summary: str
    citation: str
    quadratic: bool  # True: time and memory grow with T^2 (a reference, not a candidate)
    mechanisms: tuple[str, ...]
    core_op: str  # the function in the program that tests compare with naive.py


def _member(name, summary, citation, quadratic, mechanisms, core_op) -> ZooMember:
    return ZooMember(name, PROGRAMS_DIR / f"{name}.py", summary, citation, quadratic, tuple(mechanisms), core_op)


ZOO: dict[str, ZooMember] = {m.name: m for m in (
    _member("softmax", "Causal softmax attention with RoPE: the quadratic upper reference.",
            "Vaswani et al. 2017, Attention Is All You Need (arXiv 1706.03762)", True,
            ("short_conv", "rope", "softmax_attention"), "softmax_attention"),
    _member("linear", "Linear attention, elu+1 feature map, normalised read-out.",
            "Katharopoulos et al. 2020, Transformers are RNNs (arXiv 2006.16236)", False,
            ("short_conv", "elu1_feature_map", "linear_attention", "normalized_readout"), "chunk_linear_attn"),
    _member("retnet", "Retention: linear attention with a fixed decay per head, gated RMSNorm output.",
            "Sun et al. 2023, Retentive Network (arXiv 2307.08621)", False,
            ("short_conv", "fixed_decay", "linear_attention", "output_rmsnorm", "output_gate"), "chunk_retention"),
    _member("gla", "Gated linear attention: data-dependent forget gate per key dimension, chunked in two levels.",
            "Yang et al. 2023, Gated Linear Attention Transformers with Hardware-Efficient Training (arXiv 2312.06635)",
            False, ("short_conv", "vector_gate", "linear_attention", "output_rmsnorm", "output_gate"), "chunk_gla"),
    _member("deltanet", "DeltaNet, the baseline: chunked delta rule, short conv, SiLU + L2 q/k, sigmoid beta.",
            "Schlag et al. 2021 (arXiv 2102.11174); Yang et al. 2024, Parallelizing Linear Transformers with the "
            "Delta Rule over Sequence Length (arXiv 2406.06484)", False,
            ("short_conv", "l2_qk", "sigmoid_beta", "delta_rule", "output_rmsnorm"), "chunk_delta_rule"),
    _member("gated_deltanet", "Gated DeltaNet: the delta rule with a Mamba2-style scalar decay, gated RMSNorm output.",
            "Yang et al. 2024, Gated Delta Networks: Improving Mamba2 with Delta Rule (arXiv 2412.06464)", False,
            ("short_conv", "l2_qk", "scalar_gate", "sigmoid_beta", "delta_rule", "output_rmsnorm", "output_gate"),
            "chunk_gated_delta_rule"),
    _member("mamba2", "Mamba2-style selective SSM (SSD): scalar data-dependent decay per head, D skip, gated RMSNorm.",
            "Dao & Gu 2024, Transformers are SSMs (arXiv 2405.21060)", False,
            ("short_conv", "scalar_gate", "ssd", "d_skip", "output_rmsnorm", "output_gate"), "chunk_ssd"),
)}


def zoo_names() -> list[str]:
    return list(ZOO)


def zoo_source(name: str) -> str:
    """The program text of zoo member `name` (raises KeyError for an unknown name)."""
    return ZOO[name].path.read_text(encoding="utf-8")
