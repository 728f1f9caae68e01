"""Profiles mean what they say: a name that promises a parameter count (explore-20m, verify-340m) holds it with
the profile's own tokenizer, by the model's own size formula, counted on the meta device (no 340M allocation)."""
from pathlib import Path

import pytest

from lab.training.profiles import PROFILES, get_profile
from lab.training.sizes import BASELINE, model_params, nominal_params, profiles_table
from lab.zoo.registry import ZOO

REPO = Path(__file__).resolve().parents[2]

SIZED = [name for name in PROFILES if nominal_params(name)]


def test_names_that_promise_a_size():
    assert nominal_params("explore-20m") == 20_000_000 and nominal_params("verify-340m") == 340_000_000
    assert nominal_params("cpu-tiny") is None and nominal_params("x-1.5m") == 1_500_000
    assert {"explore-20m", "verify-340m"} <= set(SIZED)


def test_the_meta_count_is_the_allocated_count():
    p = get_profile("cpu-bytes")
    from lab.program import load_layer_class
    from lab.training.runner import build_model
    from lab.zoo.registry import zoo_source
    assert model_params(p) == build_model(load_layer_class(zoo_source(BASELINE)), p).num_params() == 830_336


@pytest.mark.parametrize("name", SIZED)
def test_sized_profile_holds_its_name_with_its_tokenizer(name):
    p, nominal = get_profile(name), nominal_params(name)
    assert p.task == "hf" and p.hf_tokenizer == "gpt2" and p.vocab_size == 50257   # GPT-2's vocabulary
    n = model_params(p)
    assert abs(n - nominal) / nominal < 0.10, f"{name}: the baseline has {n:,} parameters"
    # every zoo member stays near the name and within the profile's refusal limit
    counts = {m: model_params(p, m) for m in ZOO}
    assert all(abs(c - nominal) / nominal < 0.15 and c <= p.max_params for c in counts.values()), counts
    # on a byte vocabulary the name would not hold (explore-20m: 6.4M): the tokenizer is part of the promise
    assert model_params(get_profile(name, vocab_size=256)) < 0.9 * nominal


def test_measured_counts():
    assert model_params("explore-20m") == 19_213_056
    assert model_params("verify-340m") == 354_120_704


def test_docs_table_matches_the_sized_profiles():
    doc = (REPO / "docs" / "profiles.md").read_text()
    rows = [r for r in profiles_table().splitlines() if any(r.startswith(f"| `{n}` ") for n in SIZED)]
    assert len(rows) == len(SIZED)
    for row in rows:
        assert row in doc, f"docs/profiles.md is stale: regenerate with `python -m lab.training.sizes`\n{row}"
