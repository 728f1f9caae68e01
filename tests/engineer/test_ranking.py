"""The CPU proxy ranks architectures like the literature: softmax ~ DeltaNet >> linear attention.

MQAR at the DESIGN.md setting (seq 128, 32 key-value pairs, vocab 256, d=64, 2 layers, 1 head,
short conv, AdamW 3e-3, batch 64), trained by the project's own trainer and scored through
lm-eval. STEPS is the cheapest budget measured to still separate the three (see the engineer
report). The layers are the test-local programs (tests/engineer/programs): the zoo's DeltaNet is
several times slower on CPU (set ARCHLAB_RANKING_ZOO=1 to rank the zoo's programs instead).
"""
import os
import time

import pytest
import torch

from lab.training.evaluate import evaluate
from lab.training.profiles import get_profile
from lab.program import load_layer_class
from lab.training.runner import build_model, make_batch_fn
from lab.training.train import train
from tests.engineer.programs import source

STEPS = 500


def _program(name: str) -> str:
    if os.environ.get("ARCHLAB_RANKING_ZOO") == "1":
        from lab.zoo.registry import zoo_source
        return zoo_source(name)
    return source(name)


def _recall(name: str, tmp_path) -> tuple[float, float]:
    profile = get_profile("cpu-mqar", steps=STEPS, eval_tasks=("mqar_recall",), eval_examples=256)
    torch.manual_seed(0)
    model = build_model(load_layer_class(_program(name)), profile)
    t0 = time.perf_counter()
    train(model, profile, make_batch_fn(profile, seed=0), seed=0, device="cpu")
    result = evaluate(model, profile, tmp_path / name)
    elapsed = time.perf_counter() - t0
    print(f"{name}: mqar_recall {result.metrics['mqar_recall/acc']:.3f} in {elapsed:.0f} s")
    return result.metrics["mqar_recall/acc"], elapsed


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_mqar_ranks_softmax_and_deltanet_above_linear_attention(tmp_path):
    acc = {name: _recall(name, tmp_path)[0] for name in ("deltanet", "softmax", "linear")}
    assert acc["deltanet"] >= 0.95, acc
    assert acc["softmax"] >= 0.95, acc
    assert acc["linear"] <= min(acc["deltanet"], acc["softmax"]) - 0.15, acc
