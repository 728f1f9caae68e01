"""Which parent policy finds discoveries that hold? (not in CI: it trains hundreds of CPU minutes at a real budget)

On the same budget of candidate experiments per campaign, and for several campaign seeds, compare:
  evolution   the lab's loop: parents drawn by the default policy (topk-uniform: the top fifth, at most 10) of
              the pool of everything scored so far (baseline included), references from the pool, the offline
              proposer's child
  best-of-n   the same proposer, parent always DeltaNet, no references: sampling with no pool
  uct         the loop with another parent policy (UCT: fitness plus an exploration bonus)

Each campaign runs the lab's defaults, in-process and without the services:
- DeltaNet, the baseline, trained once per seed in the sandbox (saved, shared by the arms of that seed);
- size-matched search: the proposer aims below, and a program above, (1 + --max-params-ratio) x DeltaNet's
  parameters is refused before training (`lab/judging/size.py`);
- every candidate checked statically, trained and evaluated by the engineer's runner in the sandbox, and stopped
  at a rung (1/2, 3/4 of the steps) when its trusted held-out loss there is worse than DeltaNet's by more than
  ARCHLAB_ENGINEER_STOP_NOISES seed noises of that step (`worker.worse_at_rung`; `--no-stop` trains every candidate
  to the end and reports the stop as a counterfactual instead);
- scored by the judge's formula against DeltaNet at the same seed, with the profile's seed noise;
- a claim (significant, better by more than one noise: `replication.is_claim`) re-trained unchanged on --replicate
  held-out seeds (`replication.replicate_seed`) and judged by Welch's test (`significance.compare`): "confirmed" or
  "not replicated"; the pool ranks a replicated candidate by its replicated fitness, as the archive does.

A campaign's **best confirmed fitness** is the highest replicated fitness among its confirmed candidates, or 0.5
(DeltaNet's own fitness: what a campaign that found nothing that holds keeps) when none is confirmed. Printed per
arm: its mean over seeds with a bootstrap 95 % interval (`significance.bootstrap_mean`), the best first-run
fitness, claims, confirmations, stopped and failed candidates, candidates per CPU-hour; then the paired difference
of best confirmed fitness between each two arms over the seeds both finished, with its interval.

A run is deterministic in its program, seed and settings, and the arms of a seed often draw the same child of
DeltaNet: each run is trained once and kept under `<out>/runs/` (a reused run still counts its CPU seconds in
its campaign, as the lab would pay them).

Resumable: every finished candidate is saved to `<out>/<arm>-seed<S>/progress.json`, a finished campaign to its
`summary.json`, the baseline of a seed to `<out>/baseline-seed<S>.json`; run the same command again to go on (a
candidate in flight when it was interrupted is trained again). The table is printed from every summary under
--out, so seeds can be added over several runs (`--report` prints it without training).

    python bench/discovery.py --budget 12 --seeds 0,1,2,3,4,5 --jobs 2 [--profile cpu-tiny] [--steps N]
                              [--arms evolution,best-of-n,uct] [--replicate 2] [--max-params-ratio 0.1]
                              [--no-stop] [--out bench-discovery/] [--report] [--confirm-seeds K]

`--confirm-seeds K` runs no campaign: it re-trains every claim of the finished campaigns under --out on held-out
seeds 1..K (only those its campaign did not train; kept in `<arm>-seed<S>/replication-k<K>.json`, apart from the
campaign's record) and prints the table twice: claims judged as the campaigns judged them, then on K seeds. A
campaign chose its parents by the replication it ran; this only measures its claims with more power (with 2
held-out seeds, Welch's test has about one degree of freedom on the candidate's side when its two runs differ).

Campaigns run seed by seed (every arm of a seed before the next seed, so that partial runs stay paired), --jobs
at a time; a campaign is sequential (each parent draw sees every earlier score).
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")

ARMS = ("evolution", "best-of-n", "uct")
POLICY = {"evolution": "topk-uniform", "uct": "uct"}   # best-of-n draws no parent
BASELINE_FITNESS = 0.5   # the judge's fitness of DeltaNet against itself: both components at sigmoid(0)


def stop_noises() -> float:
    from services.common.settings import Settings
    return Settings().engineer_stop_noises


def rung_steps(profile: str, overrides: dict) -> tuple[int, ...]:
    """The worker's rungs (services/engineer/worker.py rung_steps, at ARCHLAB_ENGINEER_RUNG_FRACS)."""
    from lab.training.profiles import get_profile
    from services.common.settings import Settings
    from services.engineer.worker import rung_steps as worker_rungs
    return worker_rungs(get_profile(profile, **overrides), Settings().engineer_rung_fracs)


def first_stop(rungs: dict, base_rungs: dict, profile) -> int | None:
    """The first rung step at which the worker would stop a run with held-out losses `rungs` against the baseline's
    `base_rungs` (None: trained to the end)."""
    from services.engineer.worker import worse_at_rung
    return next((s for s in sorted(rungs) if worse_at_rung(profile, s, rungs[s], base_rungs.get(s), stop_noises())),
                None)


def _rung_loss(scratch: str, step: int, limits) -> float | None:
    """The trusted held-out loss of the weights the run saved at `step` (what the worker judges at the rung)."""
    from lab.training.runner import rung_dir
    from lab.training.scoring import forward_limits, score
    from lab.training.profiles import get_profile

    job = json.loads((Path(scratch) / "job.json").read_text())
    if not (rung_dir(job["workdir"], step) / "model.pt").exists():
        return None
    rjob = {**job, "workdir": str(rung_dir(job["workdir"], step))}
    prof = get_profile(job["profile"], **job["profile_overrides"])
    fields, _ = score(rjob, Path(scratch), limits=forward_limits(limits, prof), probe=False, benchmark=False)
    return fields.get("final_loss")


def train(code: str, profile: str, seed: int, overrides: dict, base_rungs: dict | None) -> dict:
    """One program trained in the sandbox, judged at each rung as the worker judges it: {"result" (TrainResult dict)
    or None, "cpu_s", "error", "rung_losses" {step: held-out loss}, "stopped_at" (step) or None}. `base_rungs`
    None: never stopped (the baseline itself, or --no-stop)."""
    from lab.training.profiles import get_profile
    from lab.training.sandboxed import run_training_sandboxed, training_limits
    from services.engineer.worker import worse_at_rung

    prof = get_profile(profile, **overrides)
    limits = training_limits(prof)
    stop, losses, stopped = threading.Event(), {}, []
    noises = stop_noises()
    with tempfile.TemporaryDirectory(prefix="archlab-discovery-") as scratch:
        def on_rung(rung: dict) -> None:   # the sandbox's reader thread; the child trains on meanwhile
            step = int(rung.get("step") or 0)
            loss = _rung_loss(scratch, step, limits)
            if loss is None:
                return
            losses[step] = loss
            if base_rungs is not None and worse_at_rung(prof, step, loss, base_rungs.get(step), noises):
                stopped.append(step)
                stop.set()

        res = run_training_sandboxed(code, profile, seed, scratch=scratch, profile_overrides=overrides,
                                     rungs=rung_steps(profile, overrides), on_rung=on_rung, stop=stop)
    cpu = res.cpu_s or res.wall_s  # the sandbox's CPU figure when it has one, else its wall time
    out = {"result": None, "cpu_s": round(cpu, 1), "error": "", "rung_losses": losses,
           "stopped_at": stopped[0] if stopped else None}
    if stopped:
        return out
    if res.ok and res.result and "error" not in res.result:
        out["result"] = res.result
    else:
        out["error"] = f"{res.kind}: {res.error or (res.result or {}).get('error', {}).get('message', '')}"
    return out


def train_once(out_dir: str, code: str, profile: str, seed: int, overrides: dict, base_rungs: dict | None) -> dict:
    """`train`, remembered under `<out>/runs/`: a run is deterministic in its program, seed and settings (one
    thread, CPU), and the arms of one seed often draw the same child of DeltaNet, so each is trained once."""
    import hashlib

    key = hashlib.sha256(json.dumps([code, profile, seed, overrides, base_rungs, stop_noises(),
                                     rung_steps(profile, overrides)], sort_keys=True, default=str).encode()).hexdigest()
    path = Path(out_dir) / "runs" / f"{key[:24]}.json"
    if path.exists():
        run = json.loads(path.read_text())
        run["rung_losses"] = {int(k): v for k, v in run["rung_losses"].items()}
        return {**run, "reused": True}
    run = train(code, profile, seed, overrides, base_rungs)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(run))
    tmp.replace(path)
    return run


def baseline(profile: str, seed: int, overrides: dict, out_dir: str) -> dict:
    """DeltaNet at `seed`, trained in the sandbox like a campaign's baseline, with its rung losses (saved)."""
    from lab.zoo import zoo_source

    path = Path(out_dir) / f"baseline-seed{seed}.json"
    if path.exists():
        return json.loads(path.read_text())
    run = train(zoo_source("deltanet"), profile, seed, overrides, None)
    if run["result"] is None:
        raise RuntimeError(f"DeltaNet did not train at seed {seed}: {run['error']}")
    base = {"seed": seed, "final_loss": run["result"]["final_loss"], "benchmark": run["result"]["benchmark"],
            "params": run["result"]["params"], "cpu_s": run["cpu_s"],
            "rung_losses": {str(s): v for s, v in run["rung_losses"].items()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(base, indent=1))
    return base


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def score_against(result: dict, base: dict, noise, campaign: str, profile: str) -> dict:
    """The judge's score fields of a run's {"final_loss", "benchmark"} against DeltaNet's at the same seed."""
    from lab.judging.score import score_fields

    base_ev = SimpleNamespace(experiment_id="deltanet", final_loss=base["final_loss"], benchmark=base["benchmark"])
    ev = SimpleNamespace(campaign_id=campaign, profile=profile, final_loss=result["final_loss"],
                         benchmark=result["benchmark"])
    return score_fields(ev, base_ev, noise=noise)


def campaign(arm: str, seed: int, budget: int, profile: str, overrides: dict, replicate: int, ratio: float,
             stopping: bool, out_dir: str) -> dict:
    """One campaign of `budget` candidates (replications on top); resumes from its progress file."""
    import torch

    from lab.checks import profile_dims, static_check
    from lab.judging import fitness as F
    from lab.judging.size import param_ceiling
    from lab.training.profiles import get_profile
    from services.archive.policies import POLICIES, Member
    from services.archive.replication import is_claim
    from services.researcher.codegen import model_params, render
    from services.researcher.genome import ZOO_DESIGNS, canonical
    from services.researcher.mutator import mutate

    torch.set_num_threads(1)
    out = Path(out_dir) / f"{arm}-seed{seed}"
    if (out / "summary.json").exists():
        return json.loads((out / "summary.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    base = baseline(profile, seed, overrides, out_dir)
    base_rungs = {int(s): v for s, v in base["rung_losses"].items()}
    prof = get_profile(profile, **overrides)
    noise = F.resolve_noise(profile)
    dims = profile_dims(profile)
    ceiling = param_ceiling(base["params"], ratio)

    def fits(design: dict) -> bool:
        return ceiling is None or model_params(design, dims) <= ceiling

    def scored(result: dict) -> dict:
        return score_against(result, base, noise, f"{arm}-{seed}", profile)

    progress = out / "progress.json"
    state = json.loads(progress.read_text()) if progress.exists() else {
        "arm": arm, "seed": seed, "commit": commit(), "rows": [], "seen": [],
        "pool": [{"id": "deltanet", "design": canonical(ZOO_DESIGNS["deltanet"]), "fitness": BASELINE_FITNESS,
                  "children": 0}]}
    rows, pool, seen = state["rows"], state["pool"], set(state["seen"])
    for i in range(len(rows), budget):
        rng_seed = (seed * 1_000_003 + i) * 7 + ARMS.index(arm)
        if arm not in POLICY:  # best-of-n: always the baseline, no references
            parent, refs = pool[0], []
        else:
            ranked = sorted(pool, key=lambda m: -(m["fitness"] or 0.0))
            members = [Member(m["id"], r + 1, m["fitness"], m["children"], doc=m) for r, m in enumerate(ranked)]
            draw = POLICIES[POLICY[arm]](members, random.Random(rng_seed), {})
            parent, refs = draw.parent.doc, [r.doc for r in draw.references]
        feedback: list[str] = []
        for _ in range(10):  # the researcher's retries: a duplicate, a refused check or size is not an experiment
            design, name, motivation = mutate(parent["design"], [r["design"] for r in refs], rng_seed, feedback,
                                              fits=fits)
            key = json.dumps(canonical(design), sort_keys=True, default=list)
            code = render(design, name, motivation)
            if key in seen or not fits(design) or not static_check(code).ok:
                feedback.append(name)
                rng_seed += 1
                continue
            break
        seen.add(key)
        parent["children"] += 1
        run = train_once(out_dir, code, profile, seed, overrides, base_rungs if stopping else None)
        row = {"i": i, "name": name, "parent": parent["id"], "params": model_params(design, dims),
               "cpu_s": run["cpu_s"], "error": run["error"], "stopped_at": run["stopped_at"],
               "reused": bool(run.get("reused")),
               "rung_losses": {str(s): v for s, v in run["rung_losses"].items()}}
        if not stopping:   # the counterfactual: where the worker would have stopped it
            stop = first_stop(run["rung_losses"], base_rungs, prof) if run["result"] else None
            row["would_stop_at"] = stop
        result, verdict = run["result"], ""
        if result is not None:
            fields = scored(result)
            row.update(fitness=fields["fitness"], benchmark=result["benchmark"], final_loss=result["final_loss"],
                       significant=fields.get("significant"))
            member = {"id": name, "design": canonical(design), "fitness": fields["fitness"], "children": 0,
                      "code": code}
            claim = {"role": "candidate", "fitness": fields["fitness"], "score": fields}   # the archive's record
            if replicate and is_claim(claim):
                row["replication"] = replication(out_dir, code, profile, seed, overrides, replicate, base,
                                                 base_rungs, noise, scored, stopping)
                row["cpu_s"] += sum(r["cpu_s"] for r in row["replication"]["runs"])
                member["fitness"] = row["replication"]["replicated_fitness"]   # pool.py's selection fitness
                verdict = f", {row['replication']['verdict']} ({_num(member['fitness'])} on held-out seeds)"
            pool.append(member)
        rows.append(row)
        state["seen"] = sorted(seen)
        tmp = progress.with_suffix(".tmp")   # rows, pool and seen stay consistent if interrupted mid-write
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(progress)
        what = (f"fitness {row['fitness']:.3f} benchmark {row['benchmark']:.3f}{verdict}" if result is not None
                else f"stopped at step {run['stopped_at']}" if run["stopped_at"] else f"failed {run['error']}")
        print(f"[{arm} seed {seed}] {i + 1}/{budget} {name} (parent {parent['id']}): {what}, {row['cpu_s']:.0f} CPU s",
              flush=True)
    summary = summarize(arm, seed, budget, rows, base, noise, state.get("commit"))
    for m in pool[1:]:
        if m["id"] in summary["confirmed"] or m["id"] == summary["best_first_name"]:
            (out / f"{m['id']}.py").write_text(m["code"])
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def _num(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def held_out_runs(out_dir: str, code: str, profile: str, seed: int, overrides: dict, k: int,
                  base_rungs: dict | None) -> list[dict]:
    """A claim trained unchanged on the campaign's held-out seeds 1..k (`replicate_seed`; runs trained before
    come back from `<out>/runs/`): {"seed", "cpu_s", "stopped_at", "error", "final_loss", "benchmark"} each."""
    from services.archive.replication import replicate_seed

    runs = []
    for j in range(1, k + 1):
        run = train_once(out_dir, code, profile, replicate_seed(seed, j), overrides, base_rungs)
        r = run["result"]
        runs.append({"seed": replicate_seed(seed, j), "cpu_s": run["cpu_s"], "stopped_at": run["stopped_at"],
                     "error": run["error"], "final_loss": r["final_loss"] if r else None,
                     "benchmark": r["benchmark"] if r else None})
    return runs


def replication(out_dir: str, code: str, profile: str, seed: int, overrides: dict, k_max: int, base: dict,
                base_rungs: dict, noise, scored, stopping: bool) -> dict:
    """The claim trained again on `k_max` held-out seeds and judged as the archive judges it
    (services/archive/replication.py assess): a run stopped early leaves no result, and a stop means
    "not replicated"."""
    runs = held_out_runs(out_dir, code, profile, seed, overrides, k_max, base_rungs if stopping else None)
    for r in runs:
        r["fitness"] = scored(r)["fitness"] if r["final_loss"] is not None else None
    fits = [r["fitness"] for r in runs if r["fitness"] is not None]
    return {"runs": runs, "replicated_fitness": statistics.fmean(fits) if fits else None,
            **judge_replication(runs, base, noise)}


def judge_replication(runs: list[dict], base: dict, noise) -> dict:
    """{"verdict", "reason"} of a claim's held-out runs against the baseline, by the archive's test (a run
    stopped early: "not replicated"). Kept apart from the training so that `--report` judges saved runs again
    with the test as it is now: the pool's ranking uses the replicated fitness, never the verdict."""
    from services.archive.replication import judge

    confirmed, reason, _ = judge([r for r in runs if r["final_loss"] is not None], base, noise,
                                 [f"seed {r['seed']}" for r in runs if r["stopped_at"]])
    return {"verdict": "confirmed" if confirmed else "not replicated", "reason": reason}


def extended_runs_path(campaign_dir: Path, k: int) -> Path:
    return campaign_dir / f"replication-k{k}.json"


def extend_replication(out_dir: str, profile: str, overrides: dict, k: int, stopping: bool, jobs: int) -> None:
    """Every saved claim of every finished campaign re-trained on held-out seeds up to `k` (the missing ones
    only), kept apart from the campaign's own record in `<arm>-seed<S>/replication-k<k>.json` ({name: runs}):
    the campaign chose its parents with the replication it ran; this measures its claims with more power."""
    todo = []
    for summary_path in sorted(Path(out_dir).glob("*-seed*/summary.json")):
        summary = json.loads(summary_path.read_text())
        pool = json.loads((summary_path.parent / "progress.json").read_text())["pool"]
        code = {m["id"]: m.get("code") for m in pool}
        base = json.loads((Path(out_dir) / f"baseline-seed{summary['seed']}.json").read_text())
        base_rungs = {int(s): v for s, v in base["rung_losses"].items()} if stopping else None
        for row in summary["rows"]:
            if row.get("replication") and code.get(row["name"]):
                todo.append((summary_path.parent, row["name"], code[row["name"]], summary["seed"], base_rungs))
    print(f"{len(todo)} claims to judge on {k} held-out seeds", flush=True)

    def keep(d: Path, name: str, runs: list[dict]) -> None:
        path = extended_runs_path(d, k)
        extended = json.loads(path.read_text()) if path.exists() else {}
        extended[name] = runs
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(extended, indent=1))
        tmp.replace(path)
        print(f"{d.name} {name}: held-out losses {', '.join(_num(r['final_loss']) for r in runs)}", flush=True)

    if jobs <= 1:
        for d, name, code, seed, base_rungs in todo:
            keep(d, name, held_out_runs(out_dir, code, profile, seed, overrides, k, base_rungs))
        return
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(held_out_runs, out_dir, code, profile, seed, overrides, k, base_rungs): (d, name)
                   for d, name, code, seed, base_rungs in todo}
        for fut in as_completed(futures):
            keep(*futures[fut], fut.result())


def summarize(arm: str, seed: int, budget: int, rows: list[dict], base: dict, noise, at_commit: str | None) -> dict:
    scored = [r for r in rows if r.get("fitness") is not None]
    best = max(scored, key=lambda r: r["fitness"], default=None)
    confirmed = [r for r in scored if (r.get("replication") or {}).get("verdict") == "confirmed"]
    best_confirmed = max((r["replication"]["replicated_fitness"] for r in confirmed), default=None)
    replicated = [r["replication"]["replicated_fitness"] for r in scored
                  if (r.get("replication") or {}).get("replicated_fitness") is not None]
    margin = 2 * (noise.benchmark if noise and noise.benchmark else 0.0)
    return {
        "arm": arm, "seed": seed, "budget": budget, "commit": at_commit,
        "baseline": {k: base[k] for k in ("final_loss", "benchmark", "params")},
        "best_confirmed_fitness": max(BASELINE_FITNESS, best_confirmed or BASELINE_FITNESS),
        "confirmed": [r["name"] for r in confirmed],
        "best_replicated_fitness": max([BASELINE_FITNESS, *replicated]),
        "claims": sum(1 for r in rows if r.get("replication")),
        "best_first_fitness": best["fitness"] if best else None, "best_first_name": best["name"] if best else None,
        "best_first_benchmark": best["benchmark"] if best else None,
        "beats_baseline_2x_noise": sum(1 for r in scored if r["benchmark"] - base["benchmark"] > margin),
        "stopped": sum(1 for r in rows if r.get("stopped_at")),
        "would_stop": sum(1 for r in rows if r.get("would_stop_at")),
        "failed": sum(1 for r in rows if r.get("fitness") is None and not r.get("stopped_at")),
        "candidates": len(rows), "cpu_s": sum(r["cpu_s"] for r in rows), "rows": rows,
        "noise": {"loss": noise.loss, "benchmark": noise.benchmark} if noise else None}


def rejudged(summary_path: Path, profile: str, confirm_seeds: int | None = None) -> dict | None:
    """A saved campaign's summary with its claims judged again by the current test (from its saved rows): the
    current replication test with the profile's current seed noise (and the seeds it was measured on); the noise
    the campaign ran with stays for what it decided then (fitness, claims). With `confirm_seeds`, each claim is
    judged on its runs in replication-k<confirm_seeds>.json (`--confirm-seeds`) instead of the campaign's own;
    None when a claim has none there yet."""
    from lab.judging import fitness as F

    summary = json.loads(summary_path.read_text())
    noise = F.SeedNoise.from_dict(summary.get("noise"))
    current = F.resolve_noise(profile)
    base = summary["baseline"]
    extended_path = extended_runs_path(summary_path.parent, confirm_seeds) if confirm_seeds else None
    extended = json.loads(extended_path.read_text()) if extended_path and extended_path.exists() else {}
    for row in summary["rows"]:
        if not row.get("replication"):
            continue
        if confirm_seeds:
            if row["name"] not in extended:
                return None
            runs = extended[row["name"]]
            fits = [score_against(r, base, noise, summary_path.parent.name, profile)["fitness"]
                    for r in runs if r["final_loss"] is not None]
            row["replication"] = {"runs": runs, "replicated_fitness": statistics.fmean(fits) if fits else None}
        row["replication"].update(judge_replication(row["replication"]["runs"], base, current))
    return summarize(summary["arm"], summary["seed"], summary["budget"], summary["rows"], base, noise,
                     summary.get("commit"))


def report(out_dir: str, arms: list[str], profile: str, confirm_seeds: int | None = None) -> None:
    """The table, from every summary under `out_dir`; with `confirm_seeds`, each claim judged on that many
    held-out seeds (`extend_replication`) instead of the campaign's own replication."""
    from lab.judging.significance import bootstrap_mean

    paths = sorted(Path(out_dir).glob("*-seed*/summary.json"))
    judged = {p: rejudged(p, profile, confirm_seeds) for p in paths}
    missing = [p.parent.name for p, s in judged.items() if s is None]
    by = {(s["arm"], s["seed"]): s for s in judged.values() if s is not None and s["arm"] in arms}
    if missing:
        print(f"\nleft out of the table on {confirm_seeds} seeds: {', '.join(missing)} (claims not yet trained on "
              f"{confirm_seeds} held-out seeds: run --confirm-seeds {confirm_seeds} without --report)")
    if not by:
        print(f"no finished campaign under {out_dir}/")
        return
    how = (f"claims judged on {confirm_seeds} held-out seeds (replication-k{confirm_seeds}.json)" if confirm_seeds
           else "claims judged on the campaigns' own held-out seeds")
    print(f"\n{len(by)} campaigns under {out_dir}/ (commits {', '.join(sorted({str(s['commit']) for s in by.values()}))}); "
          f"{how}")
    print(f"{'arm':<10} {'seeds':>5} {'best confirmed fitness, mean [95% CI]':>38} {'best first-run fitness':>23} "
          f"{'best held-out fitness':>22} {'claims':>7} {'confirmed':>10} {'stopped':>8} {'failed':>7} "
          f"{'cand/CPU-h':>11}")
    for a in arms:
        rs = [by[k] for k in sorted(by) if k[0] == a]
        if not rs:
            continue
        conf = bootstrap_mean([r["best_confirmed_fitness"] for r in rs])
        firsts = [r["best_first_fitness"] or 0.0 for r in rs]  # none scored: 0, as in the paired difference below
        cands, cpu = sum(r["candidates"] for r in rs), sum(r["cpu_s"] for r in rs)
        held_out = statistics.fmean(r["best_replicated_fitness"] for r in rs)
        print(f"{a:<10} {len(rs):>5} {conf.text():>38} {_num(statistics.fmean(firsts)):>23} {_num(held_out):>22} "
              f"{sum(r['claims'] for r in rs):>7} {sum(len(r['confirmed']) for r in rs):>10} "
              f"{sum(r['stopped'] for r in rs):>8} {sum(r['failed'] for r in rs):>7} "
              f"{3600 * cands / max(1e-9, cpu):>11.2f}")
    for key, what in (("best_confirmed_fitness", "best confirmed fitness"),
                      ("best_first_fitness", "best first-run fitness (a campaign with none scored: 0)"),
                      ("best_replicated_fitness", "best held-out fitness (0.5 where no claim)")):
        print(f"\npaired difference of {what} (first - second), over the seeds both finished:")
        for a, b in itertools.combinations(arms, 2):
            seeds = sorted(s for (x, s) in by if x == a and (b, s) in by)
            if not seeds:
                continue
            diffs = [(by[(a, s)][key] or 0.0) - (by[(b, s)][key] or 0.0) for s in seeds]
            iv = bootstrap_mean(diffs)
            wins = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
            print(f"  {a} - {b}: {iv.mean:+.3f} [{iv.low:+.3f}, {iv.high:+.3f}] over {len(seeds)} seeds "
                  f"({wins[0]} ahead, {wins[1]} behind, {len(seeds) - sum(wins)} level)")
    print("best confirmed fitness: the highest replicated fitness among a campaign's confirmed candidates, "
          f"{BASELINE_FITNESS} (DeltaNet's own) where none was confirmed; best first-run fitness: the highest "
          "fitness of a first run, 0 where every candidate was stopped; best held-out fitness: the highest "
          f"replicated fitness of a claim whatever its verdict (measured on seeds it was not selected on), "
          f"{BASELINE_FITNESS} where none; intervals: percentile bootstrap over seeds")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=int, default=12, help="explored candidates per campaign (replications on top)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--arms", default=",".join(ARMS))
    ap.add_argument("--profile", default="cpu-tiny")
    ap.add_argument("--steps", type=int, default=None, help="override the profile's steps (reported as such)")
    ap.add_argument("--replicate", type=int, default=2, help="held-out seeds per claim (0: no replication)")
    ap.add_argument("--max-params-ratio", type=float, default=None,
                    help="the size ceiling over DeltaNet's parameters (default: the lab's, 0.10)")
    ap.add_argument("--no-stop", action="store_true", help="train every candidate to the end (stop counterfactual)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default="bench-discovery")
    ap.add_argument("--report", action="store_true", help="print the table of the summaries under --out; train nothing")
    ap.add_argument("--confirm-seeds", type=int, default=None, metavar="K",
                    help="re-train every saved claim on K held-out seeds (the missing ones) and print the table "
                         "judged on them too; with --report: print it from the runs already saved")
    args = ap.parse_args()
    arms = [a for a in args.arms.split(",") if a]
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        sys.exit(f"unknown arm(s) {unknown}; valid: {', '.join(ARMS)}")
    overrides = {"steps": args.steps} if args.steps else {}
    if args.confirm_seeds is not None and args.confirm_seeds < 1:
        sys.exit("--confirm-seeds must be at least 1")
    if args.report:
        report(args.out, arms, args.profile)
        if args.confirm_seeds:
            report(args.out, arms, args.profile, args.confirm_seeds)
        return
    if args.confirm_seeds:
        extend_replication(args.out, args.profile, overrides, args.confirm_seeds, not args.no_stop, args.jobs)
        report(args.out, arms, args.profile)
        return report(args.out, arms, args.profile, args.confirm_seeds)
    from lab.judging.size import DEFAULT_MAX_PARAMS_RATIO
    ratio = DEFAULT_MAX_PARAMS_RATIO if args.max_params_ratio is None else args.max_params_ratio
    seeds = [int(s) for s in args.seeds.split(",") if s]
    t0 = time.monotonic()
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn")) as pool:
        for fut in as_completed([pool.submit(baseline, args.profile, s, overrides, args.out) for s in seeds]):
            b = fut.result()
            print(f"DeltaNet seed {b['seed']}: loss {b['final_loss']:.3f} benchmark {b['benchmark']:.3f} "
                  f"({b['params']:,} parameters)", flush=True)
        futures = [pool.submit(campaign, a, s, args.budget, args.profile, overrides, args.replicate, ratio,
                               not args.no_stop, args.out) for s in seeds for a in arms]
        for fut in as_completed(futures):
            s = fut.result()
            print(f"done: {s['arm']} seed {s['seed']}: best confirmed fitness {s['best_confirmed_fitness']:.3f}",
                  flush=True)
    print(f"\nprofile {args.profile}{' steps ' + str(args.steps) if args.steps else ''}, budget {args.budget}, "
          f"replicate {args.replicate}, ceiling +{ratio:.0%}, {'no stopping' if args.no_stop else 'early stopping'}, "
          f"seeds {seeds}, {time.monotonic() - t0:.0f} s wall")
    report(args.out, arms, args.profile)


if __name__ == "__main__":
    main()
