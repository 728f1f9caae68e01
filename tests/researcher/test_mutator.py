"""The offline proposer: varied, distinct, motivated children that pass the sanity checks."""
import random

import pytest

from lab.checks import SanityChecker
from lab.program import code_hash
from services.researcher.codegen import render
from services.researcher.genome import ZOO_DESIGNS, canonical
from services.researcher.mutator import mutate


def campaign_like_proposals(n: int, seed: int = 0):
    """n proposals as a campaign makes them: parents and references drawn from a growing population."""
    rng = random.Random(seed)
    population = [dict(d) for d in ZOO_DESIGNS.values()]
    out = []
    for i in range(n):
        parent = rng.choice(population)
        refs = rng.sample(population, min(4, len(population)))
        design, name, motivation = mutate(parent, refs, seed * 1000 + i, [])
        out.append((parent, design, name, motivation))
        population.append(design)
    return out


def test_mutate_is_deterministic_and_varies_with_seed_and_parent():
    a = mutate(ZOO_DESIGNS["deltanet"], [], 1, [])
    assert a == mutate(ZOO_DESIGNS["deltanet"], [], 1, [])
    assert len({mutate(ZOO_DESIGNS["deltanet"], [], s, [])[1] for s in range(10)}) >= 8
    assert mutate(ZOO_DESIGNS["gla"], [], 1, [])[1] != a[1]


def test_child_edits_one_or_two_genes_and_motivation_says_why():
    for parent, design, name, motivation in campaign_like_proposals(40, seed=3):
        assert canonical(parent) != design
        assert 1 <= motivation.count(" -> ") <= 2  # each edit is stated as "gene: old -> new"
        assert "Resulting design:" in motivation and len(motivation) > 80
        assert "expect" in motivation.lower()  # every change states its expected effect


def test_unknown_parent_starts_from_deltanet_and_says_so():
    design, name, motivation = mutate(None, [None], 5, [])
    assert "starts from the DeltaNet genome" in motivation
    assert design != canonical(ZOO_DESIGNS["deltanet"])


def test_crossover_borrows_a_gene_from_a_reference():
    borrowed = [m for s in range(60) for m in [mutate(ZOO_DESIGNS["deltanet"], [ZOO_DESIGNS["mamba2"]], s, [])[2]]
                if "borrowed from reference 1" in m]
    assert len(borrowed) >= 5


def test_feedback_naming_a_duplicate_is_avoided():
    design, name, _ = mutate(ZOO_DESIGNS["deltanet"], [], 7, [])
    again, other, _ = mutate(ZOO_DESIGNS["deltanet"], [], 7, [f"[duplicate] {name}: DUPLICATE of experiment x"])
    assert other != name and again != design


@pytest.mark.slow
def test_100_proposals_are_distinct_and_pass_the_checks_in_one_sandbox():
    proposals = campaign_like_proposals(100)
    codes = [render(d, n, m) for _, d, n, m in proposals]
    assert len({code_hash(c) for c in codes}) >= 90
    outcomes = SanityChecker(repeats=1).check_many(codes)
    passed = [o for o in outcomes if o.ok]
    failures = [(o.reason, o.feedback[:200]) for o in outcomes if not o.ok]
    assert len(passed) >= 90, failures
    distinct_passed = {code_hash(c) for c, o in zip(codes, outcomes) if o.ok}
    assert len(distinct_passed) >= 90


@pytest.mark.parametrize("memory,decay", [("gated_delta", "mamba_dt"), ("mamba2", "mamba_dt"),
                                          ("gated_delta", "logsigmoid"), ("mamba2", "logsigmoid")])
def test_scalar_decays_start_with_the_zoos_spread_init(memory, decay):
    """Head 0 forgets at 1e-3 per token (a memory of ~1000 tokens), the last head at the papers' fastest rate,
    whatever the random state: the zoo's fix of the random init that left one-head models in a plateau."""
    import torch
    import torch.nn.functional as F

    from lab.program import load_layer_class
    cls = load_layer_class(render({"memory": memory, "decay": decay}, "x"), "DeltaNet")
    for heads, last in ((1, 1e-3), (4, 1.6 if decay == "mamba_dt" else 0.1)):
        torch.manual_seed(heads)
        m = cls(hidden_size=64, num_heads=heads, layer_idx=0)
        rate = (m.A_log.exp() * F.softplus(m.dt_bias) if decay == "mamba_dt" else -F.logsigmoid(m.a_proj.bias))
        assert rate[0].item() == pytest.approx(1e-3, rel=0.01)
        assert rate[-1].item() == pytest.approx(last, rel=0.06)
        assert torch.all(rate[1:] > rate[:-1])
