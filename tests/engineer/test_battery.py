"""The battery: every task's labels are answerable and scored, batches are reproducible, the score is the
token accuracy at the labelled positions, and evaluate() reports one metric per task."""
import pytest
import torch

from lab.training import battery as B
from lab.training.data import IGNORE


@pytest.mark.parametrize("task", B.TASKS)
def test_labels_are_the_next_token_and_every_row_is_marked(task):
    x, y = B.GENERATORS[task](6, 128, torch.Generator().manual_seed(1))
    assert x.shape == y.shape == (6, 128) and x.dtype == torch.long
    assert torch.all(x[:, 0] == B.MARKER[task]) and int(x.min()) >= 0 and int(x.max()) < 256
    labelled = y[:, :-1] != IGNORE
    assert labelled.sum(1).min() >= 4  # every row carries signal
    assert torch.equal(y[:, :-1][labelled], x[:, 1:][labelled])  # teacher forcing: the label is the next input


def _pairs(row, start, stop, width=1):
    toks = row[start:stop].tolist()
    step = 2 * width
    return {tuple(toks[i:i + width]): tuple(toks[i + width:i + step]) for i in range(0, len(toks), step)}


@pytest.mark.parametrize("task,width", [("recall", 1), ("fuzzy_recall", 2)])
def test_recall_queries_ask_for_the_value_stored_in_the_context(task, width):
    num_kv = 6
    x, y = B._FUNCTIONS[task](4, 128, torch.Generator().manual_seed(2), num_kv=num_kv)
    ctx = 2 * width * num_kv
    for row, lab in zip(x, y):
        memory = _pairs(row, 1, 1 + ctx, width)
        assert len(memory) == num_kv  # distinct keys
        queries = _pairs(row, 1 + ctx, 128, width)
        assert all(memory[k] == v for k, v in queries.items() if len(v) == width)


def test_noisy_recall_hides_pairs_among_noise_and_selective_copy_skips_blanks():
    x, _ = B._FUNCTIONS["noisy_recall"](3, 128, torch.Generator().manual_seed(3), num_kv=10, noise=20)
    ctx = x[:, 1:1 + 2 * 10 + 20]
    noise = (ctx >= B.NOISE[0]) & (ctx < B.NOISE[1])
    assert torch.all(noise.sum(1) == 20)
    x, y = B.GENERATORS["selective_copy"](3, 128, torch.Generator().manual_seed(3))
    for row, lab in zip(x, y):
        sep = int((row == B.SEP).nonzero()[0])
        data = [t for t in row[1:sep].tolist() if t != B.BLANK]
        assert lab[lab != IGNORE].tolist() == data


def test_batches_are_reproducible_and_the_eval_set_is_fixed():
    fn = B.battery_batch_fn(B.TASKS, seed=5, batch_size=20, seq_len=128)
    x1, y1 = fn(3)
    assert torch.equal(x1, fn(3)[0]) and torch.equal(y1, fn(3)[1])
    assert not torch.equal(x1, fn(4)[0])
    assert not torch.equal(x1, B.battery_batch_fn(B.TASKS, 6, 20, 128)(3)[0])
    assert sorted(B.rows_per_task(B.TASKS, 20)) == sorted([3] * 6 + [2])
    a, b = B.eval_set(B.TASKS, 128, 4), B.eval_set(B.TASKS, 128, 4)
    assert torch.equal(a.inputs, b.inputs) and a.inputs.shape == (4 * len(B.TASKS), 128)
    with pytest.raises(ValueError, match="unknown task"):
        B.battery_batch_fn(("recall", "nope"), 0, 8, 128)


def test_graded_tasks_split_rows_over_levels():
    x, y = B.GENERATORS["copy"](8, 128, torch.Generator().manual_seed(4))
    assert sorted((y != IGNORE).sum(1).tolist()) == [16, 16, 32, 32, 48, 48, 62, 62]
    with pytest.raises(ValueError, match="one varying size"):
        B.graded(B.recall, num_kv=(4, 8), noise=(0, 4))


def test_score_is_token_accuracy_per_task():
    es = B.eval_set(("recall", "copy"), 128, 3)
    perfect = B.score(es.labels.clone(), es)
    assert perfect == {"recall/acc": 1.0, "copy/acc": 1.0}
    preds = es.labels.clone()
    first = int((es.task_ids == 0).nonzero()[0])  # one recall sequence: half of its labels wrong
    where = (preds[first] != IGNORE).nonzero().flatten()
    preds[first, where[:len(where) // 2]] = 0  # token 0 is never a label
    s = B.score(preds, es)
    expected = (2 + (len(where) - len(where) // 2) / len(where)) / 3  # each sequence weighs the same
    assert s["copy/acc"] == 1.0 and s["recall/acc"] == pytest.approx(expected)


def test_evaluate_reports_each_task_and_the_mean(tmp_path):
    from lab.training.evaluate import evaluate
    from lab.training.profiles import get_profile
    from lab.training.runner import build_model
    from lab.zoo import zoo_source
    from lab.program import load_layer_class

    profile = get_profile("cpu-tiny", eval_examples=4)
    assert profile.task == "battery" and profile.eval_tasks == ("battery",)
    torch.manual_seed(0)
    model = build_model(load_layer_class(zoo_source("deltanet")), profile)
    result = evaluate(model, profile, tmp_path)
    assert set(result.metrics) == {f"{t}/acc" for t in profile.battery_tasks}
    assert all(0 <= v <= 1 for v in result.metrics.values())
    assert result.benchmark == pytest.approx(sum(result.metrics.values()) / len(result.metrics))
    assert result.metrics["recall/acc"] < 0.2  # untrained: near chance
