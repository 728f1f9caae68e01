"""Staged training data (issue 15, point 1): a trusted, network-allowed step fetches or builds a profile's
training tokens into a content-addressed cache under the data dir; the sandboxed training child reads
them read-only and stays offline.

    archlab data prepare explore-20m      # trusted: streams FineWeb-edu through the GPT-2 tokenizer
    archlab data status

Layout: `<data dir>/datasets/<key>/` with `train.u32` (the token ids, little-endian uint32) and
`manifest.json` (the spec, the token count and the file's sha256); beside it `<key>.heldout/` with
`heldout.u32`, the next tokens of the same stream (never trained on), which the trusted scorer draws its
held-out batches from (issue 25). The child binds only `<key>/`: the held-out tokens are not on its
filesystem. `key` is the sha256 of the spec
(task, dataset, config, tokenizer, token count): the same recipe always lands in the same directory,
and a changed recipe never reads an old one. A directory is written under a temporary name and
renamed when complete, so a half-written cache is never found.

Profiles with a "hf" task need staging (the others generate their data in the child from the
repository). The sandbox binds the staged directory read-only and names it in `ARCHLAB_DATA_STAGE`;
the runner then reads the tokens from there instead of the hub (lab/training/runner.py). The
lab refuses such a profile while its data is missing, naming the command that prepares it.

Dataset "archlab/stdlib-bytes" with tokenizer "bytes" is the project's own small corpus (the Python
standard library's sources, byte-level): the CPU tests stage it through this same code path.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Iterable, Iterator

from lab.training.profiles import Profile

STAGE_ENV = "ARCHLAB_DATA_STAGE"   # set in the sandboxed child: the staged directory, bound read-only
TOKENS_NAME, MANIFEST_NAME, HELDOUT_NAME = "train.u32", "manifest.json", "heldout.u32"
LOCAL_DATASET, BYTES_TOKENIZER = "archlab/stdlib-bytes", "bytes"
FORMAT = 2   # 2: with the held-out split (a stage of format 1 is prepared again)
HELDOUT_SHARE = 50   # the held-out split: 1/50 of the training tokens, at least HELDOUT_WINDOWS windows
HELDOUT_WINDOWS = 64


class DataNotStaged(RuntimeError):
    """A profile's data is not in the cache: the message names the command that prepares it."""


def needs_staging(profile: Profile) -> bool:
    return profile.task == "hf"


def tokens_wanted(profile: Profile) -> int:
    return profile.hf_tokens or profile.steps * profile.tokens_per_step


def heldout_wanted(profile: Profile) -> int:
    return max(tokens_wanted(profile) // HELDOUT_SHARE, HELDOUT_WINDOWS * (profile.seq_len + 1))


def spec(profile: Profile) -> dict:
    return {"format": FORMAT, "task": profile.task, "dataset": profile.hf_dataset, "config": profile.hf_config,
            "tokenizer": profile.hf_tokenizer, "tokens": tokens_wanted(profile), "heldout": heldout_wanted(profile)}


def key(profile: Profile) -> str:
    return hashlib.sha256(json.dumps(spec(profile), sort_keys=True).encode()).hexdigest()[:24]


def default_data_dir() -> Path:
    """The lab's data dir when no caller names one: `ARCHLAB_DATA_DIR`, as the services' settings read it."""
    return Path(os.environ.get("ARCHLAB_DATA_DIR", ".archlab"))


def cache_root(data_dir: str | Path) -> Path:
    return Path(data_dir).resolve() / "datasets"


def stage_dir(profile: Profile, data_dir: str | Path) -> Path:
    return cache_root(data_dir) / key(profile)


def heldout_dir(profile: Profile, data_dir: str | Path) -> Path:
    """The held-out split, beside the training stage (never bound into a child)."""
    return cache_root(data_dir) / f"{key(profile)}.heldout"


def prepare_command(profile: Profile) -> str:
    return f"archlab data prepare {profile.name}"


def staged(profile: Profile, data_dir: str | Path) -> Path | None:
    """The profile's complete staged directory, or None."""
    d, h = stage_dir(profile, data_dir), heldout_dir(profile, data_dir)
    try:
        manifest = json.loads((d / MANIFEST_NAME).read_text())
        ok = (manifest.get("spec") == spec(profile)
              and (d / TOKENS_NAME).stat().st_size == 4 * int(manifest["tokens"])
              and (h / HELDOUT_NAME).stat().st_size == 4 * int(manifest["heldout"]))
    except (OSError, ValueError, KeyError):
        return None
    return d if ok else None


def require(profile: Profile, data_dir: str | Path) -> Path | None:
    """The staged directory of a profile that needs one (None for a profile that does not)."""
    if not needs_staging(profile):
        return None
    d = staged(profile, data_dir)
    if d is None:
        raise DataNotStaged(f"profile {profile.name}: its training data ({profile.hf_dataset}, tokenizer "
                            f"{profile.hf_tokenizer}, {tokens_wanted(profile):,} tokens) is not staged under "
                            f"{cache_root(data_dir)}; prepare it with `{prepare_command(profile)}`")
    return d


# ---------------------------------------------------------------- sources (trusted side, network allowed)
def _local_bytes() -> Iterator[list[int]]:
    from lab.training.data import load_byte_corpus

    train = load_byte_corpus().train
    while True:   # repeated until enough tokens: a small corpus still fills any count
        yield train.tolist()


def _hub(profile: Profile) -> Iterator[list[int]]:
    import datasets
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(profile.hf_tokenizer)
    eos = tok.eos_token_id or 0
    for row in datasets.load_dataset(profile.hf_dataset, profile.hf_config, split="train", streaming=True):
        yield tok(row["text"])["input_ids"] + [eos]


def source_for(profile: Profile) -> Iterable[list[int]]:
    if profile.hf_dataset == LOCAL_DATASET and profile.hf_tokenizer == BYTES_TOKENIZER:
        return _local_bytes()
    return _hub(profile)


def prepare(profile: Profile, data_dir: str | Path, source: Iterable[list[int]] | None = None,
            progress=None) -> Path:
    """Stage the profile's training tokens (idempotent: an existing complete stage is kept)."""
    import numpy as np

    if not needs_staging(profile):
        raise ValueError(f"profile {profile.name} (task {profile.task!r}) generates its data in the child: "
                         "nothing to stage")
    done = staged(profile, data_dir)
    if done is not None:
        return done
    final, final_heldout = stage_dir(profile, data_dir), heldout_dir(profile, data_dir)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.partial")
    tmp_heldout = final.with_name(f".{final_heldout.name}.{os.getpid()}.partial")
    for d in (tmp, tmp_heldout):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    # one stream: the first `want` tokens train, the next `held` are held out
    want, held = tokens_wanted(profile), heldout_wanted(profile)
    have = 0
    digests = [hashlib.sha256(), hashlib.sha256()]
    with open(tmp / TOKENS_NAME, "wb") as train_f, open(tmp_heldout / HELDOUT_NAME, "wb") as held_f:
        for ids in (source if source is not None else source_for(profile)):
            chunk = np.asarray(ids[:want + held - have], dtype="<u4")
            if chunk.size and int(chunk.max()) >= profile.vocab_size:
                raise ValueError(f"token id {int(chunk.max())} >= vocab_size {profile.vocab_size} of {profile.name}")
            split = max(0, min(chunk.size, want - have))
            for i, (part, f) in enumerate(((chunk[:split], train_f), (chunk[split:], held_f))):
                if part.size:
                    data = part.tobytes()
                    f.write(data)
                    digests[i].update(data)
            have += chunk.size
            if progress is not None:
                progress(min(have, want + held), want + held)
            if have >= want + held:
                break
    if have < want + held:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(tmp_heldout, ignore_errors=True)
        raise RuntimeError(f"the source ended after {have:,} of {want + held:,} tokens "
                           f"({want:,} to train on, {held:,} held out)")
    (tmp / MANIFEST_NAME).write_text(json.dumps({"profile": profile.name, "spec": spec(profile), "tokens": want,
                                                 "heldout": held, "sha256": digests[0].hexdigest()}, indent=1))
    (tmp_heldout / MANIFEST_NAME).write_text(json.dumps({"profile": profile.name, "spec": spec(profile),
                                                         "heldout": held, "sha256": digests[1].hexdigest()},
                                                        indent=1))
    # the held-out split first: a training stage is only found complete with its split beside it
    for t, f in ((tmp_heldout, final_heldout), (tmp, final)):
        if f.exists():   # another preparer finished first: same key, same content
            shutil.rmtree(t, ignore_errors=True)
        else:
            t.rename(f)
    return final


def load_staged_heldout(profile: Profile, data_dir: str | Path):
    """The held-out split's tokens as an int32 tensor (trusted side: the scorer's held-out batches)."""
    import numpy as np
    import torch

    if staged(profile, data_dir) is None:
        raise DataNotStaged(f"profile {profile.name}: no staged held-out split under {cache_root(data_dir)}; "
                            f"prepare it with `{prepare_command(profile)}`")
    h = heldout_dir(profile, data_dir)
    return torch.from_numpy(np.fromfile(h / HELDOUT_NAME, dtype="<i4", count=heldout_wanted(profile)))


# ---------------------------------------------------------------- the child's side (read-only, offline)
def load_staged_tokens(profile: Profile, directory: str | Path):
    """The staged tokens as an int32 tensor (ids < 2^31), checked against the profile's spec."""
    import numpy as np
    import torch

    d = Path(directory)
    manifest = json.loads((d / MANIFEST_NAME).read_text())
    if manifest.get("spec") != spec(profile):
        raise DataNotStaged(f"{d} holds {manifest.get('spec')}, not the data of profile {profile.name} "
                            f"({spec(profile)}); prepare it with `{prepare_command(profile)}`")
    return torch.from_numpy(np.fromfile(d / TOKENS_NAME, dtype="<i4", count=int(manifest["tokens"])))
