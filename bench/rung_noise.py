"""Seed noise along the training curve: what early stopping's margin should be at each rung (issue 23).

    python bench/rung_noise.py [--profile cpu-tiny] [--member deltanet] [--seeds 0,1,2] [--fracs 0.25,0.5,0.75]
                               [--jobs 2]
    python bench/rung_noise.py --programs A.py:0,B.py:3 [--fracs 0.4] [--no-final]   # programs at their seeds

Trains the zoo member once per seed, from scratch, with the engineer's training loop (`train()`, one thread per
run, `--jobs` runs at once), and at each fraction of the steps computes the trusted held-out loss of the weights
as they are then (`scoring.heldout_loss`, the scorer's batches at the public held-out seed). Prints per fraction
each seed's held-out loss and the seed noise: the mean |difference| between seeds, the statistic of the profile's
`seed_noise` (lab/tools/validity.py `seed_noise`), next to the profile's final-loss noise and its ratio to it.

With `--programs FILE:SEED,...` it trains those layer programs (e.g. the winners of earlier campaigns, each at its
campaign's seed) instead of a zoo member, with `--no-final` only up to the last fraction (the schedule is still the
whole run's): where a new rung would have judged them, printed as each one's held-out loss there.

Why: a candidate is stopped at a rung when its held-out loss there exceeds the baseline's by `stop_noises` seed
noises. A candidate is trained at the campaign's seed like the baseline, but a different architecture follows a
different trajectory, so the spread between seeds of the baseline at the rung is the scale of "worse by chance"
there. While the models leave the battery's plateau (cpu-tiny: steps 200-370) that spread is larger than at the
end, which is what the final loss's noise measures.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")


class Enough(Exception):
    """Raised after the last rung asked for: the rest of the run is not needed."""


def worker(profile_name: str, member: str, seed: int, steps: list[int]) -> dict:
    """One seed, in this process: {step: held-out loss} at each of `steps` (the final step only when asked).
    `member`: a zoo member, or the path of a layer program."""
    import torch

    from lab.program import load_layer_class
    from lab.training.profiles import get_profile
    from lab.training.runner import build_model, make_batch_fn, seed_everything
    from lab.training.scoring import heldout_loss
    from lab.training.train import train
    from lab.zoo.registry import zoo_source

    torch.set_num_threads(1)
    profile = get_profile(profile_name)
    seed_everything(seed)
    source = Path(member).read_text() if member.endswith(".py") else zoo_source(member)
    model = build_model(load_layer_class(source), profile)
    losses: dict[int, float] = {}
    inner = [s for s in steps if s < profile.steps]

    def on_rung(step: int, autocast: str) -> None:
        model.eval()
        with torch.no_grad():
            losses[step] = heldout_loss(model, profile)
        model.train()
        if step == inner[-1] and profile.steps not in steps:
            raise Enough

    try:
        train(model, profile, make_batch_fn(profile, seed), seed=seed, device="cpu", rungs=tuple(inner),
              on_rung=on_rung)
    except Enough:
        return {"seed": seed, "losses": losses}
    model.eval()
    with torch.no_grad():
        losses[profile.steps] = heldout_loss(model, profile)
    return {"seed": seed, "losses": losses}


def seed_noise(values: list[float]) -> float:
    """Mean |difference| over the pairs of seeds."""
    pairs = list(itertools.combinations(values, 2))
    return statistics.fmean(abs(a - b) for a, b in pairs) if pairs else 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="cpu-tiny")
    ap.add_argument("--member", default="deltanet")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--fracs", default="0.25,0.5,0.75")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--programs", default="", help="FILE:SEED,... layer programs to train instead of --member")
    ap.add_argument("--no-final", action="store_true", help="stop each run after its last fraction")
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)   # one seed, in a child
    ap.add_argument("--steps", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker is not None:
        print(json.dumps(worker(a.profile, a.member, a.worker, [int(s) for s in a.steps.split(",")])))
        return

    from lab.training.profiles import get_profile

    profile = get_profile(a.profile)
    steps = sorted({round(float(f) * profile.steps / profile.log_every) * profile.log_every
                    for f in a.fracs.split(",")} | (set() if a.no_final else {profile.steps}))
    seeds = [int(s) for s in a.seeds.split(",")]
    if a.programs:
        return programs(a, [(p.rsplit(":", 1)[0], int(p.rsplit(":", 1)[1])) for p in a.programs.split(",")], steps)

    def one(seed: int) -> dict:
        row = run_one(a, a.member, seed, steps)
        print(f"  seed {seed}: " + ", ".join(f"step {s} {v:.4f}" for s, v in row["losses"].items()), flush=True)
        return row

    print(f"{a.member} on {a.profile}, seeds {seeds}, held-out loss at steps {steps} ({a.jobs} runs at once)...",
          flush=True)
    with ThreadPoolExecutor(a.jobs) as pool:
        rows = list(pool.map(one, seeds))
    final_noise = float(profile.seed_noise.get("loss") or 0.0)
    print(f"\n{'step':>5} {'frac':>5} {'mean':>7} {'min':>7} {'max':>7} {'seed noise':>10} {'x final noise':>13}")
    for s in steps:
        vals = [r["losses"][str(s)] for r in rows]
        noise = seed_noise(vals)
        ratio = f"{noise / final_noise:13.1f}" if final_noise else f"{'-':>13}"
        print(f"{s:5d} {s / profile.steps:5.2f} {statistics.fmean(vals):7.4f} {min(vals):7.4f} {max(vals):7.4f} "
              f"{noise:10.4f} {ratio}")
    print(f"(the profile's seed noise of the final loss: {final_noise}; of the final held-out loss here: "
          f"{seed_noise([r['losses'][str(profile.steps)] for r in rows]):.4f})")


def run_one(a, member: str, seed: int, steps: list[int]) -> dict:
    out = subprocess.run([sys.executable, __file__, "--profile", a.profile, "--member", member, "--worker", str(seed),
                          "--steps", ",".join(map(str, steps))], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def programs(a, runs: list[tuple[str, int]], steps: list[int]) -> None:
    print(f"{len(runs)} programs on {a.profile}, held-out loss at steps {steps} ({a.jobs} runs at once)...",
          flush=True)

    def one(run: tuple[str, int]) -> dict:
        row = run_one(a, str(Path(run[0]).resolve()), run[1], steps)
        print(json.dumps({"program": run[0], **row}), flush=True)
        return row

    with ThreadPoolExecutor(a.jobs) as pool:
        list(pool.map(one, runs))


if __name__ == "__main__":
    main()
