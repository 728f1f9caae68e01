"""A campaign's baseline, trained once per machine and reused (issue 23). No Kafka here.

Every campaign opens by training its baseline (the zoo's DeltaNet at the campaign's profile and seed): about a
quarter of `make run`'s wall time, and the same model each time the same command runs again, in the same folder or
another. An engineer that has trained a baseline keeps what its training child produced, the final weights, the
weights at each rung and the child's record of the run (loss curve, tokens/s, step cost, probe), under
`<machine cache>/baselines/<key>/` (lab/machine_cache.py: ~/.cache/archlab unless ARCHLAB_CACHE_DIR says otherwise;
the compose deployment keeps it in the data volume). An engineer that claims a baseline whose key is there copies
them into the run's workdir and starts no training child.

Everything trusted is computed again: the held-out loss, the benchmark and each rung's loss come from the trusted
scorer on *this* campaign's secret held-out data (lab/training/heldout.py), as for a run trained now. The result
says where its weights come from (`ResultsReady.weights_from`: the campaign and experiment that trained them).

- Key: sha256 over the program, the profile and its overrides, the seed, the device, torch's version and the
  lab's own training code (lab/training and the fla shim the programs import): a change to any of them trains
  again, so a faster kernel or loop never serves weights trained by the one before it.
- Out of the programs' reach: the machine cache, like the data directory, is hidden from every sandbox child
  (lab/confine.py; a program that could read DeltaNet's trained weights could load them), and the files a child
  wrote are copied in with the scorer's copy (regular files, no symlinks, a size limit).
- An entry appears whole or not at all (written beside, then renamed); a damaged entry is a miss.
- `ARCHLAB_ENGINEER_REUSE_BASELINE=0` trains every baseline.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from lab.training.runner import WEIGHTS_NAME, rung_dir
from lab.training.scoring import ScoringFailed, copy_regular_file

RESULT_FILE = "result.json"
# fields of a result that the trusted scorer computes again for each campaign: never carried over
SCORED_FIELDS = ("benchmark", "eval_s", "metrics", "scored_by")


# the lab's code that decides what a program's training computes, besides the program itself
TRAINING_CODE_DIRS = tuple(Path(__file__).resolve().parents[2] / "lab" / name for name in ("training", "fla_shim"))


@functools.lru_cache(maxsize=1)
def training_code_digest() -> str:
    digest = hashlib.sha256()
    for root in TRAINING_CODE_DIRS:
        for path in sorted(root.rglob("*.py")):
            digest.update(str(path.relative_to(root.parent)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def cache_key(code: str, profile: str, profile_overrides: dict, seed: int, device: str) -> str:
    blob = json.dumps({"code": code, "profile": profile, "overrides": profile_overrides, "seed": seed,
                       "device": device, "torch": torch.__version__, "trainer": training_code_digest()},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Entry:
    """A cached baseline run: its directory and the training child's result (what the scorer does not redo)."""
    path: Path
    result: dict
    trained_by: str   # "<campaign>/<experiment>" of the run that trained the weights

    def restore(self, workdir: Path, rungs: tuple[int, ...]) -> dict:
        """Copy the weights (final and at `rungs`) into a run's workdir; the training child's result for the scorer,
        its final loss the claimed one (the scorer replaces it)."""
        workdir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.path / WEIGHTS_NAME, workdir / WEIGHTS_NAME)
        for step in rungs:
            target = rung_dir(workdir, step)
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(rung_dir(self.path, step) / WEIGHTS_NAME, target / WEIGHTS_NAME)
        return {**self.result, "weights_from": self.trained_by}


class BaselineCache:
    def __init__(self, cache_dir: str | Path):
        self.root = Path(cache_dir).resolve() / "baselines"

    def lookup(self, key: str, rungs: tuple[int, ...]) -> Entry | None:
        path = self.root / key
        try:
            meta = json.loads((path / RESULT_FILE).read_text())
        except (OSError, ValueError):
            return None
        files = [path / WEIGHTS_NAME, *(rung_dir(path, s) / WEIGHTS_NAME for s in rungs)]
        if not isinstance(meta, dict) or not isinstance(meta.get("result"), dict) or not all(
                f.is_file() for f in files):
            return None
        return Entry(path, meta["result"], str(meta.get("trained_by") or ""))

    def store(self, key: str, result: dict, workdir: Path, scratch: Path, rungs: tuple[int, ...],
              trained_by: str) -> Path | None:
        """Keep a finished baseline run (its workdir lies under the child's `scratch`); None when there is
        already an entry. The result kept is the training child's: the scored fields are dropped and the final
        loss is the one the child claimed."""
        target = self.root / key
        if target.exists():
            return None
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=self.root))
        try:
            copy_regular_file(workdir / WEIGHTS_NAME, scratch, tmp / WEIGHTS_NAME)
            for step in rungs:
                (rung_dir(tmp, step)).mkdir()
                copy_regular_file(rung_dir(workdir, step) / WEIGHTS_NAME, scratch, rung_dir(tmp, step) / WEIGHTS_NAME)
            kept = {k: v for k, v in result.items() if k not in SCORED_FIELDS and k != "weights_from"}
            claimed = (result.get("metrics") or {}).get("train/claimed_final_loss")
            if claimed is not None:
                kept["final_loss"] = claimed
            (tmp / RESULT_FILE).write_text(json.dumps({"result": kept, "trained_by": trained_by}))
            os.rename(tmp, target)   # a directory appears whole; a racing engineer's rename fails, ours is dropped
            return target
        except (OSError, ScoringFailed):   # weights the child did not leave as plain files: nothing is kept
            return None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
