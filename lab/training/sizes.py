"""What a profile means, computed from the profile itself: parameter counts and the docs/profiles.md table.

`model_params(profile, program)` is the model's own size formula (`CausalLM.num_params`, the tied head
counted once) on a model built on PyTorch's "meta" device: shapes without storage, so verify-340m is
counted in milliseconds without allocating 340M parameters. `nominal_params("explore-20m")` reads the
count a profile's name promises (20M); tests/engineer/test_profile_sizes.py holds the two together.

`python -m lab.training.sizes` prints the table of docs/profiles.md (a test compares them).
"""
from __future__ import annotations

import re

from lab.training.profiles import PROFILES, Profile, get_profile

BASELINE = "deltanet"   # the campaigns' default baseline: the member a profile's name is measured with


def model_params(profile: Profile | str, program: str = BASELINE) -> int:
    """Parameters of the profile's model around the zoo member `program` (or program source code)."""
    import torch

    from lab.program import load_layer_class
    from lab.training.runner import build_model
    from lab.zoo.registry import ZOO, zoo_source

    p = get_profile(profile) if isinstance(profile, str) else profile
    layer_cls = load_layer_class(zoo_source(program) if program in ZOO else program)
    with torch.device("meta"):
        return build_model(layer_cls, p).num_params()


def nominal_params(name: str) -> int | None:
    """The parameter count a profile's name promises: "explore-20m" -> 20_000_000; None without one."""
    m = re.search(r"-(\d+(?:\.\d+)?)([km])$", name)
    if not m:
        return None
    return int(float(m.group(1)) * {"k": 10**3, "m": 10**6}[m.group(2)])


def _lr(p: Profile) -> str:
    return (f"AdamW {p.lr:g}, wd {p.weight_decay:g}, WSD: warmup {p.warmup_frac:g}, decay last {p.decay_frac:g} "
            f"to {p.min_lr_frac:g}x")


def _data(p: Profile) -> str:
    if p.task == "hf":
        return f"{p.hf_dataset} ({p.hf_config}), tokenizer {p.hf_tokenizer}"
    if p.task == "mqar":
        return f"MQAR, {p.mqar_num_kv} key-value pairs"
    if p.task == "battery":
        return "battery mixture (`BATTERY_TASKS`, docs/zoo.md)"
    return "bytes of the stdlib sources"


def _count(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 10**6 else f"{n / 1e3:.0f}k"


def profiles_table() -> str:
    """docs/profiles.md's table: one row per profile, every figure read from the profile."""
    head = ("| profile | params (DeltaNet) | layers x hidden / heads | vocab | data | seq x batch | steps | tokens "
            "| lr schedule | eval tasks |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    rows = []
    for name, p in PROFILES.items():
        tokens = p.hf_tokens or p.steps * p.tokens_per_step
        rows.append(f"| `{name}` | {_count(model_params(p))} | {p.num_layers} x {p.hidden_size} / {p.num_heads} "
                    f"| {p.vocab_size:,} | {_data(p)} | {p.seq_len} x {p.batch_size} | {p.steps:,} | {tokens:,} "
                    f"| {_lr(p)} | {', '.join(p.eval_tasks)} |")
    return "\n".join([head, *rows])


if __name__ == "__main__":
    print(profiles_table())
