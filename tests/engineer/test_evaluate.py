import json
import math
from types import SimpleNamespace

import pytest
import torch

from lab.training import evaluate as ev
from lab.training.data import IGNORE
from lab.training.model import CausalLM
from lab.training.profiles import get_profile
from lab.training.runner import build_model, make_batch_fn
from lab.training.train import train
from tests.engineer.helpers import MixLayer, layer_class


@pytest.fixture(scope="module")
def micro_model():
    profile = get_profile("cpu-micro")
    torch.manual_seed(0)
    model = build_model(layer_class("deltanet"), profile)
    train(model, profile, make_batch_fn(profile, seed=0), seed=0, device="cpu")
    return profile, model


def test_lm_eval_mqar_metrics_match_a_direct_computation(micro_model, tmp_path):
    profile, model = micro_model
    result = ev.evaluate(model, profile, tmp_path)
    assert set(result.metrics) == {"mqar_recall/acc", "mqar_mc/acc"}
    recall = result.metrics["mqar_recall/acc"]
    assert recall > 0.4  # a trained DeltaNet recalls; chance is 1/32
    assert result.metrics["mqar_mc/acc"] > 0.4  # chance is 0.25
    assert result.benchmark == pytest.approx((recall + result.metrics["mqar_mc/acc"]) / 2)
    # the same accuracy computed without lm-eval, from the JSONL it was given
    docs = [json.loads(line) for line in (tmp_path / "lmeval_tasks" / "mqar_recall.jsonl").read_text().splitlines()]
    assert len(docs) == profile.eval_examples
    sym = ev.SymbolTokenizer()
    hits = 0
    with torch.no_grad():
        for d in docs:
            ids = sym.encode(d["context"])
            hits += int(model(torch.tensor([ids]))[0][0, -1].argmax()) == sym.encode(d["target"])[0]
    assert recall == pytest.approx(hits / len(docs))
    assert model.training  # evaluation restores the mode


def test_mqar_docs_are_the_generator_queries():
    profile = get_profile("cpu-micro")
    recall, mc = ev._mqar_docs(profile, 20)
    sym = ev.SymbolTokenizer()
    for r, m in zip(recall, mc):
        ctx, value = sym.encode(r["context"]), sym.encode(r["target"])[0]
        pairs = dict(zip(ctx[0:2 * profile.mqar_num_kv:2], ctx[1:2 * profile.mqar_num_kv:2]))
        assert pairs[ctx[-1]] == value  # the context ends with a query key whose value is the target
        assert m["context"] == r["context"] and m["choices"][m["answer"]] == r["target"]
        assert len(set(m["choices"])) == 4


def test_loglikelihood_and_rolling_are_exact_log_probs():
    torch.manual_seed(0)
    model = CausalLM(MixLayer, 256, 16, 1, 1)
    lm = ev.ArchlabLM(model, ev.ByteTokenizer(), max_len=64, batch_size=3)
    reqs = [SimpleNamespace(args=("def f(x):", " return x")), SimpleNamespace(args=("a", "b")),
            SimpleNamespace(args=("", "xyz"))]
    out = lm.loglikelihood(reqs)
    with torch.no_grad():
        for (ctx, cont), (lp, greedy) in zip([r.args for r in reqs], out):
            ids = list((ctx or "\n").encode()) + list(cont.encode())
            logp = torch.log_softmax(model(torch.tensor([ids[:-1]]))[0][0], -1)
            n = len(cont.encode())
            expected = sum(logp[len(ids) - 1 - n + i, ids[len(ids) - n + i]].item() for i in range(n))
            assert lp == pytest.approx(expected, rel=1e-5)
            assert isinstance(greedy, bool)
    text = "x = 1\n" * 30  # 180 bytes: three windows of 64
    rolled = lm.loglikelihood_rolling([SimpleNamespace(args=(text,))])[0]
    assert rolled < 0 and math.isfinite(rolled)
    short = lm.loglikelihood_rolling([SimpleNamespace(args=("hello",))])[0]
    assert short == pytest.approx(lm.loglikelihood([SimpleNamespace(args=("", "hello"))])[0][0], rel=1e-5)
    gen = lm.generate_until([SimpleNamespace(args=("abc", {"until": ["\n"], "max_gen_toks": 5}))])
    assert isinstance(gen[0], str) and "\n" not in gen[0]


def test_byte_tasks_report_bits_per_byte_and_accuracy(tmp_path):
    profile = get_profile("cpu-bytes", hidden_size=16, num_layers=1, num_heads=1, eval_examples=16, seq_len=128)
    model = CausalLM(MixLayer, 256, 16, 1, 1)
    with torch.no_grad():
        model.embed.weight.zero_()  # uniform predictions: exactly 8 bits per byte
    result = ev.evaluate(model, profile, tmp_path)
    assert result.metrics["bytes_bpb/bits_per_byte"] == pytest.approx(8.0, abs=1e-3)
    assert 0.0 <= result.metrics["stdlib_mc/acc"] <= 1.0
    assert result.benchmark == result.metrics["stdlib_mc/acc"]  # bpb is not an accuracy
    docs = [json.loads(x) for x in (tmp_path / "lmeval_tasks" / "bytes_bpb.jsonl").read_text().splitlines()]
    assert len(docs) == 16 and all(len(d["text"]) == 1024 and d["text"].isascii() for d in docs)


def test_standard_task_names_pass_through_to_lm_eval(monkeypatch, tmp_path):
    seen = {}

    def fake_simple_evaluate(model, tasks, task_manager, **kw):
        seen["tasks"] = tasks
        return {"results": {"arc_easy": {"acc,none": 0.5, "acc_stderr,none": 0.01},
                            "mqar_recall": {"acc,none": 0.25}}}

    import lm_eval
    import lm_eval.tasks
    monkeypatch.setattr(lm_eval, "simple_evaluate", fake_simple_evaluate)
    monkeypatch.setattr(lm_eval.tasks, "TaskManager", lambda **kw: kw)  # indexing every standard task is slow
    profile = get_profile("cpu-micro", eval_tasks=("mqar_recall", "arc_easy"), eval_examples=4)
    result = ev.evaluate(CausalLM(MixLayer, 64, 8, 1, 1), profile, tmp_path)
    assert seen["tasks"] == ["mqar_recall", "arc_easy"]
    assert result.metrics == {"arc_easy/acc": 0.5, "mqar_recall/acc": 0.25}
    assert result.benchmark == pytest.approx(0.375)
