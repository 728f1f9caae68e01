"""A battery of synthetic capabilities plus a byte-level LM, trained as one mixture (the `battery` task).

In the spirit of MAD (Poli et al. 2024, "Mechanistic Design and Scaling of Hybrid Architectures",
arXiv 2403.17844): each task isolates one capability a token mixer needs, and each reports a continuous
score (token accuracy at its labelled positions, averaged over sequences). One model is trained on a mixture of every task
(each batch holds rows of each task; a marker token at position 0 names the task), so a candidate costs
one training run, not one per task. The benchmark is the mean of the task scores.

Tasks (all sequences have the profile's `seq_len`; vocabulary 256, shared with the bytes):
- recall            in-context recall (MQAR-like): key-value pairs, then queries `k v` of those keys;
                    labels at the queried values. Many pairs for the state size: capacity matters.
- fuzzy_recall      keys and values of 2 tokens each over a small key alphabet: a value is found only
                    by matching a token pair (MAD's fuzzy recall, fixed lengths).
- noisy_recall      recall with noise tokens scattered between the pairs (MAD's noisy recall).
- selective_copy    data tokens scattered among blanks, then a separator, then the data tokens in order
                    (MAD's selective copying).
- copy              a random sequence, a separator, the same sequence again (the causal stand-in for
                    MAD's compression: the whole prefix must survive in the state).
- memorize          a fixed key -> value table (the same for every run): sequences of `k v` pairs, labels
                    at the values (MAD's memorization: parametric memory, not context).
- bytes             byte-level LM on the stdlib's text (data.load_byte_corpus); score = next-byte accuracy
                    on held-out text the program cannot read (lab/training/heldout.py; the language-modelling
                    signal).

Token layout: 1..8 task markers, 14 separator, 15 blank, 16..31 noise, 32..127 keys, 128..255 values.
Text bytes use the whole range; ASCII text never contains bytes 1..8 or 14..31, so the marker always
names the task.

Every training batch is a pure function of (seed, step) as in data.py; the evaluation set is drawn from the
campaign's secret seed (EVAL_SEED outside a campaign), so scores of one campaign are comparable across its
experiments and a program cannot regenerate them. `eval_set` + `score` are pure
(inputs -> labels; predictions -> scores), so a trusted process can score predictions computed elsewhere.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from lab.training.data import IGNORE, Batch, BatchFn, load_byte_corpus, step_generator

SEP, BLANK = 14, 15
NOISE = (16, 32)
KEYS = (32, 128)
VALUES = (128, 256)
EVAL_SEED = 24680

TASKS = ("recall", "fuzzy_recall", "noisy_recall", "selective_copy", "copy", "memorize", "bytes")
MARKER = {t: i + 1 for i, t in enumerate(TASKS)}


def _distinct(n: int, k: int, lo: int, hi: int, gen: torch.Generator) -> torch.Tensor:
    """[n, k] distinct tokens per row from [lo, hi)."""
    return torch.argsort(torch.rand(n, hi - lo, generator=gen), 1)[:, :k] + lo


def _rows(n: int, T: int, task: str) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.full((n, T), BLANK, dtype=torch.long)
    x[:, 0] = MARKER[task]
    return x, torch.full((n, T), IGNORE, dtype=torch.long)


def _queries(x, y, pos: int, keys: torch.Tensor, values: torch.Tensor, n_q: int, gen: torch.Generator) -> None:
    """Write n_q queries `key value` (keys drawn from the row's pairs, labels at the values) from `pos` on.
    keys/values: [n, P, W] (W tokens per key and per value)."""
    n, P, W = keys.shape
    pick = torch.randint(P, (n, n_q), generator=gen)
    rows = torch.arange(n)[:, None]
    qk, qv = keys[rows, pick], values[rows, pick]  # [n, n_q, W]
    block = torch.cat([qk, qv], 2).reshape(n, n_q * 2 * W)
    x[:, pos:pos + block.shape[1]] = block
    lab = torch.full_like(block, IGNORE).reshape(n, n_q, 2 * W)
    lab[:, :, W:] = qv
    # the label of position t is the token at t + 1: the value token is predicted at the position before it
    y[:, pos - 1:pos - 1 + block.shape[1]] = lab.reshape(n, -1)


def recall(n: int, T: int, gen: torch.Generator, num_kv: int = 40, noise: int = 0, n_keys: int = 96,
           n_values: int = 128, task: str = "recall") -> Batch:
    x, y = _rows(n, T, task)
    keys = _distinct(n, num_kv, KEYS[0], KEYS[0] + n_keys, gen)[..., None]
    values = torch.randint(VALUES[0], VALUES[0] + n_values, (n, num_kv, 1), generator=gen)
    pairs = torch.cat([keys, values], 2)  # [n, P, 2]
    ctx = 2 * num_kv + noise
    if noise:  # pairs stay contiguous; noise tokens fill `noise` random gaps between them
        slots = torch.rand(n, num_kv + noise, generator=gen).argsort(1)
        is_pair = slots < num_kv  # num_kv True per row, in random places
        for i in range(n):
            seq, order = [], iter(pairs[i].tolist())
            noise_tok = torch.randint(*NOISE, (noise,), generator=gen).tolist()
            for flag in is_pair[i].tolist():
                seq.extend(next(order) if flag else [noise_tok.pop()])
            x[i, 1:1 + ctx] = torch.tensor(seq)
    else:
        x[:, 1:1 + ctx] = pairs.reshape(n, -1)
    n_q = (T - 1 - ctx) // 2
    _queries(x, y, 1 + ctx, keys, values, n_q, gen)
    return x, y


def noisy_recall(n: int, T: int, gen: torch.Generator, num_kv: int = 24, noise: int = 24, **kw) -> Batch:
    return recall(n, T, gen, num_kv=num_kv, noise=noise, task="noisy_recall", **kw)


def fuzzy_recall(n: int, T: int, gen: torch.Generator, num_kv: int = 16, alphabet: int = 12,
                 n_values: int = 128) -> Batch:
    x, y = _rows(n, T, "fuzzy_recall")
    # distinct 2-token keys over a small alphabet: each token alone is ambiguous, the pair is not
    codes = _distinct(n, num_kv, 0, alphabet * alphabet, gen)
    keys = torch.stack([codes // alphabet, codes % alphabet], 2) + KEYS[0]
    values = torch.randint(VALUES[0], VALUES[0] + n_values, (n, num_kv, 2), generator=gen)
    ctx = 4 * num_kv
    x[:, 1:1 + ctx] = torch.cat([keys, values], 2).reshape(n, -1)
    _queries(x, y, 1 + ctx, keys, values, (T - 1 - ctx) // 4, gen)
    return x, y


def selective_copy(n: int, T: int, gen: torch.Generator, num_data: int = 24, span: int = 80,
                   n_values: int = 128) -> Batch:
    x, y = _rows(n, T, "selective_copy")
    data = torch.randint(VALUES[0], VALUES[0] + n_values, (n, num_data), generator=gen)
    where = torch.sort(_distinct(n, num_data, 0, span, gen), 1).values + 1
    x.scatter_(1, where, data)
    out = span + 2  # separator at span + 1
    x[:, span + 1] = SEP
    x[:, out:out + num_data] = data
    y[:, out - 1:out - 1 + num_data] = data
    return x, y


def copy(n: int, T: int, gen: torch.Generator, length: int = 40, n_values: int = 224) -> Batch:
    x, y = _rows(n, T, "copy")
    data = torch.randint(KEYS[0], KEYS[0] + n_values, (n, length), generator=gen)
    x[:, 1:1 + length] = data
    x[:, 1 + length] = SEP
    x[:, 2 + length:2 + 2 * length] = data
    y[:, 1 + length:1 + 2 * length] = data
    return x, y


MEMORY_SEED = 97531  # the memorization table is the same for every run and seed


def memory_table(size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(MEMORY_SEED)
    keys = torch.randperm(KEYS[1] - KEYS[0], generator=gen)[:size] + KEYS[0]
    values = torch.randint(*VALUES, (size,), generator=gen)
    return keys, values


def memorize(n: int, T: int, gen: torch.Generator, size: int = 64) -> Batch:
    x, y = _rows(n, T, "memorize")
    keys, values = memory_table(size)
    n_q = (T - 1) // 2
    pick = torch.randint(size, (n, n_q), generator=gen)
    x[:, 1:1 + 2 * n_q] = torch.stack([keys[pick], values[pick]], 2).reshape(n, -1)
    y[:, 1:1 + 2 * n_q:2] = values[pick]
    return x, y


def _byte_rows(tokens: torch.Tensor, n: int, T: int, gen: torch.Generator) -> Batch:
    x, y = _rows(n, T, "bytes")
    starts = torch.randint(len(tokens) - T, (n,), generator=gen).tolist()
    chunk = torch.stack([tokens[s:s + T] for s in starts]).long()  # T bytes: T - 1 inputs + the last label
    x[:, 1:] = chunk[:, :-1]
    y[:, :] = chunk  # position 0 (the marker) predicts the first byte
    return x, y


def text_bytes(n: int, T: int, gen: torch.Generator) -> Batch:
    return _byte_rows(load_byte_corpus().train, n, T, gen)


def heldout_bytes(n: int, T: int, gen: torch.Generator) -> Batch:
    from lab.training.heldout import heldout_tokens  # staged under the data dir, out of the sandbox's view
    return _byte_rows(heldout_tokens(), n, T, gen)


# the sizes of the default battery (sequence 128, d 64, one head): chosen so that softmax attention learns every
# task within the profile's steps while the recurrent mixers' fixed-size state leaves room (docs/zoo.md)
SIZES: dict[str, dict] = {
    "recall": {"num_kv": (8, 24, 40, 56), "n_keys": 96, "n_values": 128},
    "fuzzy_recall": {"num_kv": (4, 8, 12, 16), "alphabet": 8, "n_values": 64},
    "noisy_recall": {"num_kv": (8, 20, 32), "noise": 24, "n_keys": 96, "n_values": 128},
    "selective_copy": {"num_data": (4, 8, 16), "span": 64, "n_values": 32},
    "copy": {"length": (16, 32, 48, 62), "n_values": 224},
    "memorize": {"size": 64},
    "bytes": {},
}
_FUNCTIONS = {"recall": recall, "fuzzy_recall": fuzzy_recall, "noisy_recall": noisy_recall,
              "selective_copy": selective_copy, "copy": copy, "memorize": memorize, "bytes": text_bytes}


def graded(fn, **sizes):
    """`fn` with fixed sizes, except one size given as a tuple: the rows are split evenly over its values
    (easy rows give every mixer a gradient to start from, hard rows measure its capacity: a continuous score)."""
    varying = [k for k, v in sizes.items() if isinstance(v, tuple)]
    if not varying:
        return functools.partial(fn, **sizes)
    if len(varying) > 1:
        raise ValueError(f"graded: one varying size at a time, got {varying}")
    key, levels = varying[0], sizes[varying[0]]

    def generate(n: int, T: int, gen: torch.Generator) -> Batch:
        parts = [fn(k, T, gen, **{**sizes, key: level}) for level, k in zip(levels, rows_per_task(levels, n)) if k]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    return generate


GENERATORS = {t: graded(f, **SIZES[t]) for t, f in _FUNCTIONS.items()}
EVAL_GENERATORS = {**GENERATORS, "bytes": heldout_bytes}


def rows_per_task(tasks: tuple[str, ...], batch_size: int) -> list[int]:
    """Split a batch over tasks as evenly as possible (the first tasks take the remainder)."""
    base, extra = divmod(batch_size, len(tasks))
    return [base + (i < extra) for i in range(len(tasks))]


def check_tasks(tasks: tuple[str, ...]) -> None:
    unknown = [t for t in tasks if t not in GENERATORS]
    if unknown or not tasks:
        raise ValueError(f"battery: unknown task(s) {unknown or '(none)'}; valid: {', '.join(TASKS)}")


def make_batch(tasks: tuple[str, ...], n_per_task: list[int], T: int, seed: int, step: int,
               generators: dict = GENERATORS) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(inputs [B, T], labels [B, T], task index [B]) with n_per_task[i] rows of tasks[i]."""
    xs, ys, ids = [], [], []
    for i, (task, n) in enumerate(zip(tasks, n_per_task)):
        if n <= 0:
            continue
        x, y = generators[task](n, T, step_generator(seed, step, stream=1 + TASKS.index(task)))
        xs.append(x)
        ys.append(y)
        ids.append(torch.full((n,), i, dtype=torch.long))
    return torch.cat(xs), torch.cat(ys), torch.cat(ids)


def battery_batch_fn(tasks: tuple[str, ...], seed: int, batch_size: int, seq_len: int,
                     generators: dict = GENERATORS) -> BatchFn:
    check_tasks(tasks)
    split = rows_per_task(tasks, batch_size)

    def batch(step: int) -> Batch:
        x, y, _ = make_batch(tasks, split, seq_len, seed, step, generators)
        return x, y
    return batch


def heldout_battery_batch_fn(tasks: tuple[str, ...], seed: int, batch_size: int, seq_len: int) -> BatchFn:
    """The scorer's held-out batches: the training mixture, with held-out text in the `bytes` rows."""
    return battery_batch_fn(tasks, seed, batch_size, seq_len, EVAL_GENERATORS)


@dataclass(frozen=True)
class EvalSet:
    tasks: tuple[str, ...]
    inputs: torch.Tensor  # [N, T]
    labels: torch.Tensor  # [N, T], IGNORE where nothing is scored
    task_ids: torch.Tensor  # [N] index into tasks


def eval_set(tasks: tuple[str, ...], seq_len: int, examples_per_task: int, seed: int | None = None) -> EvalSet:
    """The evaluation rows of a profile (fresh sequences; held-out text for `bytes`), drawn from `seed` (the
    campaign's secret one; None: the public EVAL_SEED)."""
    check_tasks(tasks)
    x, y, ids = make_batch(tasks, [examples_per_task] * len(tasks), seq_len, EVAL_SEED if seed is None else seed,
                           0, EVAL_GENERATORS)
    return EvalSet(tuple(tasks), x, y, ids)


def score(predictions: torch.Tensor, es: EvalSet) -> dict[str, float]:
    """Greedy next-token predictions [N, T] -> {"<task>/acc": mean over the task's sequences of the token
    accuracy at their labelled positions} (each sequence weighs the same, whatever its number of labels, so
    the hard levels of a graded task count as much as the easy ones)."""
    labelled = es.labels != IGNORE
    per_row = ((predictions == es.labels) & labelled).sum(1).float() / labelled.sum(1).clamp(min=1).float()
    return {f"{task}/acc": per_row[es.task_ids == i].mean().item() for i, task in enumerate(es.tasks)}


@torch.no_grad()
def predict(model: torch.nn.Module, inputs: torch.Tensor, batch_size: int = 64, device: str = "cpu") -> torch.Tensor:
    """Greedy next-token predictions of a CausalLM ([B, T] -> ([B, T, V] logits, aux)) for every position."""
    was_training = model.training
    model.eval()
    try:
        preds = [model(inputs[i:i + batch_size].to(device))[0].argmax(-1).cpu()
                 for i in range(0, len(inputs), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(preds)


def evaluate_battery(model: torch.nn.Module, tasks: tuple[str, ...], seq_len: int, examples_per_task: int,
                     batch_size: int = 64, device: str = "cpu", seed: int | None = None) -> dict[str, float]:
    es = eval_set(tasks, seq_len, examples_per_task, seed)
    return score(predict(model, es.inputs, batch_size, device), es)
