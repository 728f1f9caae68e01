"""`archlab evaluate FILE`: a layer file through the lab's sanity checks, sandboxed training and evaluation,
next to zoo members, with the judge's fitness. Profile cpu-micro with few steps, to stay short."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from lab.tools.evaluate_file import evaluate_file
from lab.tools.validity import ZooCache
from lab.zoo import zoo_source

LEAK = "        B, T, _ = hidden_states.shape\n"
LEAK_LINE = "        hidden_states = hidden_states + hidden_states.mean(dim=1, keepdim=True)  # pools the future\n"


@pytest.mark.slow
def test_a_good_file_trains_in_the_sandbox_next_to_the_baseline(tmp_path):
    layer = tmp_path / "my_layer.py"
    layer.write_text(zoo_source("deltanet"))  # the baseline's own code: it must score exactly like the baseline
    stages = []
    result = evaluate_file(layer, profile="cpu-micro", seed=0, compare=["deltanet"], data_dir=tmp_path / "lab",
                           steps=30, progress=lambda name, update: stages.append((name, update.get("stage"))))
    assert result.rejected is None and result.ok, result
    assert result.checks["evidence"]["params"] > 0  # the checks ran (param budget evidence)
    assert [(r.name, r.source, r.ok) for r in result.rows] == [("my_layer.py", "file", True),
                                                              ("deltanet", "zoo", True)]
    mine, base = result.rows
    assert 0.0 <= mine.metrics["mqar_recall/acc"] <= 1.0 and mine.final_loss > 0
    assert mine.final_loss == base.final_loss and mine.benchmark == base.benchmark  # same code, same seed
    assert mine.fitness == pytest.approx(0.5) and base.fitness == pytest.approx(0.5)  # sigma(0) on each component
    assert ("my_layer.py", "checks") in stages and ("deltanet", "training") in stages
    # the zoo member's result is cached by code hash + profile + seed: a second evaluation reuses it
    cache = ZooCache(tmp_path / "lab" / "zoo-cache")
    assert cache.get(zoo_source("deltanet"), "cpu-micro", 0, {"steps": 30})["final_loss"] == base.final_loss


def test_a_future_leaking_file_is_rejected_with_the_causality_evidence(tmp_path):
    code = zoo_source("deltanet")
    assert LEAK in code
    layer = tmp_path / "leaky.py"
    layer.write_text(code.replace(LEAK, LEAK + LEAK_LINE, 1))
    from services.cli.main import app

    out = tmp_path / "result.json"
    res = CliRunner().invoke(app, ["evaluate", str(layer), "--profile", "cpu-micro", "--compare", "linear",
                                   "--data-dir", str(tmp_path / "lab"), "--json-out", str(out)])
    assert res.exit_code == 1, res.output
    assert "rejected by the sanity checks: causality" in res.output
    assert "information leaks from the future" in res.output
    rejected = json.loads(out.read_text())["rejected"]
    assert rejected["reason"] == "causality"
    assert rejected["evidence"]["position"] == 0 and rejected["evidence"]["max_abs_diff"] > 1e-3
    assert json.loads(out.read_text())["rows"] == []  # nothing trained


def test_a_file_breaking_the_shape_contract_is_rejected_with_the_shapes(tmp_path):
    code = zoo_source("deltanet")
    proj = "self.o_proj = nn.Linear(self.value_dim, hidden_size, bias=False)"
    assert proj in code
    layer = tmp_path / "narrow.py"
    layer.write_text(code.replace(proj, proj.replace("hidden_size,", "hidden_size // 2,")))
    result = evaluate_file(layer, profile="cpu-micro", compare=["linear"], data_dir=tmp_path / "lab")
    assert not result.ok and result.rows == []
    assert result.rejected["reason"] == "shape"
    assert "output shape (1, 67, 16) != input shape (1, 67, 32)" in result.rejected["feedback"]
    assert result.rejected["evidence"]["got"] == [1, 67, 16]


def test_unknown_zoo_member_or_profile_is_an_error_before_any_work(tmp_path):
    layer = tmp_path / "l.py"
    layer.write_text(zoo_source("deltanet"))
    with pytest.raises(KeyError, match="unknown zoo member"):
        evaluate_file(layer, compare=["nope"], data_dir=tmp_path)
    with pytest.raises(KeyError, match="unknown profile"):
        evaluate_file(layer, profile="cpu-huge", data_dir=tmp_path)
