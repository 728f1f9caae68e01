"""Training and evaluation data: MQAR (synthetic recall), a byte corpus from Python's own
files, and an optional Hugging Face corpus.

Every batch is a pure function of (seed, step): resuming at step k needs no data-loader
state, and two runs with the same seed see the same batches.
"""
from __future__ import annotations

import glob
import os
import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import torch

IGNORE = -100  # label of positions that carry no loss

Batch = tuple[torch.Tensor, torch.Tensor]  # (input ids [B, T], labels [B, T])
BatchFn = Callable[[int], Batch]  # step -> batch


def step_generator(seed: int, step: int, stream: int = 0) -> torch.Generator:
    """A generator seeded by (seed, step, stream) so that batch `step` is reproducible alone."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 31 + stream)


# ---------------- MQAR (Zoology, Arora et al. 2023) ----------------

def mqar(n: int, seq_len: int, num_kv: int, vocab: int, gen: torch.Generator,
         power_a: float = 0.01) -> Batch:
    """Multi-query associative recall, the Zoology generator.

    A sequence starts with `num_kv` key-value pairs (keys from [1, vocab/2), values from
    [vocab/2, vocab)); then each key is queried once at a position drawn from a power law
    over the remaining space, with random noise tokens in between. Labels are IGNORE
    everywhere except at a query key, whose label is its value. Every query is answerable
    from the prefix; what no causal model can predict is the first occurrence of each pair.
    """
    ctx = 2 * num_kv
    if seq_len < 4 * num_kv or vocab // 2 - 1 < num_kv:
        raise ValueError(f"mqar: seq_len {seq_len} / vocab {vocab} too small for {num_kv} pairs")
    kv_half = vocab // 2
    keys = torch.argsort(torch.rand(n, kv_half - 1, generator=gen), 1)[:, :num_kv] + 1
    values = torch.argsort(torch.rand(n, vocab - kv_half, generator=gen), 1)[:, :num_kv] + kv_half
    kvs = torch.stack([keys, values], 2).reshape(n, ctx)
    space = (seq_len - ctx) // 2
    p = power_a * torch.arange(1, space + 1, dtype=torch.float64) ** (power_a - 1)
    gaps = torch.multinomial((p / p.sum()).expand(n, space), num_kv, replacement=False, generator=gen)
    queries = torch.zeros(n, seq_len - ctx + 1, dtype=torch.long)
    queries.scatter_(1, gaps * 2, keys)
    full = torch.cat([kvs, queries], 1)
    labels = torch.full((n, seq_len + 1), IGNORE, dtype=torch.long)
    labels.scatter_(1, gaps * 2 + ctx + 1, values)
    inputs, labels = full[:, :-1].clone(), labels[:, 1:].clone()
    noise = torch.randint(vocab, inputs.shape, generator=gen)
    inputs[inputs == 0] = noise[inputs == 0]
    return inputs, labels


def mqar_batch_fn(seed: int, batch_size: int, seq_len: int, num_kv: int, vocab: int) -> BatchFn:
    return lambda step: mqar(batch_size, seq_len, num_kv, vocab, step_generator(seed, step))


# ---------------- byte corpus from text shipped with Python ----------------

@dataclass(frozen=True)
class ByteCorpus:
    train: torch.Tensor  # uint8 [N]
    heldout: torch.Tensor  # uint8 [M]
    heldout_docs: tuple[bytes, ...]  # the held-out documents, whole (for evaluation tasks)


def _is_heldout(name: str, every: int = 20) -> bool:
    """Deterministic document-level split (~5% held out), stable across runs and machines."""
    return zlib.crc32(name.encode()) % every == 0


@lru_cache(maxsize=1)
def load_byte_corpus() -> ByteCorpus:
    """The standard library's top-level .py sources (~4.5 MB) and pydoc_data.topics (~465 kB
    of English prose), split by document so no held-out file is partly seen in training."""
    import pydoc_data.topics

    docs: list[tuple[str, bytes]] = []
    for path in sorted(glob.glob(os.path.join(os.path.dirname(os.__file__), "*.py"))):
        with open(path, "rb") as f:
            docs.append((os.path.basename(path), f.read()))
    for key in sorted(pydoc_data.topics.topics):
        docs.append((f"topic:{key}", pydoc_data.topics.topics[key].encode("utf-8")))
    train = b"".join(d for n, d in docs if not _is_heldout(n))
    held = [d for n, d in docs if _is_heldout(n)]
    as_tensor = lambda b: torch.frombuffer(bytearray(b), dtype=torch.uint8)  # noqa: E731
    return ByteCorpus(as_tensor(train), as_tensor(b"".join(held)), tuple(held))


def window_batch_fn(tokens: torch.Tensor, seed: int, batch_size: int, seq_len: int) -> BatchFn:
    """Random contiguous windows; labels are the inputs shifted by one."""
    def batch(step: int) -> Batch:
        starts = torch.randint(len(tokens) - seq_len - 1, (batch_size,), generator=step_generator(seed, step))
        chunk = torch.stack([tokens[s:s + seq_len + 1] for s in starts.tolist()]).long()
        return chunk[:, :-1], chunk[:, 1:]
    return batch


# ---------------- optional Hugging Face corpus ----------------

class DataUnavailable(RuntimeError):
    """A configured dataset or tokenizer cannot be loaded (offline, not cached, not installed)."""


def load_hf_tokens(dataset: str, config: str | None, tokenizer: str, max_tokens: int,
                   split: str = "train", text_field: str = "text") -> torch.Tensor:
    """Stream `dataset` and tokenize until `max_tokens` tokens (a GPU-box path; needs the hub
    or a local cache)."""
    try:
        import datasets
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(tokenizer)
        stream = datasets.load_dataset(dataset, config, split=split, streaming=True)
    except Exception as e:  # offline, missing cache, missing package: all the same to the caller
        offline = os.environ.get("HF_DATASETS_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1"
        hint = " (HF_DATASETS_OFFLINE/HF_HUB_OFFLINE are set)" if offline else ""
        raise DataUnavailable(f"cannot load dataset {dataset!r}/{config!r} with tokenizer {tokenizer!r}{hint}: "
                              f"{type(e).__name__}: {e}. Use a 'bytes' profile offline.") from e
    ids: list[int] = []
    for row in stream:
        ids.extend(tok(row[text_field])["input_ids"] + [tok.eos_token_id or 0])
        if len(ids) >= max_tokens:
            break
    return torch.tensor(ids[:max_tokens], dtype=torch.long)
