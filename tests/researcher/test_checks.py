"""Sanity checks: static vetting and the sandboxed dynamic checks, each with its reason and feedback."""
import pytest

from lab.checks import SanityChecker, static_check
from lab.program import code_hash
from services.researcher.codegen import render
from services.researcher.genome import ZOO_DESIGNS
from tests.researcher import bad_programs as bad


@pytest.mark.parametrize("code, reason", [
    (bad.IMPORTS_OS, "forbidden_import"), (bad.IMPORTS_SOCKET, "forbidden_import"),
    (bad.CALLS_EVAL, "forbidden_import"), (bad.CALLS_DUNDER_IMPORT, "forbidden_import"),
    (bad.SYNTAX_ERROR, "syntax"), (bad.NO_CLASS, "build"),
])
def test_static_check_rejects(code, reason):
    out = static_check(code)
    assert not out.ok and out.reason == reason and out.feedback


def test_static_check_accepts_rendered_programs():
    for name, design in ZOO_DESIGNS.items():
        assert static_check(render(design, name)).ok, name


def test_dynamic_checks_reject_each_bad_layer_with_its_reason():
    programs = {"causality": bad.FUTURE_LEAK, "complexity": bad.QUADRATIC, "shape": bad.SHAPE_DEPENDENT,
                "shape-batch": bad.BATCH_MIXING, "shape-out": bad.WRONG_OUTPUT_SHAPE, "build": bad.BUILD_ERROR,
                "ok": render(ZOO_DESIGNS["gated_deltanet"], "gdn")}
    outcomes = dict(zip(programs, SanityChecker(repeats=1).check_many(list(programs.values()))))
    assert outcomes["ok"].ok, outcomes["ok"].feedback
    for key, outcome in outcomes.items():
        if key == "ok":
            continue
        assert not outcome.ok and outcome.reason == key.split("-")[0], (key, outcome.reason, outcome.feedback)
    assert "future" in outcomes["causality"].feedback and outcomes["causality"].evidence["max_abs_diff"] > 1e-3
    exps = outcomes["complexity"].evidence["exponents"]
    assert exps["max_numel"] > 1.8 and exps["flops"] > 1.5  # counted, so robust to a noisy machine
    assert "length 67" in outcomes["shape"].feedback
    assert "batch" in outcomes["shape-batch"].feedback
    ok_exps = outcomes["ok"].evidence["complexity"]["exponents"]
    assert ok_exps["flops"] < 1.1 and ok_exps["max_numel"] < 1.1
    assert set(outcomes["ok"].timings) == {"build", "param_budget", "shape", "causality", "complexity", "flops"}
    assert outcomes["ok"].evidence["flops_per_token"] > outcomes["ok"].evidence["params"]   # the whole model, counted


def test_param_budget_is_enforced():
    code = render({**ZOO_DESIGNS["deltanet"], "expand_v": 2}, "big")
    huge = code.replace("self.head_k_dim * 2", "self.head_k_dim * 64")
    out, out_huge = SanityChecker(repeats=1).check_many([code, huge], profile="cpu-micro")
    assert out.ok and out.evidence["params"] < 200_000
    assert not out_huge.ok and out_huge.reason == "param_budget" and out_huge.evidence["params"] > 200_000


def test_normalized_hash_ignores_comments_docstrings_and_names():
    a = render(ZOO_DESIGNS["deltanet"], "first-name", "one motivation")
    b = render(ZOO_DESIGNS["deltanet"], "other-name", "a different motivation") \
        .replace("q_proj", "query_projection").replace("# feature map", "# features!")
    assert code_hash(a) == code_hash(b)
    c = render({**ZOO_DESIGNS["deltanet"], "head_mix": True}, "first-name", "one motivation")
    assert code_hash(a) != code_hash(c)


def test_a_runtime_violation_is_blamed_on_its_program_only():
    good = render(ZOO_DESIGNS["retnet"], "retnet")
    outcomes = SanityChecker(repeats=1).check_many([good, bad.WRITES_FILE, good], profile="cpu-micro")
    assert [o.ok for o in outcomes] == [True, False, True]
    assert outcomes[1].reason == "forbidden_import" and "outside the scratch" in outcomes[1].feedback


def test_a_triangular_solve_counts_the_same_flops_posed_from_either_side():
    """The codegen's delta kernel solves from the right (left=False, on the transposes): n^2 m FLOPs for m right-hand
    sides either way, so a candidate's FLOPs/token does not depend on how its solve is posed."""
    import torch

    from lab.checks_child import TensorMeter

    a = torch.eye(8).expand(3, 8, 8) + torch.randn(3, 8, 8).tril(-1)
    rhs = torch.randn(3, 8, 5)                     # 5 right-hand sides
    counts = []
    for left in (True, False):
        with TensorMeter() as meter:
            if left:
                x = torch.linalg.solve_triangular(a, rhs, upper=False)
            else:
                x = torch.linalg.solve_triangular(a.mT, rhs.mT, upper=True, left=False).mT
        counts.append(meter.flops)
        assert torch.allclose(a @ x, rhs, atol=1e-4)
    assert counts == [3 * 8 * 8 * 5] * 2
