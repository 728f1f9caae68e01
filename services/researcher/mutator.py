"""The offline proposer: seeded evolutionary edits of a parent's design, with a stated motivation.

This is classic evolutionary architecture search, honest about being so: a child edits one or two genes
of its parent (see genome.py), sometimes borrowing a gene from a reference (crossover), and says what
it changed and why the change might help. It is also the baseline an LLM planner must beat.
"""
from __future__ import annotations

import random
from typing import Any, Callable

from services.researcher.genome import (FEATURE_TEXT, GENES, MEMORY_TEXT, ZOO_DESIGNS, active_genes, canonical,
                                        describe, design_key)

__all__ = ["ZOO_DESIGNS", "mutate", "design_name", "EFFECTS"]

# gene -> value -> (what the mechanism is, the expected effect): the mechanistic half of a motivation
EFFECTS: dict[str, dict[Any, str]] = {
    "memory": {
        "delta": "the delta rule overwrites the value stored under a key instead of adding to it, which should "
                 "reduce interference between stored associations and improve associative recall",
        "gated_delta": "the gated delta rule combines error-correcting writes with a data-dependent forget gate, "
                       "which should keep recall precise while clearing stale associations at context switches",
        "linear": "plain additive accumulation is the simplest associative memory; it tests whether the extra "
                  "machinery of the parent pays for itself, at the risk of more interference between keys",
        "retnet": "a fixed per-head exponential decay gives each head a different memory horizon, which should "
                  "stabilise the state and favour local structure at some cost in long-range recall",
        "gla": "a data-dependent per-channel forget gate lets the layer decide what to keep token by token, "
               "which should help selective retention over long contexts",
        "mamba2": "a Mamba2-style selective scalar decay with input scaled by the step size lets each token "
                  "choose how much of the past to keep, which should improve selective copying",
    },
    "feature_map": {
        "silu": "SiLU features are smooth and mostly positive, which tends to give better-conditioned keys",
        "identity": "identity features keep the full signed key space, maximising the capacity of the state",
        "elu1": "ELU+1 features are strictly positive, so attention weights stay non-negative and a normaliser is valid",
        "relu": "ReLU features are sparse, which should reduce interference between keys sharing the state",
        "softplus": "softplus features are positive and smooth, a gentler alternative to ReLU sparsity",
    },
    "qk_norm": {
        "l2": "unit-norm queries and keys bound the state's growth, which should stabilise training",
        "none": "dropping the q/k normalisation lets key magnitude encode confidence, at some risk to stability",
    },
    "normalizer": {
        "sum": "a running sum normaliser keeps outputs on the scale of a weighted average of values",
        "none": "removing the normaliser avoids division by small denominators and lets the output norm rescale instead",
    },
    "beta": {
        "sigmoid": "a per-token sigmoid write strength lets the layer decide how strongly each token overwrites memory",
        "sigmoid2": "a write strength in (0, 2) allows negative eigenvalues of the transition, which is known to "
                    "help state tracking (e.g. parity-like patterns)",
        "const": "a learned constant write strength per head removes a projection; it tests whether data-dependent "
                 "writes matter on this task",
    },
    "decay": {
        "mamba_dt": "a Mamba-style decay exp(-exp(A) softplus(dt)) spreads heads over time scales from the start",
        "logsigmoid": "a log-sigmoid forget gate initialised near 1 starts as a pure memory and learns to forget",
    },
    "short_conv": {
        True: "a short causal convolution on q, k and v mixes neighbouring tokens before they enter the memory, "
              "which is known to be essential for recall with linear mixers",
        False: "removing the short convolution tests whether the memory alone can form the local features recall needs",
    },
    "conv_size": {
        None: "the profile's kernel size keeps the short convolution comparable with the baselines",
        2: "a kernel of 2 keeps only the previous token, the minimum for induction-style lookups",
        3: "a kernel of 3 gives a slightly wider local context at very low cost",
        4: "a kernel of 4 is the usual choice in DeltaNet and Mamba",
        6: "a kernel of 6 widens the local receptive field for multi-token keys",
        8: "a kernel of 8 widens the local receptive field further for longer n-gram keys",
    },
    "fir": {
        None: "removing the FIR value paths simplifies the layer and leaves all mixing to the memory",
        (3, 7): "two short FIR value paths give a learned local-context shortcut beside the memory",
        (3, 15): "FIR paths of 3 and 15 tokens add local and mid-range shortcuts the memory need not store",
        (3, 15, 31): "three FIR paths (3/15/31) give a multi-scale local memory mixed per token by a learned gate",
        (5, 31, 63): "long FIR paths (5/31/63) add a lossless short-term memory for the last 63 tokens",
        (7, 63): "a 7-token and a 63-token FIR path split local and chunk-scale context",
    },
    "output_gate": {
        "none": "removing the output gate simplifies the read-out",
        "sigmoid": "a sigmoid output gate lets each token suppress memory read-outs it does not need",
        "swish": "a SiLU output gate (as in RetNet and GLA) adds a multiplicative, data-dependent read-out",
    },
    "output_norm": {
        "rmsnorm": "a per-head RMSNorm keeps read-outs on a fixed scale whatever the state's magnitude",
        "gated_rmsnorm": "a gated per-head RMSNorm normalises read-outs and gates them with a SiLU of the input",
        "none": "removing the output norm lets the read-out scale carry information",
    },
    "head_mix": {
        True: "a learned head-mixing matrix lets heads share what they retrieved before the output projection",
        False: "removing head mixing keeps heads independent",
    },
    "expand_v": {
        1: "value dimension equal to the key dimension keeps the state small",
        2: "doubling the value dimension doubles the state's capacity per key",
    },
}

_PHRASINGS = [
    "{change}. Expected effect: {effect}.",
    "This child changes {change_lower}, expecting that {effect}.",
    "Proposed edit -- {change_lower}. Rationale and expected effect: {effect}.",
]


def _value_text(gene: str, value: Any) -> str:
    if gene == "memory":
        return MEMORY_TEXT[value]
    if gene == "feature_map":
        return f"{FEATURE_TEXT[value]} features"
    if gene == "fir":
        return "no FIR paths" if value is None else f"FIR paths {list(value)}"
    if gene == "conv_size":
        return "the profile's kernel" if value is None else f"kernel {value}"
    if gene in ("short_conv", "head_mix"):
        return "on" if value else "off"
    return str(value)


def _tag(gene: str, value: Any) -> str:
    if gene == "fir":
        return "nofir" if value is None else "fir" + "x".join(map(str, value))
    if gene == "conv_size":
        return f"k{value or 'p'}"
    if gene in ("short_conv", "head_mix"):
        return ("" if value else "no") + {"short_conv": "conv", "head_mix": "hmix"}[gene]
    if gene == "expand_v":
        return f"v{value}x"
    return str(value).replace("_", "")


def design_name(design: dict[str, Any], changes: list[tuple[str, Any, Any]] = ()) -> str:
    """A readable unique name: memory, the changed genes, and the design hash."""
    d = canonical(design)
    parts = [d["memory"].replace("_", "")] + [_tag(g, new) for g, _, new in changes if g != "memory"][:2] + [design_key(d)]
    return "-".join(p for p in parts if p)


def _edit(rng: random.Random, design: dict[str, Any]) -> tuple[str, Any, Any] | None:
    genes = active_genes(design)
    rng.shuffle(genes)
    for gene in genes:
        values = [v for v in GENES[gene] if v != design[gene]]
        rng.shuffle(values)
        for value in values:
            if canonical({**design, gene: value}) != design:
                return gene, design[gene], value
    return None


def _crossover(rng: random.Random, design: dict[str, Any], references: list[dict | None]):
    options = []
    for i, ref in enumerate(references):
        if not ref:
            continue
        ref = canonical(ref)
        for gene in GENES:
            if ref[gene] is not None and ref[gene] != design[gene] and canonical({**design, gene: ref[gene]}) != design:
                options.append((i, gene, ref[gene]))
    return rng.choice(options) if options else None


def mutate(parent_design: dict[str, Any] | None, references: list[dict[str, Any] | None], rng_seed: int,
           feedback: list[str] = (), *, phrasing_seed: int | None = None,
           fits: Callable[[dict[str, Any]], bool] | None = None) -> tuple[dict[str, Any], str, str]:
    """A child of `parent_design`: (design, name, motivation). Deterministic in its arguments.

    Edits 1-2 genes (sometimes one borrowed from a reference), and avoids every design whose name
    appears in `feedback` (earlier attempts rejected, e.g. as duplicates). `phrasing_seed` rewords the
    motivation of the same design (used to calibrate the novelty threshold on paraphrases). `fits`: a child must
    pass it (the campaign's parameter ceiling, size-matched search); after 64 draws the last one is proposed
    anyway and the checks say why it is refused.
    """
    rng = random.Random(rng_seed)
    preface = []
    if parent_design is None:
        parent = canonical(ZOO_DESIGNS["deltanet"])
        preface.append("The parent has no known design (imported or LLM-written), so this child starts from the "
                       "DeltaNet genome.")
    else:
        parent = canonical(parent_design)
    rejected = "\n".join(feedback)
    child, changes = parent, []
    for _ in range(64):
        child, changes = dict(parent), []
        if references and rng.random() < 0.25:
            borrowed = _crossover(rng, child, references)
            if borrowed:
                i, gene, value = borrowed
                changes.append((gene, child[gene], value, i))
                child = canonical({**child, gene: value})
        for _ in range(rng.choice([1, 2, 2]) if not changes else rng.choice([0, 1, 1, 1])):
            edit = _edit(rng, child)
            if edit:
                changes.append((*edit, None))
                child = canonical({**child, edit[0]: edit[2]})
        if child != parent and design_name(child, [c[:3] for c in changes]) not in rejected \
                and design_key(child) not in rejected and (fits is None or fits(child)):
            break
    name = design_name(child, [c[:3] for c in changes])
    phrasing = rng if phrasing_seed is None else random.Random(phrasing_seed)
    return child, name, _motivation(phrasing, parent, child, changes, preface)


def _motivation(rng, parent, child, changes, preface) -> str:
    sentences = list(preface)
    for gene, old, new, ref in changes:
        change = f"{gene.replace('_', ' ')}: {_value_text(gene, old)} -> {_value_text(gene, new)}"
        if ref is not None:
            change += f" (borrowed from reference {ref + 1})"
        phrasing = rng.choice(_PHRASINGS)
        sentences.append(phrasing.format(change=change[0].upper() + change[1:], change_lower=change,
                                         effect=EFFECTS[gene].get(new, "its effect is to be measured")))
    sentences.append(f"Resulting design: {describe(child)}.")
    return " ".join(sentences)
