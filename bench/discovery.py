"""Does the lab's search beat chance? (not in CI: it trains hundreds of CPU minutes at a real budget)

On the same budget of candidate experiments per campaign, and for several campaign seeds, compare:
  evolution   the lab's loop: parents drawn by the default policy (topk-uniform: the top fifth, at most 10) of
              the pool of everything scored so far (baseline included), references from the pool, the offline
              proposer's child
  best-of-n   the same proposer, parent always DeltaNet, no references: sampling with no pool
  uct         the loop with another parent policy (UCT: fitness plus an exploration bonus)

Every candidate is checked statically, trained and evaluated by the engineer's runner in the sandbox
(`run_training_sandboxed`, the worker's limits), and scored by the judge's formula (`score_fields`) against
DeltaNet trained with the same seed, with the profile's seed noise. Printed per arm: the best fitness found
(mean over seeds and per seed), the number of layers beating DeltaNet's benchmark by > 2x the seed noise, and
whether any beats Gated DeltaNet's benchmark (zoo cache or trained here). The winning programs are saved.
Early stopping (issue 23), as a counterfactual from the same runs: every run also saves its weights at the
worker's rungs (1/2 and 3/4 of the steps) and the trusted scorer's held-out loss there is kept; DeltaNet is trained
once more per seed the same way for its rung losses. Printed per arm: candidates per CPU-hour as run, and with each
candidate that the worker would have stopped (at its first rung with a loss > DeltaNet's there + 4 seed noises of
that step, `Profile.loss_noise_at`) costing that rung's share of its CPU, and how many winners (or the best) it
would have stopped.

    python bench/discovery.py --budget 12 --seeds 0,1,2 --jobs 2 [--profile cpu-tiny] [--steps N]
                              [--arms evolution,best-of-n,uct] [--out bench-discovery/]

A campaign is sequential (each parent draw sees every earlier score); campaigns run in parallel (--jobs).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")

ARMS = ("evolution", "best-of-n", "uct")
STOP_NOISES = 4.0       # early stopping's margin (ARCHLAB_ENGINEER_STOP_NOISES), in seed noises of the rung's step


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
    return next((s for s in sorted(rungs) if worse_at_rung(profile, s, rungs[s], base_rungs.get(s), STOP_NOISES)),
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


def _train(code: str, profile: str, seed: int, overrides: dict) -> tuple[dict | None, float, str]:
    """(TrainResult dict or None, CPU seconds, error) of one program trained in the sandbox; the result carries
    `rung_losses` ({step: held-out loss} at the worker's early-stopping rungs), for the counterfactual."""
    from lab.training.profiles import get_profile
    from lab.training.sandboxed import run_training_sandboxed, training_limits

    steps = rung_steps(profile, overrides)
    limits = training_limits(get_profile(profile, **overrides))
    with tempfile.TemporaryDirectory(prefix="archlab-discovery-") as scratch:
        res = run_training_sandboxed(code, profile, seed, scratch=scratch, profile_overrides=overrides, rungs=steps)
        rungs = {s: _rung_loss(scratch, s, limits) for s in steps} if res.ok else {}
    cpu = res.cpu_s or res.wall_s  # the sandbox's CPU figure when it has one, else its wall time
    if res.ok and res.result and "error" not in res.result:
        res.result["rung_losses"] = {s: v for s, v in rungs.items() if v is not None}
        return res.result, cpu, ""
    return None, cpu, f"{res.kind}: {res.error or (res.result or {}).get('error', {}).get('message', '')}"


def _zoo_code(name: str) -> str:
    from lab.zoo import zoo_source
    return zoo_source(name)


def _zoo(name: str, profile: str, seed: int, overrides: dict, cache_dir: Path | None) -> dict:
    """A zoo member's result (trusted code: in-process, cached like `archlab zoo bench`)."""
    from lab.tools.validity import ZooCache, train_in_process
    from lab.zoo import zoo_source

    cache = ZooCache(cache_dir) if cache_dir else None
    hit = cache.get(zoo_source(name), profile, seed, overrides) if cache else None
    if hit is not None:
        return hit
    result = train_in_process(zoo_source(name), profile, seed, overrides)
    if cache:
        cache.put(zoo_source(name), profile, seed, result, overrides, name=name)
    return result


def campaign(arm: str, seed: int, budget: int, profile: str, overrides: dict, cache_dir: str | None,
             out_dir: str) -> dict:
    """One campaign of `budget` candidates; returns its rows and summary."""
    import torch

    from services.archive.policies import POLICIES, Member
    from lab.judging import fitness as F
    from lab.judging.score import score_fields
    from lab.checks import static_check
    from lab.training.profiles import get_profile
    from services.researcher.codegen import render
    from services.researcher.genome import ZOO_DESIGNS, canonical
    from services.researcher.mutator import mutate

    torch.set_num_threads(1)
    cache = Path(cache_dir) if cache_dir else None
    base = _zoo("deltanet", profile, seed, overrides, cache)
    base_rungs = (_train(_zoo_code("deltanet"), profile, seed, overrides)[0] or {}).get("rung_losses") or {}
    prof = get_profile(profile.split("+")[0], **overrides)
    gdn = _zoo("gated_deltanet", profile, seed, overrides, cache)
    noise = F.resolve_noise(profile) if not overrides else F.resolve_noise(profile.split("+")[0])
    base_ev = SimpleNamespace(experiment_id="deltanet", final_loss=base["final_loss"], benchmark=base["benchmark"])

    def fitness_of(result: dict) -> dict:
        ev = SimpleNamespace(campaign_id=f"{arm}-{seed}", profile=profile, final_loss=result["final_loss"],
                             benchmark=result["benchmark"])
        return score_fields(ev, base_ev, noise=noise)

    pool = [{"id": "deltanet", "design": canonical(ZOO_DESIGNS["deltanet"]), "fitness": 0.5, "children": 0,
             "benchmark": base["benchmark"], "final_loss": base["final_loss"]}]
    rows, seen, cpu_total = [], set(), 0.0
    policy = {"evolution": "topk-uniform", "uct": "uct"}.get(arm)
    for i in range(budget):
        rng_seed = (seed * 1_000_003 + i) * 7 + ARMS.index(arm)
        if policy is None:  # best-of-n: always the baseline, no references
            parent, refs = pool[0], []
        else:
            ranked = sorted(pool, key=lambda m: -(m["fitness"] or 0.0))
            members = [Member(m["id"], r + 1, m["fitness"], m["children"], doc=m) for r, m in enumerate(ranked)]
            draw = POLICIES[policy](members, random.Random(rng_seed), {})
            parent, refs = draw.parent.doc, [r.doc for r in draw.references]
        feedback: list[str] = []
        for _ in range(10):  # the researcher's retries: a duplicate or a failed static check is not an experiment
            design, name, motivation = mutate(parent["design"], [r["design"] for r in refs], rng_seed, feedback)
            key = json.dumps(canonical(design), sort_keys=True, default=list)
            code = render(design, name, motivation)
            if key in seen or not static_check(code).ok:
                feedback.append(name)
                rng_seed += 1
                continue
            break
        seen.add(key)
        parent["children"] += 1
        result, cpu_s, error = _train(code, profile, seed, overrides)
        cpu_total += cpu_s
        row = {"i": i, "name": name, "parent": parent["id"], "cpu_s": round(cpu_s, 1), "error": error}
        if result is not None:
            # the counterfactual: stopped at a rung, it would have cost about that rung's share of its CPU
            row["rung_losses"] = result.get("rung_losses") or {}
            stop = first_stop(row["rung_losses"], base_rungs, prof)
            row["would_stop"] = stop is not None
            row["stop_frac"] = stop / prof.steps if stop is not None else None
            scored = fitness_of(result)
            row.update(fitness=scored["fitness"], benchmark=result["benchmark"], final_loss=result["final_loss"],
                       metrics=result.get("metrics", {}))
            pool.append({"id": name, "design": canonical(design), "fitness": scored["fitness"], "children": 0,
                         "benchmark": result["benchmark"], "final_loss": result["final_loss"], "code": code})
        rows.append(row)
        print(f"[{arm} seed {seed}] {i + 1}/{budget} {name} (parent {parent['id']}): "
              + (f"fitness {row['fitness']:.3f} benchmark {row['benchmark']:.3f}" if result else f"failed {error}")
              + f" {cpu_s:.0f} CPU s", flush=True)
    scored = [r for r in rows if r.get("fitness") is not None]
    margin = 2 * (noise.benchmark if noise and noise.benchmark else 0.0)
    winners = [r for r in scored if r["benchmark"] - base["benchmark"] > margin]
    best = max(scored, key=lambda r: r["fitness"], default=None)
    out = Path(out_dir) / f"{arm}-seed{seed}"
    out.mkdir(parents=True, exist_ok=True)
    for m in pool[1:]:
        if m["benchmark"] - base["benchmark"] > margin or (best and m["id"] == best["name"]):
            (out / f"{m['id']}.py").write_text(m["code"])
    summary = {"arm": arm, "seed": seed, "budget": budget, "best_fitness": best["fitness"] if best else None,
               "best_name": best["name"] if best else None,
               "best_benchmark": best["benchmark"] if best else None, "baseline_benchmark": base["benchmark"],
               "gated_deltanet_benchmark": gdn["benchmark"], "beats_baseline_2x_noise": len(winners),
               "beats_gated_deltanet": sum(r["benchmark"] > gdn["benchmark"] for r in scored),
               "failed": sum(r.get("fitness") is None for r in rows), "cpu_s": cpu_total, "rows": rows,
               "baseline_rung_losses": base_rungs, "would_stop": sum(bool(r.get("would_stop")) for r in rows),
               "winners_stopped": sum(bool(r.get("would_stop")) for r in winners)
               + bool(best and best.get("would_stop") and best not in winners),
               "cpu_s_with_stopping": cpu_total - sum(r["cpu_s"] * (1 - r["stop_frac"]) for r in rows
                                                      if r.get("would_stop")),
               "noise": {"loss": noise.loss, "benchmark": noise.benchmark} if noise else None}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=int, default=12)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--arms", default=",".join(ARMS))
    ap.add_argument("--profile", default="cpu-tiny")
    ap.add_argument("--steps", type=int, default=None, help="override the profile's steps (reported as such)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--cache", default=".archlab/zoo-cache", help="zoo cache shared with `archlab zoo bench`")
    ap.add_argument("--out", default="bench-discovery")
    args = ap.parse_args()
    arms = [a for a in args.arms.split(",") if a]
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        sys.exit(f"unknown arm(s) {unknown}; valid: {', '.join(ARMS)}")
    seeds = [int(s) for s in args.seeds.split(",") if s]
    overrides = {"steps": args.steps} if args.steps else {}
    t0 = time.monotonic()
    # the zoo rows first (shared by every arm of a seed), then the campaigns
    from lab.tools.validity import ZooCache  # noqa: F401  (import check before forking)
    jobs = [(a, s) for s in seeds for a in arms]
    results = []
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn")) as pool:
        for s in seeds:
            for name in ("deltanet", "gated_deltanet"):
                pool.submit(_zoo, name, args.profile, s, overrides, Path(args.cache)).result()
        futures = {pool.submit(campaign, a, s, args.budget, args.profile, overrides, args.cache, args.out): (a, s)
                   for a, s in jobs}
        for fut in as_completed(futures):
            results.append(fut.result())
    print(f"\nprofile {args.profile}{' steps ' + str(args.steps) if args.steps else ''}, budget {args.budget} "
          f"candidates per campaign, seeds {seeds}, {time.monotonic() - t0:.0f} s wall")
    print(f"{'arm':<11} {'best fitness (mean; per seed)':<40} {'> DeltaNet +2 noise':>20} {'> Gated DeltaNet':>17} "
          f"{'failed':>7} {'CPU s/cand':>11} {'cand/CPU-h':>11} {'with stop':>10} {'winners stopped':>16}")
    for a in arms:
        rs = sorted((r for r in results if r["arm"] == a), key=lambda r: r["seed"])
        bests = [r["best_fitness"] for r in rs if r["best_fitness"] is not None]
        cands = sum(len(r["rows"]) for r in rs)
        print(f"{a:<11} {(f'{statistics.fmean(bests):.3f}; ' if bests else '-; ') + ' '.join(f'{b:.3f}' for b in bests):<40} "
              f"{sum(r['beats_baseline_2x_noise'] for r in rs):>20} {sum(r['beats_gated_deltanet'] for r in rs):>17} "
              f"{sum(r['failed'] for r in rs):>7} {sum(r['cpu_s'] for r in rs) / max(1, cands):>11.0f} "
              f"{3600 * cands / max(1e-9, sum(r['cpu_s'] for r in rs)):>11.2f} "
              f"{3600 * cands / max(1e-9, sum(r['cpu_s_with_stopping'] for r in rs)):>10.2f} "
              f"{sum(r['winners_stopped'] for r in rs):>16}")
    print(f"'with stop': the same runs had each candidate whose held-out loss at a rung was worse than DeltaNet's "
          f"there by > {STOP_NOISES:g} seed noises of that step cost that rung's share of its CPU (a counterfactual "
          f"from one set of runs); 'winners stopped': of those beating DeltaNet by 2 noises, or the best")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "discovery.json").write_text(json.dumps(results, indent=1))
    print(f"winning programs and summaries under {args.out}/")


if __name__ == "__main__":
    main()
