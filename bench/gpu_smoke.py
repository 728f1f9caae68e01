"""GPU smoke test: the CUDA path with real flash-linear-attention kernels (issue 15, point 4).

    .venv/bin/python bench/gpu_smoke.py            # on a CUDA machine with `pip install -e '.[gpu]'`
    .venv/bin/python bench/gpu_smoke.py --cpu-selftest   # the same code on CPU, tiny, fla's path = ours

Three parts, each printed as it ends:
1. kernels: for every zoo member whose program calls an fla kernel on CUDA (deltanet, gated_deltanet, gla,
   retnet, mamba2), the program's own layer with fla's kernel against the same layer (same weights, same
   input) with the project's chunked PyTorch op, forward output and input gradient, in fp32 and under bf16
   autocast; then the chunked op against the step-by-step reference of naive.py on the device in fp64.
   Errors are max|a - b| / max|b|.
2. training: DeltaNet at explore-20m's shape (8 x 256, GPT-2 vocabulary, 19.2M parameters) trained by the
   engineer's own `train()` (bf16 autocast, AdamW, WSD) with fla's kernels, micro-batch 16 x 2048, on byte
   windows (speed does not depend on the corpus; none needs to be on the machine); the loss must fall.
3. figures: tokens/s, MFU (6 N flops per token against the device's bf16 dense peak) and peak memory.

Exit status: 0 when every check passed, or when there is no CUDA ("not measured: no CUDA"); 1 when a check
failed; 2 when CUDA is there but fla's kernels are not.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# bf16 dense peaks (no sparsity), FLOP/s, by a substring of torch.cuda.get_device_name()
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12, "L4": 121e12,
             "RTX 4090": 165e12}
FLA_MEMBERS = ("deltanet", "gated_deltanet", "gla", "retnet", "mamba2")
TOL_FP32, TOL_BF16, TOL_NAIVE = 2e-2, 8e-2, 1e-6


def rel_err(a, b) -> float:
    return float((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-12))


def load_member(name: str):
    """(layer class, the program's globals: `_HAS_FLA_OPS` switches fla's kernels on and off, core op)."""
    from lab.program import load_layer_class
    from lab.zoo.registry import ZOO, zoo_source

    cls = load_layer_class(zoo_source(name))
    g = cls.forward.__globals__
    return cls, g, g[ZOO[name].core_op]


def _layer_run(layer, x, use_fla: bool, g: dict, bf16: bool):
    import torch

    g["_HAS_FLA_OPS"] = use_fla
    x = x.detach().clone().requires_grad_()
    ctx = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else torch.autocast("cpu", enabled=False)
    with ctx:
        o = layer(x)[0]
    (o.float() * torch.cos(o.float())).sum().backward()
    return o.detach().float(), x.grad.detach().float()


def check_kernels(device: str, hidden: int, heads: int, T: int, has_fla: bool) -> list[str]:
    """Part 1; returns the failures."""
    import torch

    failures = []
    for name in FLA_MEMBERS:
        cls, g, _ = load_member(name)
        torch.manual_seed(0)
        layer = cls(hidden_size=hidden, num_heads=heads, layer_idx=0, use_short_conv=True, conv_size=4).to(device)
        x = torch.randn(2, T, hidden, device=device)
        for bf16, tol in ((False, TOL_FP32), (True, TOL_BF16)):
            if bf16 and not device.startswith("cuda"):
                continue
            o_fla, dx_fla = _layer_run(layer, x, has_fla, g, bf16)
            o_ref, dx_ref = _layer_run(layer, x, False, g, bf16)
            eo, eg = rel_err(o_fla, o_ref), rel_err(dx_fla, dx_ref)
            ok = eo < tol and eg < tol
            print(f"kernel {name:15s} {'bf16' if bf16 else 'fp32'}: fla vs chunked output {eo:.2e}, "
                  f"input grad {eg:.2e} (tol {tol:g}) {'ok' if ok else 'FAIL'}", flush=True)
            if not ok:
                failures.append(f"{name} {'bf16' if bf16 else 'fp32'} fla vs chunked")
        g["_HAS_FLA_OPS"] = has_fla
    failures += check_naive(device)
    return failures


def check_naive(device: str) -> list[str]:
    """The chunked ops against naive.py on the device, fp64 (the CPU test suite does the same on CPU)."""
    import torch
    import torch.nn.functional as F

    from lab.zoo import naive

    B, T, H, K, V = 2, 100, 2, 16, 16
    gen = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64).to(device)  # noqa: E731
    x = dict(q=r(B, T, H, K), k=F.normalize(r(B, T, H, K), dim=-1), v=r(B, T, H, V),
             beta=torch.rand(B, T, H, generator=gen, dtype=torch.float64).to(device),
             g_scalar=-2 * torch.rand(B, T, H, generator=gen, dtype=torch.float64).to(device),
             g_vector=(F.logsigmoid(3 * r(B, T, H, K)) / 4),
             log_decay=torch.log(1 - 2.0 ** (-5.0 - torch.arange(H, dtype=torch.float64))).to(device),
             state=r(B, H, K, V))
    cases = {"deltanet": (naive.naive_delta_rule, ("beta",)),
             "gated_deltanet": (naive.naive_gated_delta_rule, ("g_scalar", "beta")),
             "gla": (naive.naive_gla, ("g_vector",)), "mamba2": (naive.naive_ssd, ("g_scalar",)),
             "retnet": (naive.naive_retention, ("log_decay",))}
    failures = []
    for name, (ref, extra) in cases.items():
        _, _, op = load_member(name)
        args = [x["q"], x["k"], x["v"], *(x[n] for n in extra)]
        o1, s1 = op(*args, chunk_size=32, initial_state=x["state"], output_final_state=True)
        o2, s2 = ref(*args, initial_state=x["state"])
        e = max(rel_err(o1, o2), rel_err(s1, s2))
        ok = e < TOL_NAIVE
        print(f"naive  {name:15s} fp64: chunked vs step-by-step {e:.2e} (tol {TOL_NAIVE:g}) {'ok' if ok else 'FAIL'}",
              flush=True)
        if not ok:
            failures.append(f"{name} chunked vs naive")
    return failures


def train_explore(device: str, profile_name: str, steps: int, micro: int, seq_len: int | None = None
                  ) -> tuple[dict, list[str]]:
    """Parts 2 and 3: train DeltaNet at the profile's shape with the engineer's train(); figures + failures."""
    import torch

    from lab.training.profiles import get_profile
    from lab.training.runner import build_model, make_batch_fn
    from lab.training.train import train

    cls, g, _ = load_member("deltanet")
    base = get_profile(profile_name)
    profile = dataclasses.replace(base, task="bytes", batch_size=micro, steps=steps, log_every=1,
                                  checkpoint_every=steps, warmup_frac=0.1, decay_frac=0.1,
                                  seq_len=seq_len or base.seq_len)
    batches = make_batch_fn(profile, seed=0)
    # a short run first: Triton compiles and autotunes fla's kernels in it, so the timed run is steady
    torch.manual_seed(0)
    train(build_model(cls, dataclasses.replace(profile, steps=3, checkpoint_every=3)),
          dataclasses.replace(profile, steps=3, checkpoint_every=3), batches, seed=0, device=device)
    torch.manual_seed(0)
    model = build_model(cls, profile)
    n_params = model.num_params()
    with tempfile.TemporaryDirectory() as tmp:
        out = train(model, profile, batches, seed=0, device=device, checkpoint_dir=tmp)
    first, last = out.loss_curve[0][1], out.final_loss
    device_name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    peak = next((v for k, v in PEAK_BF16.items() if k in device_name), None)
    figures = {"profile": profile_name, "device": device_name, "params": n_params, "fla": bool(g["_HAS_FLA_OPS"]),
               "tokens_per_s": out.tokens_per_s, "mfu": 6 * n_params * out.tokens_per_s / peak if peak else None,
               "peak_mem_mb": out.peak_mem_mb, "loss_first": first, "loss_last": last, "steps": steps,
               "micro_batch": f"{micro} x {profile.seq_len}"}
    mfu = f"{100 * figures['mfu']:.1f}%" if figures["mfu"] is not None else "n/a (unknown bf16 peak)"
    print(f"train  {profile_name}: DeltaNet {n_params:,} params, fla kernels {figures['fla']}, "
          f"{out.tokens_per_s:,.0f} tokens/s, MFU {mfu}, peak memory {out.peak_mem_mb:,.0f} MB, "
          f"loss {first:.3f} -> {last:.3f} in {steps} steps of {figures['micro_batch']} ({device_name})", flush=True)
    failures = []
    if not last < first:
        failures.append(f"loss did not fall: {first:.3f} -> {last:.3f}")
    if device.startswith("cuda") and not figures["fla"]:
        failures.append("the training did not use fla's kernels")
    return figures, failures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cpu-selftest", action="store_true",
                    help="run the same code on CPU at a tiny size (the chunked op stands in for fla's)")
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args(argv)
    import torch

    if args.cpu_selftest:
        torch.set_num_threads(1)
        failures = check_kernels("cpu", hidden=32, heads=2, T=40, has_fla=False)
        _, more = train_explore("cpu", "cpu-bytes", steps=args.steps, micro=4, seq_len=64)
        failures += more
    else:
        if not torch.cuda.is_available():
            print("not measured: no CUDA")
            return 0
        from lab.program import ensure_fla_importable

        if ensure_fla_importable() != "fla":
            print("FAIL: CUDA is here but flash-linear-attention is not importable (pip install -e '.[gpu]')")
            return 2
        _, g, _ = load_member("deltanet")
        if not g["_HAS_FLA_OPS"]:
            print("FAIL: fla is importable but its kernels (fla.ops) are not")
            return 2
        t0 = time.perf_counter()
        failures = check_kernels("cuda", hidden=256, heads=8, T=512, has_fla=True)
        _, more = train_explore("cuda", "explore-20m", steps=args.steps, micro=16)
        failures += more
        print(f"done in {time.perf_counter() - t0:.0f} s")
    for f in failures:
        print(f"FAIL: {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
