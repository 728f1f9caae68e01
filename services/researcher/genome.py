"""The offline proposer's vocabulary: a layer design ("genome") is a plain dict of genes.

Each gene names one mechanism of a linear-attention layer; `codegen.render` turns a design into a
complete program. Genes that a design does not use (e.g. `beta` without a delta rule) are set to
None by `canonical`, so that two designs are equal exactly when their programs are.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

# gene -> its possible values (the first is the default used to complete a partial design)
GENES: dict[str, list[Any]] = {
    "memory": ["delta", "gated_delta", "linear", "retnet", "gla", "mamba2"],
    "feature_map": ["silu", "identity", "elu1", "relu", "softplus"],
    "qk_norm": ["l2", "none"],
    "normalizer": ["none", "sum"],                    # linear memory only: Katharopoulos denominator
    "beta": ["sigmoid", "sigmoid2", "const"],         # delta rules: write strength (x2 allows negative eigenvalues)
    "decay": ["mamba_dt", "logsigmoid"],              # data-dependent scalar decay (mamba2, gated_delta)
    "short_conv": [True, False],
    "conv_size": [None, 2, 3, 4, 6, 8],               # None: the profile's conv_size argument
    "fir": [None, (3, 7), (3, 15), (3, 15, 31), (5, 31, 63), (7, 63)],  # extra depthwise value paths
    "output_gate": ["none", "sigmoid", "swish"],
    "output_norm": ["rmsnorm", "gated_rmsnorm", "none"],
    "head_mix": [False, True],
    "expand_v": [1, 2],
}

DELTA_MEMORIES = ("delta", "gated_delta")
SCALAR_DECAY_MEMORIES = ("gated_delta", "mamba2")
POSITIVE_FEATURES = ("elu1", "relu", "softplus")

MEMORY_TEXT = {
    "delta": "delta rule (DeltaNet)",
    "gated_delta": "gated delta rule (Gated DeltaNet)",
    "linear": "plain linear accumulation",
    "retnet": "fixed per-head decay (RetNet retention)",
    "gla": "data-dependent per-channel gated decay (GLA)",
    "mamba2": "Mamba2-style data-dependent scalar-decay SSM",
}
FEATURE_TEXT = {"silu": "SiLU", "identity": "identity", "elu1": "ELU+1", "relu": "ReLU", "softplus": "softplus"}

# The genomes of the classic mixers of the engineer's zoo (lab/zoo/programs), softmax excepted.
# Close, not exact: e.g. the zoo's Mamba2 has a D skip and its GLA a two-level chunking the vocabulary lacks.
ZOO_DESIGNS: dict[str, dict[str, Any]] = {
    "deltanet": {"memory": "delta", "feature_map": "silu", "qk_norm": "l2", "beta": "sigmoid",
                 "short_conv": True, "output_norm": "rmsnorm", "output_gate": "none"},
    "gated_deltanet": {"memory": "gated_delta", "feature_map": "silu", "qk_norm": "l2", "beta": "sigmoid",
                       "decay": "mamba_dt", "short_conv": True, "output_norm": "gated_rmsnorm"},
    "linear": {"memory": "linear", "feature_map": "elu1", "qk_norm": "none", "normalizer": "sum",
               "short_conv": True, "output_norm": "none", "output_gate": "none"},
    "retnet": {"memory": "retnet", "feature_map": "identity", "qk_norm": "none", "short_conv": True,
               "output_norm": "gated_rmsnorm"},
    "gla": {"memory": "gla", "feature_map": "identity", "qk_norm": "none", "short_conv": True,
            "output_norm": "gated_rmsnorm"},
    "mamba2": {"memory": "mamba2", "feature_map": "identity", "qk_norm": "none", "decay": "mamba_dt",
               "short_conv": True, "output_norm": "gated_rmsnorm"},
}


def canonical(design: dict[str, Any]) -> dict[str, Any]:
    """A complete design with every unused gene set to None (and fir as a tuple)."""
    d = {g: values[0] if design.get(g) is None and None not in values else design.get(g)
         for g, values in GENES.items()}
    if d["fir"] is not None:
        d["fir"] = tuple(int(k) for k in d["fir"])
    for gene, values in GENES.items():
        if d[gene] not in values:
            raise ValueError(f"gene {gene}={d[gene]!r} is not one of {values}")
    mem = d["memory"]
    if mem in DELTA_MEMORIES:
        d["qk_norm"] = "l2"  # the delta rule is stable only with unit-norm keys
    else:
        d["beta"] = None
    if mem not in SCALAR_DECAY_MEMORIES:
        d["decay"] = None
    if mem != "linear" or d["feature_map"] not in POSITIVE_FEATURES:
        d["normalizer"] = None
    if not d["short_conv"]:
        d["conv_size"] = None
    if d["output_norm"] == "gated_rmsnorm":
        d["output_gate"] = None  # the gated norm already gates the output
    return d


def active_genes(design: dict[str, Any]) -> list[str]:
    """The genes whose change alters the program (a mutation of any other gene would be a no-op)."""
    base = canonical(design)
    return [g for g, values in GENES.items()
            if any(canonical({**base, g: v}) != base for v in values if v != base[g])]


def design_key(design: dict[str, Any]) -> str:
    """A short stable hash of the canonical design."""
    blob = json.dumps(canonical(design), sort_keys=True, default=list)
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def to_jsonable(design: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in canonical(design).items()}


def describe(design: dict[str, Any]) -> str:
    """One line naming every mechanism of the design."""
    d = canonical(design)
    parts = [MEMORY_TEXT[d["memory"]], f"{FEATURE_TEXT[d['feature_map']]} features"]
    if d["qk_norm"] == "l2":
        parts.append("L2-normalised q/k")
    if d["normalizer"] == "sum":
        parts.append("sum normaliser")
    if d["beta"]:
        parts.append({"sigmoid": "sigmoid write strength", "sigmoid2": "2*sigmoid write strength (negative "
                      "eigenvalues)", "const": "learned constant write strength"}[d["beta"]])
    if d["decay"]:
        parts.append({"mamba_dt": "Mamba-style A*dt decay", "logsigmoid": "log-sigmoid decay gate"}[d["decay"]])
    if d["short_conv"]:
        parts.append(f"short conv (kernel {d['conv_size'] or 'from profile'})")
    else:
        parts.append("no short conv")
    if d["fir"]:
        parts.append(f"gated multi-scale FIR value paths {list(d['fir'])}")
    if d["output_gate"] not in (None, "none"):
        parts.append(f"{d['output_gate']} output gate")
    parts.append({"rmsnorm": "RMSNorm output", "gated_rmsnorm": "gated RMSNorm output",
                  "none": "no output norm"}[d["output_norm"]])
    if d["head_mix"]:
        parts.append("learned head mixing")
    if d["expand_v"] > 1:
        parts.append(f"value expansion x{d['expand_v']}")
    return ", ".join(parts)
