"""Training throughput: the engineer's training loop vs a minimal plain-PyTorch loop, same model.

    python bench/train.py [--steps 30] [--program zoo|local] [--threads 1]

Each loop runs in its own child process (so peak memory is its own), on the cpu-tiny profile
with the DeltaNet baseline (the zoo's program, or the test-local one with --program local).
Prints tokens/s and peak memory of both and their ratio; then an explore-20m tokens/s + MFU
line when CUDA is present.
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")  # programs decorate with @torch.compile; CPU compiles are slow

H100_BF16_DENSE_FLOPS = 989e12


def program_source(which: str) -> str:
    if which == "zoo":
        from lab.zoo.registry import zoo_source
        return zoo_source("deltanet")
    return (REPO / "tests" / "engineer" / "programs" / "deltanet.py").read_text()


def worker(kind: str, steps: int, program: str, profile_name: str) -> dict:
    import torch

    from lab.training.model import lm_loss
    from lab.training.profiles import get_profile
    from lab.program import load_layer_class
    from lab.training.runner import build_model, make_batch_fn
    from lab.training.train import default_device, peak_memory_mb, train

    device = default_device()
    profile = get_profile(profile_name, steps=steps, log_every=1, checkpoint_every=steps)
    torch.manual_seed(0)
    model = build_model(load_layer_class(program_source(program)), profile)
    batches = make_batch_fn(profile, seed=0)
    if kind == "framework":
        out = train(model, profile, batches, seed=0, device=device)
        return {"tokens_per_s": out.tokens_per_s, "peak_mem_mb": out.peak_mem_mb, "params": model.num_params()}
    # the minimal loop: no schedule, no monitor, no checkpoints, no progress
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=profile.lr)
    elapsed = 0.0
    for step in range(steps):
        t0 = time.perf_counter()
        x, y = (t.to(device) for t in batches(step))
        loss, aux = lm_loss(model, x, y)
        opt.zero_grad(set_to_none=True)
        (loss + aux).backward()
        opt.step()
        loss.item()
        elapsed += time.perf_counter() - t0
    return {"tokens_per_s": steps * profile.tokens_per_step / elapsed, "peak_mem_mb": peak_memory_mb(device),
            "params": model.num_params()}


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
    ap.add_argument("--program", choices=["zoo", "local"], default="zoo")
    ap.add_argument("--profile", default="cpu-tiny")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--worker", choices=["framework", "plain"])
    args = ap.parse_args()
    import torch
    torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps(worker(args.worker, args.steps, args.program, args.profile)))
        return
    results = {}
    for kind in ("framework", "plain"):
        cmd = [sys.executable, __file__, "--worker", kind, "--steps", str(args.steps), "--program", args.program,
               "--profile", args.profile, "--threads", str(args.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        results[kind] = json.loads(out.strip().splitlines()[-1])
    fw, plain = results["framework"], results["plain"]
    print(f"{args.profile} DeltaNet ({args.program}), {fw['params']:,} params, {args.steps} steps, "
          f"{args.threads} thread(s)")
    for kind, r in results.items():
        print(f"  {kind:9s} {r['tokens_per_s']:10,.0f} tokens/s   peak memory {r['peak_mem_mb']:8.1f} MB")
    print(f"  ratio framework/plain: tokens/s {fw['tokens_per_s'] / plain['tokens_per_s']:.3f}, "
          f"peak memory {fw['peak_mem_mb'] / plain['peak_mem_mb']:.3f}")
    print(explore_line(args.program))


if __name__ == "__main__":
    main()
