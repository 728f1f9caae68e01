"""How many runs at once, and how many threads each: measured on this machine, not read off the core count.

Two vCPUs may behave like one core's two hyper-threads (issue 23: two runs at once trained at 1.25x the
tokens/s of one run alone, not 2x), so the lab measures. `plan(profile, cache_dir)` trains the zoo's
DeltaNet on `profile` for a few seconds in each mix of (runs x threads per run) that fills the machine,
all runs of a mix timed over the same window, and keeps the total tokens/s of each:

    1 run x 1 thread | 1 run x C threads | R runs x C/R threads (R = 2, 4, ... <= C cores)

The plan: `concurrency` = the mix with the most tokens/s in total (fewer runs on a near tie: a run that
ends sooner informs the search sooner); `lone_threads` = the threads a run gets while it trains alone
(C when that measured faster than 1, else 1). It is cached per machine, torch and profile under
`<machine cache>/calibration/` (lab/machine_cache.py: ~/.cache/archlab unless ARCHLAB_CACHE_DIR says otherwise), so
the measurement is paid once per machine, not once per data directory.

While training, `CoreShare` gives each run its share of the cores: every engineer of this host that
trains registers under `<data_dir>/running/<host>/`, and a run's threads are min(lone_threads,
cores // runs training now). The child reads its share from a file in its scratch at every step
(`THREADS_FILE`, lab/training/runner.py), so a lone run that got both cores drops to one within a
second or so when the next run starts, instead of oversubscribing the machine until it ends.

    python -m services.engineer.concurrency cpu-tiny [--cache-dir D] [--refresh]   # prints the plan
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lab.sandbox import write_child_file

WINDOW_S = 8.0          # the timed window every run of a mix trains through at once
WARMUP_STEPS = 2        # allocator and caches warm before the window opens
NEAR_TIE = 0.05         # a mix with more runs must beat fewer runs by this fraction to be chosen
THREADS_FILE = "threads"   # in a training child's scratch: the threads it may use now
PLAN_VERSION = 1


@dataclass(frozen=True)
class Mix:
    runs: int
    threads: int

    @property
    def label(self) -> str:
        return f"{self.runs}x{self.threads}"


@dataclass
class Plan:
    concurrency: int                 # runs in flight at once (engineer processes)
    threads: int                     # threads per run while `concurrency` runs share the machine
    lone_threads: int                # threads of a run that trains alone
    cores: int
    tokens_per_s: dict[str, float]   # mix label "RxT" -> total tokens/s of the mix
    profile: str
    key: str
    measured_at: float = field(default_factory=time.time)
    cached: bool = False
    version: int = PLAN_VERSION

    def describe(self) -> str:
        figures = ", ".join(f"{k} {v:,.0f}" for k, v in self.tokens_per_s.items())
        return (f"concurrency {self.concurrency} x {self.threads} thread(s), a lone run {self.lone_threads} "
                f"thread(s) (measured on {self.profile}, total tokens/s runs x threads: {figures}"
                f"{'; cached' if self.cached else ''})")


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def mixes(cores: int) -> list[Mix]:
    """The mixes that fill `cores` (plus one run on one thread, the reference): runs in powers of two."""
    out = [Mix(1, 1)]
    runs = 1
    while runs <= cores:
        mix = Mix(runs, cores // runs)
        if mix not in out:
            out.append(mix)
        runs *= 2
    return out


def machine_key(profile: str, cores: int) -> str:
    """Same machine, torch and profile: the same plan."""
    import torch
    cpu = ""
    try:
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), "")
    except OSError:
        pass
    text = "|".join([socket.gethostname(), cpu or platform.processor(), str(cores), torch.__version__, profile,
                     str(PLAN_VERSION)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def choose(tokens_per_s: dict[str, float], cores: int) -> tuple[int, int, int]:
    """(concurrency, threads per run then, lone_threads) from the measured totals."""
    measured = [(Mix(*map(int, k.split("x"))), v) for k, v in tokens_per_s.items()]
    full = sorted((m for m in measured if m[0].runs * m[0].threads == cores or m[0] == Mix(1, 1)),
                  key=lambda m: m[0].runs)
    best_mix, best = full[0]
    for mix, total in full[1:]:
        if total > best * (1 + NEAR_TIE):
            best_mix, best = mix, total
    lone = [(m.threads, v) for m, v in measured if m.runs == 1]
    one = dict(lone).get(1, 0.0)
    lone_threads = max((t for t, v in lone if t == 1 or v > one * (1 + NEAR_TIE)), default=1)
    return best_mix.runs, best_mix.threads, lone_threads


# ---------------------------------------------------------------- measuring
def _child(profile_name: str, threads: int, window_s: float = WINDOW_S) -> None:
    """One run of a mix: build, warm up, say "ready", wait for "go" on stdin, train through `window_s`."""
    import torch

    from lab.program import load_layer_class
    from lab.training.model import lm_loss
    from lab.training.profiles import get_profile
    from lab.training.runner import build_model, make_batch_fn
    from lab.zoo.registry import zoo_source

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    profile = get_profile(profile_name)
    model = build_model(load_layer_class(zoo_source("deltanet")), profile).train()
    opt = torch.optim.AdamW(model.parameters(), lr=profile.lr)
    batches = make_batch_fn(profile, seed=0)

    def step(i: int) -> None:
        x, y = batches(i)
        loss, aux = lm_loss(model, x, y)
        opt.zero_grad(set_to_none=True)
        (loss + aux).backward()
        opt.step()

    for i in range(WARMUP_STEPS):
        step(i)
    print("ready", flush=True)
    sys.stdin.readline()
    t0 = time.perf_counter()
    steps, t_end = 0, t0
    while t_end - t0 < window_s:
        step(WARMUP_STEPS + steps)
        steps += 1
        t_end = time.perf_counter()
    print(json.dumps({"tokens_per_s": steps * profile.tokens_per_step / (t_end - t0), "steps": steps}), flush=True)


def measure_mix(profile: str, mix: Mix, *, window_s: float = WINDOW_S, timeout_s: float = 300.0) -> float:
    """Total tokens/s of `mix.runs` runs of `mix.threads` threads, timed over the same window."""
    env = dict(os.environ, TORCHDYNAMO_DISABLE="1",
               **{v: str(mix.threads) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")})
    cmd = [sys.executable, "-m", "services.engineer.concurrency", "--child", profile, "--threads", str(mix.threads),
           "--window", str(window_s)]
    repo = Path(__file__).resolve().parents[2]
    procs = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=repo)
             for _ in range(mix.runs)]
    try:
        deadline = time.monotonic() + timeout_s
        for p in procs:   # every run built and warm before any is timed
            line = p.stdout.readline()
            if line.strip() != "ready" or time.monotonic() > deadline:
                raise RuntimeError(f"calibration child of mix {mix.label} failed before its window "
                                   f"(exit {p.poll()})")
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        total = 0.0
        for p in procs:
            out, _ = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            total += json.loads(out.strip().splitlines()[-1])["tokens_per_s"]
        return total
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def cache_path(cache_dir: str | Path, key: str) -> Path:
    return Path(cache_dir) / "calibration" / f"concurrency-{key}.json"


def load_plan(cache_dir: str | Path, profile: str, cores: int | None = None) -> Plan | None:
    cores = cores or usable_cores()
    path = cache_path(cache_dir, machine_key(profile, cores))
    try:
        raw = json.loads(path.read_text())
        if raw.get("version") != PLAN_VERSION:
            return None
        return Plan(**{**raw, "cached": True})
    except (OSError, ValueError, TypeError):
        return None


def plan(profile: str, cache_dir: str | Path, *, refresh: bool = False, cores: int | None = None,
         window_s: float = WINDOW_S, progress=lambda message: None) -> Plan:
    """The cached plan of this machine for `profile`, measured now when there is none (or `refresh`)."""
    cores = cores or usable_cores()
    if not refresh:
        found = load_plan(cache_dir, profile, cores)
        if found is not None:
            return found
    figures: dict[str, float] = {}
    for mix in mixes(cores):
        progress(f"measuring {mix.runs} run(s) x {mix.threads} thread(s)")
        figures[mix.label] = measure_mix(profile, mix, window_s=window_s)
    concurrency, threads, lone = choose(figures, cores)
    result = Plan(concurrency=concurrency, threads=threads, lone_threads=lone, cores=cores,
                  tokens_per_s={k: round(v, 1) for k, v in figures.items()}, profile=profile,
                  key=machine_key(profile, cores))
    path = cache_path(cache_dir, result.key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({k: v for k, v in asdict(result).items() if k != "cached"}, indent=1))
    os.replace(tmp, path)
    return result


# ---------------------------------------------------------------- sharing the cores while training
class CoreShare:
    """The runs training on this host now (one file per training engineer, with its pid) and each one's
    share of the cores: min(lone_threads, cores // runs), at least 1."""

    def __init__(self, data_dir: str | Path, engineer_id: str, *, cores: int, lone_threads: int,
                 host: str | None = None):
        self.dir = Path(data_dir) / "running" / (host or socket.gethostname())
        self.me = self.dir / engineer_id.replace("/", "_")
        self.cores, self.lone_threads = cores, lone_threads

    def enter(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.me.write_text(str(os.getpid()))

    def leave(self) -> None:
        self.me.unlink(missing_ok=True)

    def running(self) -> int:
        """Live entries (a killed engineer's file stays behind; its pid is gone)."""
        count = 0
        for entry in self.dir.glob("*") if self.dir.exists() else ():
            try:
                pid = int(entry.read_text().strip())
                os.kill(pid, 0)
            except (OSError, ValueError):
                continue
            count += 1
        return count

    def threads(self) -> int:
        return max(1, min(self.lone_threads, self.cores // max(1, self.running())))


def write_threads(scratch: str | Path, threads: int) -> None:
    """Tell the child in `scratch` how many threads it may use now (atomic: it never reads half a file; never
    through a link the child planted in its scratch)."""
    write_child_file(Path(scratch), THREADS_FILE, str(int(threads)))


def main() -> None:
    ap = argparse.ArgumentParser(description="measure and print this machine's concurrency plan")
    ap.add_argument("profile")
    ap.add_argument("--cache-dir", default=None, help="the machine cache (default: lab/machine_cache.py)")
    ap.add_argument("--refresh", action="store_true")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--window", type=float, default=WINDOW_S, help="seconds each mix is timed")
    a = ap.parse_args()
    if a.child:
        return _child(a.profile, a.threads, a.window)
    if a.cache_dir is None:
        from services.common.settings import get_settings
        a.cache_dir = get_settings().machine_cache
    p = plan(a.profile, a.cache_dir, refresh=a.refresh, window_s=a.window, progress=lambda m: print(m, file=sys.stderr))
    print(json.dumps(asdict(p)))


if __name__ == "__main__":
    main()
