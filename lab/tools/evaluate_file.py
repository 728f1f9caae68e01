"""`archlab evaluate my_layer.py`: a researcher's own layer file, judged exactly as a proposal would be.

    ev = evaluate_file("my_layer.py", profile="cpu-tiny", seed=0, compare=["deltanet", "linear"])
    ev.rejected        # the sanity checks' verdict (reason, feedback, evidence) or None
    ev.rows            # the file's result and the compared zoo members', with fitness vs the baseline

The pipeline is the lab's own, without a campaign or Kafka:
1. the researcher's sanity checks (lab.checks.SanityChecker: static checks, then build,
   param budget, shape, causality and complexity in a sandbox child);
2. training and evaluation by the engineer's runner in the sandbox (lab.training.sandboxed);
3. the zoo members named in `compare` trained the same way, or read from `data_dir/zoo-cache`
   (keyed by code hash + profile + seed; `archlab zoo bench` fills the same cache);
4. fitness against the baseline by the judge's formula (lab.judging.score.score_fields), with the
   profile's seed noise (Settings.judge_seed_noise) deciding `significant`.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

from lab.training.profiles import get_profile
from lab.training.sandboxed import run_training_sandboxed
from lab.tools.validity import ZooCache, profile_key
from lab.zoo import ZOO, zoo_source
from lab.judging import fitness as F
from lab.judging.score import score_fields

DEFAULT_BASELINE = "deltanet"


@dataclass
class Row:
    name: str
    source: str  # "file" | "zoo" (trained now) | "zoo-cache"
    ok: bool
    final_loss: float | None = None
    benchmark: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    params: int | None = None
    train_s: float | None = None
    tokens_per_s: float | None = None
    fitness: float | None = None
    loss_score: float | None = None
    benchmark_score: float | None = None
    significant: bool | None = None
    failure: dict | None = None  # kind, error, traceback tail of a failed training run
    note: str = ""


@dataclass
class FileEvaluation:
    path: str
    profile: str  # with overrides, e.g. "cpu-micro+steps=30"
    seed: int
    baseline: str
    rejected: dict | None = None  # {"reason", "feedback", "evidence"} from the sanity checks
    checks: dict = field(default_factory=dict)  # the checks' evidence and timings when they passed
    rows: list[Row] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.rejected is None and bool(self.rows) and self.rows[0].ok


def _failure(res) -> dict:
    result = res.result or {}
    error = result.get("error") if isinstance(result.get("error"), dict) else {}
    return {"kind": error.get("kind") or res.kind, "error": res.error or error.get("message", ""),
            "evidence": error.get("evidence"), "traceback": (res.traceback or "")[-3000:]}


def _row_from_result(name: str, source: str, result: dict) -> Row:
    return Row(name, source, True, final_loss=result["final_loss"], benchmark=result["benchmark"],
               metrics=dict(result.get("metrics") or {}), params=result.get("params"), train_s=result.get("train_s"),
               tokens_per_s=result.get("tokens_per_s"))


def _train(name: str, source: str, code: str, profile: str, seed: int, overrides: dict, scratch_root: Path | None,
           progress: Callable[[str, dict], None] | None) -> tuple[Row, dict | None]:
    with tempfile.TemporaryDirectory(prefix="archlab-evaluate-", dir=scratch_root) as tmp:
        res = run_training_sandboxed(code, profile, seed, scratch=tmp, profile_overrides=overrides,
                                     on_progress=(lambda p: progress(name, p)) if progress else None)
    result = res.result or {}
    if res.ok and "final_loss" in result:
        return _row_from_result(name, source, result), result
    return Row(name, source, False, failure=_failure(res)), None


def evaluate_file(path: str | Path, *, profile: str = "cpu-tiny", seed: int = 0, compare: list[str] | None = None,
                  baseline: str = DEFAULT_BASELINE, data_dir: str | Path | None = None, steps: int | None = None,
                  seed_noise: dict[str, dict[str, float]] | None = None, checker=None, use_cache: bool = True,
                  progress: Callable[[str, dict], None] | None = None) -> FileEvaluation:
    """Check, train and evaluate the layer in `path`; train (or read cached) `compare` zoo members and the
    baseline; score every row against the baseline with the judge's formula.

    `progress(name, update)` receives stage messages ({"stage": ...}) and the runner's progress dicts.
    """
    from lab.checks import SanityChecker

    path = Path(path)
    code = path.read_text(encoding="utf-8")
    compare = list(compare or [])
    unknown = [n for n in [*compare, baseline] if n not in ZOO]
    if unknown:
        raise KeyError(f"unknown zoo member(s) {unknown}; the zoo has {', '.join(ZOO)}")
    get_profile(profile)  # KeyError naming the valid profiles
    overrides = {"steps": steps} if steps else {}
    out = FileEvaluation(str(path), profile_key(profile, overrides), seed, baseline)
    data_dir = Path(data_dir) if data_dir is not None else None
    scratch_root = None
    if data_dir is not None:
        scratch_root = data_dir / "scratch"
        scratch_root.mkdir(parents=True, exist_ok=True)
    note = progress or (lambda name, update: None)

    # 1. the researcher's sanity checks, as for a proposal
    note(path.name, {"stage": "checks"})
    outcome = (checker or SanityChecker(scratch_root=scratch_root)).check(code, profile)
    if not outcome.ok:
        out.rejected = {"reason": outcome.reason, "feedback": outcome.feedback, "evidence": outcome.evidence}
        return out
    out.checks = {"evidence": outcome.evidence, "timings": outcome.timings}

    # 2. the file, trained and evaluated by the runner in the sandbox
    note(path.name, {"stage": "training"})
    row, _ = _train(path.name, "file", code, profile, seed, overrides, scratch_root, progress)
    out.rows.append(row)

    # 3. the zoo members to compare with, and the baseline (cached by code hash + profile + seed)
    cache = ZooCache(data_dir / "zoo-cache") if data_dir is not None and use_cache else None
    for name in dict.fromkeys([*compare, baseline]):
        member_code = zoo_source(name)
        hit = cache.get(member_code, profile, seed, overrides) if cache else None
        if hit is not None:
            out.rows.append(_row_from_result(name, "zoo-cache", hit))
            continue
        note(name, {"stage": "training"})
        member_row, result = _train(name, "zoo", member_code, profile, seed, overrides, scratch_root, progress)
        if result is not None and cache is not None:
            cache.put(member_code, profile, seed, result, overrides, name=name)
        out.rows.append(member_row)

    # 4. fitness by the judge's formula
    base = next(r for r in out.rows if r.name == baseline and r.source != "file")
    noise = F.resolve_noise(profile, seed_noise) if not overrides else None
    base_ev = SimpleNamespace(experiment_id=f"zoo:{baseline}", final_loss=base.final_loss, benchmark=base.benchmark)
    for r in out.rows:
        if not r.ok:
            continue
        if not base.ok:
            r.note = f"baseline {baseline} failed: no fitness"
            continue
        result_ev = SimpleNamespace(campaign_id="evaluate", profile=profile, final_loss=r.final_loss,
                                    benchmark=r.benchmark)
        scored = score_fields(result_ev, base_ev, noise=noise)
        r.fitness, r.loss_score, r.benchmark_score = scored["fitness"], scored.get("loss_score"), scored.get(
            "benchmark_score")
        r.significant = scored.get("significant")
        r.note = scored.get("error") or ""
    return out
