import pytest
import torch

from lab.training import data
from lab.training.data import IGNORE


def test_batches_are_a_function_of_seed_and_step():
    fn = data.mqar_batch_fn(seed=3, batch_size=8, seq_len=64, num_kv=8, vocab=64)
    x1, y1 = fn(5)
    x2, y2 = data.mqar_batch_fn(3, 8, 64, 8, 64)(5)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(fn(6)[0], x1)
    assert not torch.equal(data.mqar_batch_fn(4, 8, 64, 8, 64)(5)[0], x1)


def test_mqar_label_semantics():
    n, T, kv, V = 16, 128, 32, 256
    x, y = data.mqar(n, T, kv, V, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (n, T)
    for row_x, row_y in zip(x.tolist(), y.tolist()):
        keys, values = row_x[0:2 * kv:2], row_x[1:2 * kv:2]
        assert len(set(keys)) == kv and all(1 <= k < V // 2 for k in keys)
        assert len(set(values)) == kv and all(V // 2 <= v < V for v in values)
        assert all(lab == IGNORE for lab in row_y[:2 * kv])  # first occurrences: nothing to predict
        queries = [(t, lab) for t, lab in enumerate(row_y) if lab != IGNORE]
        assert len(queries) == kv  # every key is queried once
        pairs = dict(zip(keys, values))
        for t, lab in queries:
            assert lab == pairs[row_x[t]]  # the label at a query key is its value from the prefix


def test_byte_corpus_split_is_deterministic_and_disjoint():
    corpus = data.load_byte_corpus()
    assert len(corpus.train) > 3_000_000 and len(corpus.heldout) > 50_000
    assert 0.02 < len(corpus.heldout) / (len(corpus.train) + len(corpus.heldout)) < 0.15
    assert corpus.train.dtype == torch.uint8
    train_bytes = bytes(corpus.train[:2_000_000].tolist())
    for doc in corpus.heldout_docs[:5]:
        assert doc[:200] not in train_bytes or len(doc) < 200
    assert data._is_heldout("os.py") == data._is_heldout("os.py")


def test_window_batches_are_shifted_windows():
    tokens = torch.arange(1000) % 256
    x, y = data.window_batch_fn(tokens, seed=0, batch_size=4, seq_len=16)(7)
    assert x.shape == y.shape == (4, 16) and x.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])
    assert torch.equal(y[:, -1], (x[:, -1] + 1) % 256)


def test_hf_corpus_offline_gives_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(data.DataUnavailable, match="fineweb"):
        data.load_hf_tokens("HuggingFaceFW/fineweb-edu-not-cached", None, "gpt2", 1000)
