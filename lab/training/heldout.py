"""Held-out evaluation data the program cannot read (issue 25): a secret seed per campaign and a text corpus
staged under the data directory. Both live only on the trusted side (the engineer's scorer); the sandbox
never sees the data directory (lab/confine.py covers it with an empty tmpfs).

    seed = campaign_eval_seed(data_dir, campaign_id)   # created once, 0600, beside the LLM key
    docs = heldout_docs()                              # the staged held-out text, as documents
    batch_fn = heldout_batch_fn(profile, seed)         # the scorer's held-out batches of any profile

Why a secret seed: every synthetic task (MQAR, the battery) is a pure function of its seed, and the generators
are in the repository the program can read. With a public eval seed a program could regenerate the evaluation
sequences inside its forward and answer them from a lookup (a causal lookup on the prefix passes every
causality check). The seed is published when the campaign ends (`published_eval_seed`), so results stay
reproducible.

Why a staged corpus: the byte-LM was scored on held-out files of the Python standard library, which the child
must be able to read (it runs Python). The held-out corpus is copied into `<data dir>/heldout/` once per data
directory, from `ARCHLAB_HELDOUT_CORPUS` (a file or a directory of UTF-8 text the operator keeps outside the
sandbox's mounts) or, by default, from the repository's prose (README.md and docs/*.md), which the child's
filesystem does not show (confine.HIDDEN_REPO_DIRS). Inside a sandbox child (evaluate=True, the old path), the
stdlib's held-out files stand in: a child's own evaluation is untrusted anyway.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import time
from functools import lru_cache
from pathlib import Path

from lab.training.profiles import Profile

CORPUS_VAR = "ARCHLAB_HELDOUT_CORPUS"  # operator's held-out text: a file or a directory of .txt / .md files
CORPUS_NAME, MANIFEST_NAME = "corpus.bin", "manifest.json"
DOC_SEPARATOR = b"\n\x00\n"  # between documents in corpus.bin (never in UTF-8 text)
MIN_BYTES = 64 * 1024  # less text than this makes noisy bits-per-byte
REPO_ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- the secret seed
def _seed_file(data_dir: str | Path, campaign_id: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in campaign_id)[:120] or "default"
    return Path(data_dir).resolve() / "secrets" / f"eval_seed.{safe}"


def campaign_eval_seed(data_dir: str | Path, campaign_id: str) -> int:
    """The campaign's secret evaluation seed: drawn from os.urandom the first time any engineer asks, then read
    back (O_EXCL: two engineers racing agree on the first one written). Never logged or put in an event."""
    path = _seed_file(data_dir, campaign_id)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # the winner may not have written its line yet
            text = path.read_text().strip()
            if text:
                return int(text)
            time.sleep(0.02)
        raise RuntimeError(f"{path} stays empty")
    with os.fdopen(fd, "w") as f:
        seed = secrets.randbits(62)
        f.write(f"{seed}\n")
    return seed


def published_eval_seed(data_dir: str | Path, campaign_id: str) -> int | None:
    """The seed, for publication once the campaign has ended (the report of an ended campaign shows it)."""
    try:
        return int(_seed_file(data_dir, campaign_id).read_text().strip())
    except (OSError, ValueError):
        return None


def derive(seed: int, purpose: str) -> int:
    """A seed for one use (the held-out loss, one eval task) from the campaign's: independent streams. 32 bits:
    data.step_generator multiplies a seed by ~3e7 inside a signed 64-bit torch seed; a search over 2^32 seeds
    (each a batch to generate and compare) does not fit in a forward child's time limit."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{purpose}".encode()).digest()[:4], "big")


# ---------------------------------------------------------------- the staged held-out corpus
def _source_docs() -> tuple[str, list[tuple[str, bytes]]]:
    """(description, [(name, text)]) of the operator's corpus, or of the repository's prose by default."""
    given = os.environ.get(CORPUS_VAR)
    if given:
        root = Path(given)
        files = sorted(p for p in root.rglob("*") if p.suffix in (".txt", ".md")) if root.is_dir() else [root]
        desc = f"{CORPUS_VAR}={given}"
    else:
        files = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
        desc = "the repository's README.md and docs/*.md"
    docs = [(p.name, p.read_bytes()) for p in files if p.is_file()]
    return desc, [(n, d.replace(b"\x00", b"")) for n, d in docs if d.strip()]


def corpus_dir(data_dir: str | Path) -> Path:
    return Path(data_dir).resolve() / "heldout"


def stage_corpus(data_dir: str | Path) -> Path:
    """Copy the held-out text into `<data_dir>/heldout/` once (kept for the data directory's life, so every
    experiment of a campaign is scored on the same text); returns the directory."""
    final = corpus_dir(data_dir)
    if (final / MANIFEST_NAME).is_file():
        return final
    desc, docs = _source_docs()
    blob = DOC_SEPARATOR.join(d for _, d in docs)
    if len(blob) < MIN_BYTES:
        raise RuntimeError(f"held-out corpus from {desc}: {len(blob)} bytes, fewer than {MIN_BYTES}")
    tmp = final.with_name(f".heldout.{os.getpid()}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / CORPUS_NAME).write_bytes(blob)
    (tmp / MANIFEST_NAME).write_text(json.dumps({"source": desc, "documents": [n for n, _ in docs],
                                                 "bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()},
                                                indent=1))
    try:
        tmp.rename(final)
    except OSError:  # another engineer staged it first
        shutil.rmtree(tmp, ignore_errors=True)
    return final


@lru_cache(maxsize=4)
def _load(directory: str) -> tuple[bytes, ...]:
    return tuple(d for d in (Path(directory) / CORPUS_NAME).read_bytes().split(DOC_SEPARATOR) if d)


def heldout_docs(data_dir: str | Path | None = None) -> tuple[bytes, ...]:
    """The held-out documents: the staged corpus on the trusted side; the stdlib's held-out files in a child."""
    if os.environ.get("ARCHLAB_SANDBOX") == "1":
        from lab.training.data import load_byte_corpus
        return load_byte_corpus().heldout_docs
    from lab.training.datastage import default_data_dir
    return _load(str(stage_corpus(data_dir if data_dir is not None else default_data_dir())))


def heldout_tokens(data_dir: str | Path | None = None):
    """The held-out documents as one uint8 tensor (byte-level tokens)."""
    import torch
    return torch.frombuffer(bytearray(b"\n".join(heldout_docs(data_dir))), dtype=torch.uint8)


# ---------------------------------------------------------------- the scorer's held-out batches
def heldout_batch_fn(profile: Profile, seed: int, data_dir: str | Path | None = None):
    """step -> (inputs, labels) of the profile's task, drawn from `seed`, with held-out text for the byte tasks."""
    from lab.training import data
    if profile.task == "mqar":
        return data.mqar_batch_fn(seed, profile.batch_size, profile.seq_len, profile.mqar_num_kv, profile.vocab_size)
    if profile.task == "battery":
        from lab.training.battery import heldout_battery_batch_fn
        return heldout_battery_batch_fn(profile.battery_tasks, seed, profile.batch_size, profile.seq_len)
    if profile.task == "bytes":
        return data.window_batch_fn(heldout_tokens(), seed, profile.batch_size, profile.seq_len)
    # "hf": the staged held-out split (the tokens after the training ones, outside the child's filesystem)
    from lab.training.datastage import default_data_dir, load_staged_heldout
    return data.window_batch_fn(load_staged_heldout(profile, data_dir or default_data_dir()), seed,
                                profile.batch_size, profile.seq_len)
