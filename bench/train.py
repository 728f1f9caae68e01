"""Training throughput: the engineer's training loop and its speed-up candidates side by side, one run.

    python bench/train.py [--steps 30] [--program zoo|local|FILE.py] [--profile cpu-tiny] [--member deltanet]
                          [--variants engine,adamw-loop,threads-2,chunk-32,plain,program=OTHER.py] [--repeats 2]

Each variant runs in its own child process (so fixed cost and peak memory are its own), on `--profile` with a
zoo member (DeltaNet by default; the test-local DeltaNet with --program local; any layer program with --program
FILE.py), from the same seed:

  engine       the engineer's `train()` as it is
  adamw-foreach  the same loop with AdamW's multi-tensor kernels instead of its per-parameter Python loop
  threads-2    the engine on two threads (what a lone run gets where the calibration says it pays)
  chunk-N      the engine with the chunked kernels' chunks of N (layer kwarg `chunk_size`; the zoo's is 64)
  compile      the engine with the whole model under torch.compile (fixed cost: the compilation)
  plain        a minimal loop: no schedule, monitor, checkpoints or clipping (the loop's own overhead)
  program=FILE the engine on another program (e.g. the same design rendered by two versions of the proposer's
               codegen: a kernel change that keeps the numbers shows a last loss within 0.00 noises)

Printed per variant: steady tokens/s (after 2 warm-up steps), fixed cost (process start to the end of the
first step: imports, build, compilation, first step), FLOP/s as a fraction of one core's fp32 peak (6 x params
x tokens/s against cpu MHz x 32 flop/cycle with AVX2 FMA, 64 with AVX-512), the time one candidate of the
profile would take (fixed + profile steps / steps/s) and its ratio to `engine`, and the last loss against the
engine's in the profile's seed noises (same seed: a variant that changes the numbers shows here). Variants are
interleaved `--repeats` times and the fastest repeat of each is kept: on a shared machine the load moves
between children, and the fastest repeat is the least disturbed one. Then an explore-20m line when CUDA is
present.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

T_START = time.perf_counter()   # fixed cost counts from here: imports, build, compilation
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")  # programs decorate with @torch.compile; CPU compiles are slow

H100_BF16_DENSE_FLOPS = 989e12
VARIANTS = ("engine", "adamw-foreach", "threads-2", "chunk-16", "chunk-32", "chunk-64", "compile", "plain")
DEFAULT_VARIANTS = "engine,adamw-foreach,threads-2,chunk-32,plain"
WARMUP = 2


def program_source(which: str, member: str = "deltanet") -> str:
    if which == "zoo":
        from lab.zoo.registry import zoo_source
        return zoo_source(member)
    if which == "local":
        return (REPO / "tests" / "engineer" / "programs" / "deltanet.py").read_text()
    return Path(which).read_text()


def variant_program(variant: str) -> str | None:
    """The program file of a `program=FILE` variant (None for the loop's own variants)."""
    return variant.split("=", 1)[1] if variant.startswith("program=") else None


def core_peak_flops() -> float:
    """One core's fp32 peak: MHz x flop/cycle (2 FMA units x 8 lanes x 2 with AVX2; x 2 again with AVX-512)."""
    mhz, flags = 2400.0, ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                mhz = float(line.split(":")[1])
            elif line.startswith("flags") and not flags:
                flags = line
    except OSError:
        pass
    per_cycle = 64 if "avx512f" in flags else 32 if "avx2" in flags else 16
    return mhz * 1e6 * per_cycle


def worker(variant: str, steps: int, program: str, profile_name: str, member: str) -> dict:
    import torch

    from lab.training import train as train_mod
    from lab.training.model import lm_loss
    from lab.training.profiles import get_profile
    from lab.program import load_layer_class
    from lab.training.runner import build_model, make_batch_fn
    from lab.training.train import default_device, peak_memory_mb

    device = default_device()
    base = get_profile(profile_name)
    chunk = int(variant.split("-")[1]) if variant.startswith("chunk-") else None
    kwargs = {**base.layer_kwargs, "chunk_size": chunk} if chunk else base.layer_kwargs
    profile = get_profile(profile_name, steps=steps, log_every=1, checkpoint_every=steps, layer_kwargs=kwargs)
    torch.set_num_threads(2 if variant == "threads-2" else 1)
    torch.manual_seed(0)
    if variant_program(variant):
        program, variant = variant_program(variant), "engine"
    model = build_model(load_layer_class(program_source(program, member)), profile)
    batches = make_batch_fn(profile, seed=0)
    stamps: list[float] = []
    if variant == "plain":   # the minimal loop: no schedule, no monitor, no checkpoints, no progress
        model.to(device).train()
        opt = torch.optim.AdamW(model.parameters(), lr=profile.lr)
        losses = []
        for step in range(steps):
            x, y = (t.to(device) for t in batches(step))
            loss, aux = lm_loss(model, x, y)
            opt.zero_grad(set_to_none=True)
            (loss + aux).backward()
            opt.step()
            losses.append(loss.item())
            stamps.append(time.perf_counter())
        last = losses[-1]
    else:
        if variant == "adamw-foreach":
            make = train_mod.make_optimizer
            train_mod.make_optimizer = lambda m, p: make(m, p, foreach=True)
        if variant == "compile":
            os.environ.pop("TORCHDYNAMO_DISABLE", None)
            import torch._dynamo
            torch._dynamo.config.disable = False
            model = torch.compile(model)
        out = train_mod.train(model, profile, batches, seed=0, device=device,
                              on_progress=lambda **kw: stamps.append(time.perf_counter()))
        last = out.loss_curve[-1][1]
    steady = (stamps[-1] - stamps[WARMUP - 1]) / (steps - WARMUP)
    params = sum(p.numel() for p in model.parameters())
    return {"tokens_per_s": profile.tokens_per_step / steady, "step_s": steady, "fixed_s": stamps[0] - T_START,
            "peak_mem_mb": peak_memory_mb(device), "params": params, "last_loss": last}


def explore_line(program: str) -> str:
    import torch
    if not torch.cuda.is_available():
        return "explore-20m: not measured: no CUDA"
    from lab.training.model import lm_loss
    from lab.training.profiles import get_profile
    from lab.program import load_layer_class
    from lab.training.runner import build_model, make_batch_fn
    profile = get_profile("explore-20m")
    micro = 16  # sequences per micro-batch: 16 x 2048 tokens
    model = build_model(load_layer_class(program_source(program)), profile).cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=profile.lr)
    # speed only: byte windows (ids < 256 of the GPT-2 vocabulary) need no corpus on the machine
    batches = make_batch_fn(dataclasses.replace(profile, task="bytes"), seed=0)
    n_params = model.num_params()
    timed, tokens = 0.0, 0
    for step in range(6):
        x, y = (t[:micro].cuda() for t in batches(step))
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss, aux = lm_loss(model, x, y)
        (loss + aux).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        if step >= 2:  # warm-up steps excluded
            timed += time.perf_counter() - t0
            tokens += x.numel()
    tps = tokens / timed
    mfu = 6 * n_params * tps / H100_BF16_DENSE_FLOPS
    return (f"explore-20m: {tps:,.0f} tokens/s, params {n_params:,}, MFU {100 * mfu:.1f}% "
            f"(6N flops/token vs H100 bf16 dense peak; {torch.cuda.get_device_name()})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--program", default="zoo", help="zoo, local or the path of a layer program")
    ap.add_argument("--member", default="deltanet", help="zoo member (with --program zoo)")
    ap.add_argument("--profile", default="cpu-tiny")
    ap.add_argument("--variants", default=DEFAULT_VARIANTS, help=f"comma-separated, of {', '.join(VARIANTS)}")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--worker")
    args = ap.parse_args()
    for name in [v for v in args.variants.split(",") if v]:
        if name not in VARIANTS and not (variant_program(name) and Path(variant_program(name)).is_file()):
            ap.error(f"variant {name!r}: not one of {', '.join(VARIANTS)}, or program=FILE of an existing file")
    if args.program not in ("zoo", "local") and not Path(args.program).is_file():
        ap.error(f"--program {args.program!r}: not zoo, local or an existing program file")
    if args.worker:
        print(json.dumps(worker(args.worker, args.steps, args.program, args.profile, args.member)))
        return
    from lab.training.profiles import get_profile
    profile = get_profile(args.profile)
    variants = [v for v in args.variants.split(",") if v]
    best: dict[str, dict] = {}
    for _ in range(args.repeats):
        for variant in variants:
            cmd = [sys.executable, __file__, "--worker", variant, "--steps", str(args.steps), "--program",
                   args.program, "--profile", args.profile, "--member", args.member]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                best.setdefault(variant, {"error": done.stderr.strip().splitlines()[-1:]})
                continue
            r = json.loads(done.stdout.strip().splitlines()[-1])
            if "tokens_per_s" not in best.get(variant, {}) or r["tokens_per_s"] > best[variant]["tokens_per_s"]:
                best[variant] = r
    ref = best.get("engine") or next(iter(best.values()))
    peak, noise = core_peak_flops(), (profile.seed_noise or {}).get("loss")
    per_candidate = {v: r["fixed_s"] + profile.steps * r["step_s"] for v, r in best.items() if "step_s" in r}
    name = {"zoo": args.member, "local": "local DeltaNet"}.get(args.program, args.program)
    print(f"{args.profile} {name}, {ref.get('params', 0):,} "
          f"params, {args.steps} steps per variant, fastest of {args.repeats}; core fp32 peak {peak / 1e9:.1f} "
          f"GFLOP/s; a candidate = {profile.steps} steps")
    width = max(11, *(len(v) for v in best))
    print(f"  {'variant':{width}s} {'tokens/s':>9s} {'fixed s':>8s} {'FLOP/s of peak':>15s} {'candidate s':>12s} "
          f"{'vs engine':>9s} {'last loss':>10s} {'diff/noise':>10s}")
    for variant, r in best.items():
        if "error" in r:
            print(f"  {variant:{width}s} failed: {r['error']}")
            continue
        frac = 6 * r["params"] * r["tokens_per_s"] / peak
        diff = (r["last_loss"] - ref["last_loss"]) / noise if noise else float("nan")
        speed = per_candidate["engine"] / per_candidate[variant] if "engine" in per_candidate else float("nan")
        print(f"  {variant:{width}s} {r['tokens_per_s']:9,.0f} {r['fixed_s']:8.1f} {100 * frac:14.1f}% "
              f"{per_candidate[variant]:12.0f} {speed:8.2f}x {r['last_loss']:10.4f} {diff:+10.2f}")
    print(explore_line(args.program))


if __name__ == "__main__":
    main()
