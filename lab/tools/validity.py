"""Is the CPU proxy valid? Train every zoo member on it with several seeds, rank them, and compare
the ranking with the order the literature reports on recall; measure how much a metric moves
between seeds of the same program (the noise floor the judge needs).

Literature order on associative recall (MQAR and the recall-intensive tasks), best first:
    softmax  >= Gated DeltaNet >= DeltaNet > GLA >= RetNet > linear attention
- Arora et al. 2023, Zoology (arXiv 2312.04927): attention solves MQAR; gated convolutions and
  linear attention fall off as the number of key-value pairs grows.
- Yang et al. 2024, DeltaNet (arXiv 2406.06484): the delta rule solves MQAR where GLA, RetNet and
  Mamba degrade; Yang et al. 2024, Gated DeltaNet (arXiv 2412.06464): the gate keeps recall and
  improves on DeltaNet and Mamba2.
- Yang et al. 2023, GLA (arXiv 2312.06635): a data-dependent gate beats RetNet's fixed decay.
- Sun et al. 2023, RetNet (arXiv 2307.08621): retention = linear attention with a fixed decay.
- Katharopoulos et al. 2020 (arXiv 2006.16236): linear attention, the weakest recall.
- Dao & Gu 2024, Mamba2/SSD (arXiv 2405.21060) is not in the stated order; the DeltaNet and Gated
  DeltaNet papers place it below the delta rule and level with GLA on recall, so it is tied with GLA.

Zoo code is trusted, so runs train in this process (or in worker processes, --jobs), through the
runner's `run_job` (the same training and lm-eval evaluation a proposal gets). Each run has its own
scratch directory; results can be cached in `data_dir/zoo-cache` (see `ZooCache`) and are shared
with `archlab evaluate --compare`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

from lab.program import code_hash
from lab.training.battery import TASKS as BATTERY_TASKS
from lab.training.profiles import get_profile
from lab.zoo import ZOO, zoo_source

# rank 1 = best recall; equal ranks are ties (see the module docstring for the sources)
LITERATURE_RECALL_RANK = {"softmax": 1, "gated_deltanet": 2, "deltanet": 3, "gla": 4, "mamba2": 4, "retnet": 5,
                          "linear": 6}
RECALL = "mqar_recall/acc"
# metric -> True when higher is better; the keys are what a run record holds (`metrics` flattened)
HIGHER_IS_BETTER = {"mqar_recall/acc": True, "mqar_mc/acc": True, "benchmark": True, "final_loss": False,
                    "bytes_bpb/bits_per_byte": False, "stdlib_mc/acc": True}
# the judge's two quantitative metrics (lab/judging/fitness.py SeedNoise) and where they come from
JUDGE_METRICS = {"loss": "final_loss", "benchmark": "benchmark"}


# ---------------------------------------------------------------- one run

@dataclass
class RunRecord:
    """One member trained once: member x profile x seed."""
    member: str
    profile: str  # the profile's name, with overrides as a suffix (e.g. "cpu-tiny+steps=400")
    seed: int
    values: dict[str, float]  # final_loss, benchmark and every evaluation metric
    train_s: float = 0.0
    eval_s: float = 0.0
    params: int = 0
    cached: bool = False
    error: str | None = None
    result: dict = field(default_factory=dict)  # the runner's TrainResult as a dict

    @classmethod
    def from_result(cls, member: str, profile_key: str, seed: int, result: dict, cached: bool = False) -> "RunRecord":
        values = {"final_loss": float(result["final_loss"]), "benchmark": float(result["benchmark"]),
                  **{k: float(v) for k, v in (result.get("metrics") or {}).items()}}
        return cls(member, profile_key, seed, values, float(result.get("train_s", 0.0)),
                   float(result.get("eval_s", 0.0)), int(result.get("params", 0)), cached, None, result)


def profile_key(profile: str, overrides: dict | None = None) -> str:
    """A profile plus its overrides as one name: results are comparable only under the same key."""
    if not overrides:
        return profile
    return profile + "+" + ",".join(f"{k}={overrides[k]}" for k in sorted(overrides))


def profile_fingerprint(profile: str, overrides: dict | None = None) -> str:
    """A digest of what a profile trains and evaluates (not its description or its measured noises): a profile
    redefined under the same name (cpu-tiny became the battery) never reuses results measured under the old one."""
    try:
        fields = dataclasses.asdict(get_profile(profile, **(overrides or {})))
    except (KeyError, TypeError):
        return "unknown"
    for k in ("description", "seed_noise", "rung_loss_noise"):
        fields.pop(k, None)
    if fields.get("task") == "battery":  # the tasks' sizes live in battery.py, not in the profile
        from lab.training.battery import SIZES
        fields["battery_sizes"] = {t: SIZES.get(t) for t in fields.get("battery_tasks") or ()}
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:12]


class ZooCache:
    """Training results keyed by code hash + profile (with overrides) + seed, as JSON files.

    A cached result is valid for any program with the same normalised code (lab.program
    .code_hash), so editing a zoo program invalidates its entries by itself.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, code: str, profile: str, seed: int, overrides: dict | None = None) -> Path:
        key = profile_key(profile, overrides)
        digest = hashlib.sha256(f"{code_hash(code)}|{key}|{profile_fingerprint(profile, overrides)}|{seed}"
                                .encode()).hexdigest()[:24]
        return self.root / f"{digest}.json"

    def get(self, code: str, profile: str, seed: int, overrides: dict | None = None) -> dict | None:
        try:
            entry = json.loads(self.path(code, profile, seed, overrides).read_text())
        except (OSError, ValueError):
            return None
        return entry.get("result") if isinstance(entry, dict) else None

    def put(self, code: str, profile: str, seed: int, result: dict, overrides: dict | None = None,
            name: str = "") -> None:
        path = self.path(code, profile, seed, overrides)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{time.monotonic_ns()}")  # parallel runs never see half a file
        tmp.write_text(json.dumps({"name": name, "code_hash": code_hash(code), "profile": profile_key(profile, overrides),
                                   "seed": seed, "result": result}))
        tmp.replace(path)


def train_in_process(code: str, profile: str, seed: int, overrides: dict | None = None,
                     on_progress: Callable[..., None] | None = None) -> dict:
    """Train + evaluate trusted code here (zoo members only: generated code goes through the sandbox)."""
    from lab.training.runner import TrainJob, run_job

    with tempfile.TemporaryDirectory(prefix="archlab-zoo-") as scratch:
        job = TrainJob(code=code, profile=profile, seed=seed, workdir=scratch, profile_overrides=dict(overrides or {}))
        return run_job(job, on_progress=on_progress).to_json()


def _run_member(member: str, profile: str, seed: int, overrides: dict | None, threads: int, verbose: bool) -> dict:
    """One member x seed (in a worker process when --jobs > 1): returns the TrainResult dict."""
    import torch

    torch.set_num_threads(threads)
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")  # lm-eval's per-task bars drown the progress
    os.environ.setdefault("TQDM_DISABLE", "1")
    tag = f"{member}/s{seed}"

    def progress(step, total_steps, loss, **_):
        if verbose and (step % max(1, total_steps // 10) == 0 or step == total_steps):
            print(f"  {tag:<20} step {step:>5}/{total_steps}  loss {loss:.3f}", flush=True)

    cpu0 = time.process_time()
    result = train_in_process(zoo_source(member), profile, seed, overrides, on_progress=progress)
    result["cpu_s"] = time.process_time() - cpu0  # CPU seconds of the whole run: the cost on a shared box
    return result


# ---------------------------------------------------------------- statistics

def kendall_tau_b(x: list[float], y: list[float]) -> float:
    """Kendall's tau-b (ties in either list handled): +1 same order, -1 reversed, NaN if undefined."""
    if len(x) != len(y):
        raise ValueError("kendall_tau_b: lists of different lengths")
    concordant = discordant = ties_x = ties_y = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        dx, dy = x[i] - x[j], y[i] - y[j]
        if dx == 0 and dy == 0:
            continue  # tied in both: counts in neither denominator term's complement
        if dx == 0:
            ties_x += 1
        elif dy == 0:
            ties_y += 1
        elif (dx > 0) == (dy > 0):
            concordant += 1
        else:
            discordant += 1
    denom = math.sqrt((concordant + discordant + ties_x) * (concordant + discordant + ties_y))
    return (concordant - discordant) / denom if denom else float("nan")


def mean_abs_seed_difference(values: list[float]) -> float | None:
    """Mean |a - b| over all pairs of seeds (None with fewer than two seeds)."""
    pairs = list(itertools.combinations(values, 2))
    return sum(abs(a - b) for a, b in pairs) / len(pairs) if pairs else None


@dataclass
class MetricSummary:
    mean: float
    spread: float  # half the range over seeds (two seeds: mean -+ spread are the two values)
    seeds: list[float]
    seed_noise: float | None  # mean absolute difference between seeds


def summarise(records: list[RunRecord]) -> dict[str, dict[str, dict[str, MetricSummary]]]:
    """profile -> member -> metric -> summary over seeds (failed runs left out)."""
    grouped: dict[str, dict[str, list[RunRecord]]] = {}
    for r in records:
        if r.error is None:
            grouped.setdefault(r.profile, {}).setdefault(r.member, []).append(r)
    out: dict = {}
    for prof, members in grouped.items():
        for member, runs in members.items():
            metrics = sorted(set.intersection(*(set(r.values) for r in runs)))
            out.setdefault(prof, {})[member] = {
                m: MetricSummary(statistics.fmean(v := [r.values[m] for r in sorted(runs, key=lambda r: r.seed)]),
                                 (max(v) - min(v)) / 2, v, mean_abs_seed_difference(v))
                for m in metrics}
    return out


def primary_metric(summary_of_profile: dict[str, dict[str, MetricSummary]]) -> str:
    """The ranking metric of a profile: recall on MQAR, bits per byte on text, else the loss."""
    present = set.union(*(set(m) for m in summary_of_profile.values())) if summary_of_profile else set()
    if any(k.split("/")[0] in BATTERY_TASKS for k in present):
        return "benchmark"  # the battery: the mean over its tasks
    for metric in (RECALL, "bytes_bpb/bits_per_byte"):
        if metric in present:
            return metric
    return "final_loss"


def ranking(summary_of_profile: dict[str, dict[str, MetricSummary]], metric: str) -> list[str]:
    """Members best first by the mean of `metric`."""
    sign = -1 if HIGHER_IS_BETTER.get(metric, True) else 1
    have = [m for m, s in summary_of_profile.items() if metric in s]
    return sorted(have, key=lambda m: (sign * summary_of_profile[m][metric].mean, m))


def tau_vs_literature(summary_of_profile: dict[str, dict[str, MetricSummary]], metric: str = RECALL) -> dict:
    """Kendall tau-b between the measured means of `metric` and the literature's recall order."""
    members = [m for m in summary_of_profile if m in LITERATURE_RECALL_RANK and metric in summary_of_profile[m]]
    if len(members) < 2:
        return {"metric": metric, "members": members, "tau_b": None}
    sign = 1 if HIGHER_IS_BETTER.get(metric, True) else -1
    measured = [sign * summary_of_profile[m][metric].mean for m in members]
    literature = [-LITERATURE_RECALL_RANK[m] for m in members]  # rank 1 best -> largest
    return {"metric": metric, "members": members, "tau_b": kendall_tau_b(measured, literature)}


def seed_noise(summary: dict[str, dict[str, dict[str, MetricSummary]]]) -> dict:
    """profile -> {"per_member": {member: {metric: noise}}, "pooled": {metric: mean over members},
    "median": {metric: median over members}}; members with one seed have no noise and are left out."""
    out = {}
    for prof, members in summary.items():
        per_member = {m: {k: s.seed_noise for k, s in metrics.items() if s.seed_noise is not None}
                      for m, metrics in members.items()}
        per_member = {m: v for m, v in per_member.items() if v}
        metrics = sorted(set().union(*per_member.values())) if per_member else []
        pooled = {k: statistics.fmean([v[k] for v in per_member.values() if k in v]) for k in metrics}
        median = {k: statistics.median([v[k] for v in per_member.values() if k in v]) for k in metrics}
        out[prof] = {"per_member": per_member, "pooled": pooled, "median": median}
    return out


NOISE_POOLS = {"baseline": "baseline", "mean": "pooled", "median": "median"}
BASELINE = "deltanet"  # the campaigns' default baseline: its own seed noise is what a candidate is compared with


def judge_seed_noise(noise: dict, pool: str = "baseline") -> dict[str, dict[str, float]]:
    """The judge's setting (ARCHLAB_JUDGE_SEED_NOISE / Settings.judge_seed_noise): profile -> {"loss", "benchmark"},
    the mean absolute seed difference of final_loss and benchmark: the baseline's own ("baseline", the default:
    what a candidate is compared with), or pooled over members by their mean
    (conservative: one member that learns with one seed and not the other dominates it) or their median
    (robust to such a member, but members saturated at 100 % recall count as zero noise). Profiles run
    with overrides (e.g. fewer steps) are not the profile the judge scores, so they are left out."""
    key = NOISE_POOLS[pool]
    out = {}
    for prof, n in noise.items():
        if "+" in prof:
            continue
        source = n["per_member"].get(BASELINE, {}) if key == "baseline" else n[key]
        entry = {judge_key: source[metric] for judge_key, metric in JUDGE_METRICS.items() if metric in source}
        if entry:
            out[prof] = entry
    return out


def headroom(summary_of_profile: dict[str, dict[str, MetricSummary]], records: list[RunRecord],
             baseline: str = "deltanet", gap: float = 0.1) -> dict | None:
    """Does the proxy leave room above the baseline? Its benchmark, per task the gap to the best member
    (and how many tasks leave it >= `gap` below), the best member's margin over the baseline in units of the
    baseline's seed noise, and the seconds one run costs (train + eval, mean per member)."""
    base = summary_of_profile.get(baseline)
    if base is None or "benchmark" not in base:
        return None
    tasks = sorted(k for k in base if k.endswith("/acc"))
    per_task = {}
    for t in tasks:
        best = max((m for m in summary_of_profile if t in summary_of_profile[m]),
                   key=lambda m: summary_of_profile[m][t].mean)
        per_task[t] = {"baseline": base[t].mean, "best": summary_of_profile[best][t].mean, "best_member": best,
                       "gap": summary_of_profile[best][t].mean - base[t].mean}
    best = max(summary_of_profile, key=lambda m: summary_of_profile[m]["benchmark"].mean
               if "benchmark" in summary_of_profile[m] else -1.0)
    noise = base["benchmark"].seed_noise
    margin = summary_of_profile[best]["benchmark"].mean - base["benchmark"].mean
    prof_runs = [r for r in records if r.error is None and r.member in summary_of_profile]
    seconds, cpu = {}, {}
    for r in prof_runs:
        seconds.setdefault(r.member, []).append(r.train_s + r.eval_s)
        if r.result.get("cpu_s"):
            cpu.setdefault(r.member, []).append(float(r.result["cpu_s"]))
    fitness = {}
    if "final_loss" in base:
        from lab.judging import fitness as F
        for m, ms in summary_of_profile.items():  # the judge's formula on the means, scales from the noise
            if "benchmark" in ms and "final_loss" in ms:
                ls = F.loss_score(ms["final_loss"].mean, base["final_loss"].mean, base["final_loss"].seed_noise)
                bs = F.benchmark_score(ms["benchmark"].mean, base["benchmark"].mean, noise)
                fitness[m] = {"loss_score": ls, "benchmark_score": bs, "fitness": (ls + bs) / 2}
    return {"baseline": baseline, "baseline_benchmark": base["benchmark"].mean, "fitness": fitness,
            "baseline_noise": {"benchmark": noise, "loss": base["final_loss"].seed_noise if "final_loss" in base else None},
            "per_task": per_task, "tasks_with_gap": sum(v["gap"] >= gap for v in per_task.values()),
            "tasks": len(per_task), "gap": gap, "best_member": best, "best_margin": margin,
            "best_margin_in_noise": margin / noise if noise else None,
            "seconds_per_run": {m: statistics.fmean(v) for m, v in seconds.items()},
            "cpu_seconds_per_run": {m: statistics.fmean(v) for m, v in cpu.items()}}


# ---------------------------------------------------------------- the benchmark

@dataclass
class ValidityReport:
    records: list[RunRecord]
    summary: dict
    rankings: dict[str, dict]  # profile -> {"metric": ..., "order": [...]}
    tau: dict[str, dict]  # profile -> tau_vs_literature(...)
    noise: dict
    judge_seed_noise: dict[str, dict[str, float]]
    wall_s: float
    noise_pool: str = "baseline"
    headroom: dict = field(default_factory=dict)  # profile -> headroom(...) (profiles scored by a battery)

    def to_json(self) -> dict:
        return {"records": [{k: v for k, v in asdict(r).items() if k != "result"} for r in self.records],
                "summary": {p: {m: {k: asdict(s) for k, s in ms.items()} for m, ms in mem.items()}
                            for p, mem in self.summary.items()},
                "rankings": self.rankings, "tau": self.tau, "seed_noise": self.noise,
                "judge_seed_noise": self.judge_seed_noise, "noise_pool": self.noise_pool,
                "judge_seed_noise_by_pool": {p: judge_seed_noise(self.noise, p) for p in NOISE_POOLS},
                "literature_recall_rank": LITERATURE_RECALL_RANK, "headroom": self.headroom,
                "wall_s": self.wall_s}


def build_report(records: list[RunRecord], wall_s: float = 0.0, noise_pool: str = "baseline") -> ValidityReport:
    summary = summarise(records)
    rankings, tau = {}, {}
    for prof, members in summary.items():
        metric = primary_metric(members)
        rankings[prof] = {"metric": metric, "order": ranking(members, metric)}
        if metric in (RECALL, "benchmark"):
            tau[prof] = tau_vs_literature(members, metric)
    noise = seed_noise(summary)
    rooms = {prof: room for prof, members in summary.items()
             if rankings[prof]["metric"] == "benchmark"
             and (room := headroom(members, [r for r in records if r.profile == prof])) is not None}
    return ValidityReport(records, summary, rankings, tau, noise, judge_seed_noise(noise, noise_pool), wall_s,
                          noise_pool, rooms)


def run_validity(members: list[str], seeds: list[int], profiles: list[str], *, steps: int | None = None,
                 jobs: int = 1, threads: int = 1, cache: ZooCache | None = None, verbose: bool = True,
                 noise_pool: str = "baseline", on_record: Callable[[RunRecord, int, int], None] | None = None) -> ValidityReport:
    """Train members x seeds x profiles (cached results reused), then rank, correlate and measure noise.

    `jobs` > 1 trains in that many worker processes (each its own scratch dir and `threads` torch
    threads); `on_record(record, done, total)` reports each finished run.
    """
    if noise_pool not in NOISE_POOLS:
        raise KeyError(f"unknown noise pool {noise_pool!r}; valid: {', '.join(NOISE_POOLS)}")
    unknown = [m for m in members if m not in ZOO]
    if unknown:
        raise KeyError(f"unknown zoo member(s) {unknown}; the zoo has {', '.join(ZOO)}")
    for p in profiles:
        get_profile(p)  # KeyError with the valid names
    overrides = {"steps": steps} if steps else {}
    plan = [(m, p, s) for p in profiles for s in seeds for m in members]
    t0 = time.monotonic()
    records: list[RunRecord] = []
    todo = []
    for m, p, s in plan:
        hit = cache.get(zoo_source(m), p, s, overrides) if cache else None
        if hit is not None:
            records.append(RunRecord.from_result(m, profile_key(p, overrides), s, hit, cached=True))
            if on_record:
                on_record(records[-1], len(records), len(plan))
        else:
            todo.append((m, p, s))

    def finish(m: str, p: str, s: int, result: dict | None, error: str | None) -> None:
        key = profile_key(p, overrides)
        if error is None:
            if cache:
                cache.put(zoo_source(m), p, s, result, overrides, name=m)
            rec = RunRecord.from_result(m, key, s, result)
        else:
            rec = RunRecord(m, key, s, {}, error=error)
        records.append(rec)
        if on_record:
            on_record(rec, len(records), len(plan))

    if jobs <= 1:
        for m, p, s in todo:
            try:
                finish(m, p, s, _run_member(m, p, s, overrides, threads, verbose), None)
            except Exception as e:  # noqa: BLE001 - one member's failure is a row, not the end of the benchmark
                finish(m, p, s, None, f"{type(e).__name__}: {e}")
    else:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(_run_member, m, p, s, overrides, threads, verbose): (m, p, s) for m, p, s in todo}
            for fut in as_completed(futures):
                m, p, s = futures[fut]
                try:
                    finish(m, p, s, fut.result(), None)
                except Exception as e:  # noqa: BLE001
                    finish(m, p, s, None, f"{type(e).__name__}: {e}")
    order = {k: i for i, k in enumerate(plan)}
    records.sort(key=lambda r: order.get((r.member, r.profile.split("+")[0], r.seed), 0))
    return build_report(records, time.monotonic() - t0, noise_pool)
