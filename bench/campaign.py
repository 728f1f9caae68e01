"""Orchestration at campaign level: engineer scale-out, and the overhead around real work.

    python bench/campaign.py scaling [--engineers 1,2,4,8] [--jobs-per-engineer 6] [--job-s 6]
    python bench/campaign.py overhead --data-dir DIR [--campaign C]
    python bench/campaign.py overhead --run [--budget 2] [--profile cpu-tiny]
    python bench/campaign.py throughput [--budget 6] [--profile cpu-tiny] [--seed 0] [--arms before,after,again,fresh]
                                        [--before-kernels a3a899c^] [--campaign-id ID]
    python bench/campaign.py rungs --data-dir DIR [--campaign C]

scaling: N engineer workers (in one process, each its own Kafka consumer and sandbox children) on
the embedded broker run a fixed synthetic job: a sleep-based stand-in for the runner
(tests/engineer/fake_runner.py, same command line and result format), so the two cores are not
the limit. Prints experiments/minute per N and the ratio to one engineer (target >= 0.9 N).

overhead: reads a finished campaign's log (from a stack started with `archlab up`/`run --keep-up`)
and splits each experiment's wall time (ParentSampled -> InsightsStored) into the work itself
(proposing+checking in the researcher, training+evaluation inside the sandbox as the runner timed
it, judging, analysing) and what is left: hand-offs between services (event hops, claims,
sandbox start). Prints the per-experiment median and the share of wall time.
With --run it first runs its own campaign (`archlab run`, one engineer, concurrency 1, so training
competes with nothing but the lab itself), samples every stack process's CPU from /proc while the
baseline trains, and compares the training tokens/s inside the campaign with the same training loop
on the same program outside any service (bench/train.py's framework loop), measured in the same run
(target >= 0.9x).

throughput (issue 23's figure): `make run`'s campaign (`archlab run`, budget 6, cpu-tiny, seed 0), run in data
directories of its own one after the other on this machine, each arm with a machine cache (ARCHLAB_CACHE_DIR,
lab/machine_cache.py) that starts empty in the bench. "before": what the lab did before issue 23 (concurrency 2
from the core count, a lone run one thread, a calibration child before the first run, every candidate trained to
the end, no rung scored, every baseline trained: `--concurrency 2`, ARCHLAB_ENGINEER_RUNG_FRACS=[],
ARCHLAB_ENGINEER_REUSE_BASELINE=0); "after": the defaults on a machine that has never run a campaign (the
concurrency measured, a lone run on the free cores, early stopping at the rungs, the baseline trained and kept);
"again": the same command once more in after's data directory, as a user runs `make run` a second time in the same
folder; "fresh": a new data directory on the machine after's campaign ran on, as a second clone's `make run` (both
reuse the calibration and the baseline's weights: services/engineer/concurrency.py, baseline_cache.py). An arm
named twice runs twice (`--arms before,after,again,fresh,fresh`), and the ratio of its mean is printed too; the
reference of every ratio is the mean of the before arms.
The before arm also renders its candidates with the proposer's kernels as they were before issue 23
(`--before-kernels REF`, default a3a899c^: services/researcher/codegen.py and the fla shim's convolution.py at REF,
in a copy of this checkout's files that the arm runs from; issue 23 made those kernels faster, a3a899c, 7d2dadd,
cd0d73d, 1164406 and 90e3577, and a before arm with today's kernels leaves that out of the ratio);
`--before-kernels HEAD` gives it today's. Each arm prints how many of its proposals carry which delta kernel (the
inverse before, the one solve after), so the arm's kernels are checked.
Every arm but "again" runs one campaign id (`archlab run --campaign-id`; `--campaign-id ID`, default one drawn per
bench run), so the offline proposer, whose seed includes the parent's experiment id, proposes the same first children
of DeltaNet in every arm: the arms differ in what the lab does with the same draws, not in the draws (until 2026-12-06
each arm drew its own, and how many good candidates it drew moved one campaign's ratio by 0.4x). Only the first
draws are shared: a candidate stopped at a rung never joins the parent pool, so later draws can part. Each arm prints
its candidates in the order sampled. "again" runs in after's data directory, where that id is taken: it gets
ID-again. Replication is off in all (`--replicate 0`: it adds runs that are not candidates). Prints per arm the wall time,
models trained, candidates ended, stopped early, candidates per CPU-hour (candidates ended / (wall x cores)), the
median time from sampled to training, and the best candidate, then each arm's ratio to the before arms (target >= 2x,
with the same winner).

rungs (early stopping as a counterfactual): reads a finished campaign run with ARCHLAB_ENGINEER_STOP_NOISES=0 (every
rung scored and recorded in the result, nothing stopped) and prints per candidate its trusted held-out loss at each
rung against the baseline's, the rung at which the engineer's rule (`worker.worse_at_rung`, 4 seed noises of that
step) would have stopped it, its final fitness and significance, and how many winners (significantly better than
the baseline) or the best candidate the rule would have stopped.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from schemas import codec  # noqa: E402
from schemas import events as ev  # noqa: E402
from schemas.events import EVENT_TYPES  # noqa: E402
from schemas.topics import topic_for  # noqa: E402
from services.common.bus import ensure_topics, publish_once  # noqa: E402
from services.common.embedded import EmbeddedKafka  # noqa: E402
from services.common.log_reader import read_log  # noqa: E402
from services.common.settings import Settings  # noqa: E402


async def wait_results(bootstrap: str, campaign: str, n: int) -> None:
    """Follow the ResultsReady topic until `n` experiments of `campaign` have results."""
    done = set()
    async for rec in read_log(bootstrap, [topic_for(ev.ResultsReady)], from_beginning=False, follow=True,
                              poll_ms=100):
        e = codec.decode(rec.value)
        if e.campaign_id == campaign:
            done.add(e.experiment_id)
            if len(done) >= n:
                return


async def scaling_round(bootstrap: str, data_dir: Path, n_engineers: int, jobs: int, job_s: float) -> float:
    from services.engineer.worker import Worker, WorkerConfig

    settings = Settings(kafka_bootstrap=bootstrap, data_dir=data_dir, partitions=12)
    steps = 10
    workers = [Worker(settings, WorkerConfig(engineer_id=f"bench-{n_engineers}-{i}", runner_module=
                                             "tests.engineer.fake_runner", preimport=(), lease_s=60, heartbeat_s=2,
                                             profile_overrides={"steps": steps}))
               for i in range(n_engineers)]
    for w in workers:
        await w.start()
    campaign = f"scale-{n_engineers}-{time.time_ns()}"
    proposals = [ev.ProposalCreated(campaign_id=campaign, experiment_id=f"{campaign}-{i}", producer="bench",
                                    name=f"job{i}", code=f"# fake: steps={steps} step_s={job_s / steps}\n",
                                    motivation="synthetic", profile="cpu-micro") for i in range(jobs)]
    waiter = asyncio.create_task(wait_results(bootstrap, campaign, jobs))
    await asyncio.sleep(1.0)  # the follower is at the end of the topic
    t0 = time.perf_counter()
    await publish_once(settings, *proposals)
    await waiter
    wall = time.perf_counter() - t0
    for w in workers:
        await w.stop()
    return jobs / wall * 60


async def scaling(engineers: list[int], jobs_per_engineer: int, job_s: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        broker = EmbeddedKafka(Path(tmp) / "broker").start()
        try:
            await ensure_topics(broker.bootstrap, 12)
            rates = {}
            for n in engineers:
                rates[n] = await scaling_round(broker.bootstrap, Path(tmp) / f"lab{n}", n, jobs_per_engineer * n,
                                               job_s)
                print(f"{n} engineer(s): {rates[n]:.1f} experiments/min", flush=True)
        finally:
            broker.stop()
    base = rates[engineers[0]] / engineers[0]
    ideal = 60 / job_s
    print(f"synthetic job {job_s:.1f} s, {jobs_per_engineer} jobs per engineer per round; "
          f"ideal per engineer {ideal:.1f}/min")
    print(f"{'engineers':>9} {'exp/min':>8} {'vs 1 engineer':>14} {'target 0.9N':>11}")
    for n, r in rates.items():
        ratio = r / base
        print(f"{n:9d} {r:8.1f} {ratio:13.2f}x {'ok' if ratio >= 0.9 * n else 'below':>11}")


async def overhead(data_dir: Path, campaign: str | None, reference: float | None = None) -> None:
    events = await campaign_events(data_dir)
    starts = sorted((e for e in events if isinstance(e, ev.CampaignStarted)), key=lambda e: e.occurred_at)
    campaign = campaign or starts[-1].campaign_id
    per: dict[str, dict] = {}
    for e in sorted(events, key=lambda e: e.occurred_at):
        if e.campaign_id != campaign:
            continue
        x = per.setdefault(e.experiment_id, {})
        t = e.occurred_at.timestamp()
        if isinstance(e, ev.ParentSampled):
            x.setdefault("sampled", t)
        elif isinstance(e, ev.ProposalCreated) and e.revision == 0:
            x.setdefault("proposed", t)
        elif isinstance(e, ev.TrainingStarted):
            x.setdefault("claimed", t)
        elif isinstance(e, ev.ResultsReady):
            x.setdefault("results", t)
            x.setdefault("runner_s", e.train_s + e.eval_s)
            x.setdefault("tokens_per_s", e.tokens_per_s)
            x.setdefault("name", e.name)
        elif isinstance(e, ev.ScoreAssigned) and e.rescore_of is None:
            x.setdefault("scored", t)
        elif isinstance(e, ev.InsightsStored):
            x.setdefault("insights", t)
    rows = []
    for exp, x in per.items():
        if not {"sampled", "proposed", "claimed", "results", "scored", "insights"} <= set(x):
            continue
        wall = x["insights"] - x["sampled"]
        work = {"propose+check": x["proposed"] - x["sampled"], "train+eval (runner)": x["runner_s"],
                "judge": x["scored"] - x["results"], "analyse": x["insights"] - x["scored"]}
        handoff = {"proposal -> claim": x["claimed"] - x["proposed"],
                   "sandbox start/exit + result hop": (x["results"] - x["claimed"]) - x["runner_s"]}
        rows.append((exp, wall, work, handoff))
    if not rows:
        print(f"no finished experiment in campaign {campaign}")
        return
    med = statistics.median
    wall = med(r[1] for r in rows)
    print(f"campaign {campaign}: {len(rows)} finished experiments; median wall {wall:.1f} s per experiment")
    for key in rows[0][2]:
        v = med(r[2][key] for r in rows)
        print(f"  work     {key:34} {v:8.2f} s  {100 * v / wall:5.1f}%")
    for key in rows[0][3]:
        v = med(r[3][key] for r in rows)
        print(f"  handoff  {key:34} {v:8.2f} s  {100 * v / wall:5.1f}%")
    if reference:
        for exp, x in per.items():
            if x.get("tokens_per_s") and x.get("name") == "deltanet":
                print(f"training inside the campaign ({x['name']}): {x['tokens_per_s']:,.0f} tokens/s vs "
                      f"{reference:,.0f} outside the lab = {x['tokens_per_s'] / reference:.2f}x (target >= 0.9x)")
    hops = med(sum(v for k, v in r[3].items() if k == "proposal -> claim") for r in rows)
    print(f"orchestration overhead (event hand-offs, excluding sandbox start): median {hops:.2f} s = "
          f"{100 * hops / wall:.2f}% of an experiment's wall time (target < 1%)")


def reference_tokens_per_s(profile: str, steps: int) -> float:
    """bench/train.py's framework loop (the runner's train()), DeltaNet from the zoo, one thread."""
    out = subprocess.run([sys.executable, str(Path(__file__).with_name("train.py")), "--worker", "framework",
                          "--steps", str(steps), "--profile", profile], capture_output=True, text=True, check=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["tokens_per_s"])


def run_and_measure(budget: int, profile: str) -> None:
    from lab import proc_cpu

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "lab"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHLAB_")}
        # a machine cache of its own: the baseline it samples the CPU of is trained, not reused
        env.update(ARCHLAB_DATA_DIR=str(data_dir), ARCHLAB_CACHE_DIR=str(Path(tmp) / "machine"))
        print(f"reference: training loop outside the lab ({profile}, DeltaNet, 1 thread)...", flush=True)
        ref = reference_tokens_per_s(profile, 60)
        print(f"  {ref:,.0f} tokens/s", flush=True)
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "services.cli.main", "run", "--budget", str(budget),
                                 "--concurrency", "1", "--engineers", "1", "--profile", profile, "--keep-up"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        window = None
        try:
            for line in proc.stdout:
                print("  | " + line.rstrip(), flush=True)
                if window is None and "training" in line and "step" in line:   # first heartbeat while training
                    state = json.loads((data_dir / "stack.json").read_text())
                    roots = dict(state["processes"], cli=proc.pid)
                    window = proc_cpu.measure(roots, 30)
            proc.wait()
            wall = time.monotonic() - t0
            print(f"campaign wall time {wall:.0f} s (budget {budget}, {profile})")
            if window is not None:
                print("CPU per stack process while the baseline trained (30 s window, % of one core;"
                      " the engineer's figure includes its training child):")
                print("\n".join(window.lines()))
                rest = window.total - window.by_name.get("engineer-1", 0.0)
                print(f"  everything but the training engineer: {rest:.2f} % of a core")
            asyncio.run(overhead(data_dir, None, reference=ref))
        finally:
            if proc.poll() is None:
                proc.terminate()
            subprocess.run([sys.executable, "-m", "services.cli.main", "down"], env=env, capture_output=True,
                           timeout=300)


THROUGHPUT_ARMS = {   # arm -> (environment, arguments, data directory ("{n}": its own each time), machine cache)
    "before": ({"ARCHLAB_ENGINEER_RUNG_FRACS": "[]", "ARCHLAB_ENGINEER_REUSE_BASELINE": "0"}, ["--concurrency", "2"],
               "before-{n}", "before-machine-{n}"),
    "after": ({}, [], "after", "machine"),
    "again": ({}, [], "after", "machine"),
    "fresh": ({}, [], "fresh-{n}", "machine"),
}


# the code the before arm swaps: the proposer's kernels, and the fla shim's short convolution (every program's;
# faster since 90e3577)
KERNEL_FILES = ("services/researcher/codegen.py", "lab/fla_shim/fla/modules/convolution.py")
BEFORE_KERNELS = "a3a899c^"                       # issue 23's first kernel speed-up is a3a899c, its second 7d2dadd
KERNEL_MARKERS = {"inverse": "T_inv = torch.linalg.solve_triangular(eye + A",   # the delta kernel before 7d2dadd
                  "one solve": "unitriangular=True"}                              # since


def checkout_with_kernels(root: Path, ref: str) -> Path:
    """A copy of this checkout's files (tracked, as they are now) with the proposer's kernels as they were at `ref`:
    the lab the before arm runs (its services start from the working directory, before the installed package)."""
    repo = Path(__file__).resolve().parents[1]
    dest = root / f"lab-at-{ref.replace('^', '-parent').replace('/', '_')}"
    try:
        kernels = {name: subprocess.run(["git", "-C", str(repo), "show", f"{ref}:{name}"], capture_output=True,
                                        text=True, check=True).stdout for name in KERNEL_FILES}
        files = subprocess.run(["git", "-C", str(repo), "ls-files", "-z"], capture_output=True, text=True,
                               check=True).stdout.split("\0")
    except (OSError, subprocess.CalledProcessError) as e:
        err = (getattr(e, "stderr", "") or str(e)).strip()
        raise SystemExit(f"--before-kernels {ref}: cannot read {', '.join(KERNEL_FILES)} at {ref} from git in {repo} "
                         f"({err}); run the bench from a git clone with its history, or pass --before-kernels HEAD")
    for name in filter(None, files):
        src = repo / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    for name, text in kernels.items():
        (dest / name).write_text(text)
    return dest


def kernels_used(events: list[ev.Event]) -> dict[str, int]:
    """How many of a campaign's proposals carry each delta kernel (KERNEL_MARKERS): which codegen rendered them."""
    codes = [e.code for e in events if isinstance(e, ev.ProposalCreated) and e.role != "baseline"]
    return {kind: sum(marker in c for c in codes) for kind, marker in KERNEL_MARKERS.items()}


async def campaign_events(data_dir: Path) -> list[ev.Event]:
    from services.common import endpoints

    bootstrap = endpoints.kafka_bootstrap(Settings(data_dir=data_dir))
    out = []
    async for rec in read_log(bootstrap, [topic_for(t) for t in EVENT_TYPES]):
        try:
            out.append(codec.decode(rec.value))
        except codec.EventDecodeError:
            continue
    return sorted(out, key=lambda e: e.occurred_at)


def summarise(events: list[ev.Event], wall: float, cores: int) -> dict:
    roles = {e.experiment_id: e.mode for e in events if isinstance(e, ev.ParentSampled)}
    cands = {x for x, m in roles.items() if m == "explore"}
    trained = {e.experiment_id for e in events if isinstance(e, ev.ResultsReady)}
    stopped = {e.experiment_id for e in events if isinstance(e, ev.TrainingStopped)} & cands
    abandoned = {e.experiment_id for e in events if isinstance(e, ev.ExperimentAbandoned)} & cands
    scores = {e.experiment_id: e for e in events if isinstance(e, ev.ScoreAssigned) and e.rescore_of is None}
    names = {e.experiment_id: e.name for e in events if isinstance(e, ev.ResultsReady)}
    ended = (set(scores) & cands) | stopped | abandoned
    sampled = {e.experiment_id: e.occurred_at for e in events if isinstance(e, ev.ParentSampled)}
    starts = {}
    for e in events:
        if isinstance(e, ev.TrainingStarted) and e.experiment_id in sampled:
            starts.setdefault(e.experiment_id, (e.occurred_at - sampled[e.experiment_id]).total_seconds())
    best = max((x for x in scores if x in cands), key=lambda x: scores[x].fitness, default=None)
    return {"wall_s": wall, "models_trained": len(trained), "candidates_ended": len(ended), "stopped": len(stopped),
            "abandoned": len(abandoned), "per_cpu_hour": len(ended) / (wall * cores / 3600) if wall else 0.0,
            "start_s": statistics.median(starts.values()) if starts else None,
            "best": (names.get(best, best), scores[best].fitness) if best else None}


def campaign_id_of(arm: str, campaign_id: str) -> str:
    """The arm's campaign id: the bench's own for every arm (the same draws), but "again", whose data directory
    already holds that campaign."""
    return f"{campaign_id}-again" if arm == "again" else campaign_id


def sampled_names(events: list[ev.Event]) -> list[str]:
    """The campaign's candidates in the order sampled, by name (what the proposer drew for them)."""
    order = {e.experiment_id: e.occurred_at for e in events if isinstance(e, ev.ParentSampled) and e.mode == "explore"}
    names = {e.experiment_id: e.name for e in events if isinstance(e, ev.ProposalCreated)}
    return [names.get(x, "(no proposal)") for x in sorted(order, key=order.get)]


def throughput(budget: int, profile: str, seed: int, arms: list[str], before_kernels: str,
               campaign_id: str | None = None) -> None:
    cores = os.cpu_count() or 1
    results = {}
    campaign_id = campaign_id or "c-bench-" + os.urandom(4).hex()
    print(f"campaign id of the arms: {campaign_id}")
    with tempfile.TemporaryDirectory() as root:
        before_lab = None
        if "before" in arms and before_kernels != "HEAD":
            before_lab = checkout_with_kernels(Path(root), before_kernels)
            print(f"the before arms run from {before_lab.name}: this checkout with {', '.join(KERNEL_FILES)} "
                  f"at {before_kernels}")
        for n, arm in enumerate(arms):
            extra_env, extra_args, folder, cache = THROUGHPUT_ARMS[arm]
            label = arm if arms.count(arm) == 1 else f"{arm}-{arms[:n + 1].count(arm)}"
            data_dir = Path(root) / folder.format(n=n)
            env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHLAB_")}
            env.update(ARCHLAB_DATA_DIR=str(data_dir), ARCHLAB_CACHE_DIR=str(Path(root) / cache.format(n=n)),
                       ARCHLAB_UI_PORT="0", COLUMNS="200", **extra_env)
            argv = [sys.executable, "-m", "services.cli.main", "run", "--budget", str(budget), "--profile", profile,
                    "--seed", str(seed), "--replicate", "0", "--keep-up",
                    "--campaign-id", campaign_id_of(arm, campaign_id), *extra_args]
            print(f"== {label}: {' '.join(argv[3:])} {' '.join(f'{k}={v}' for k, v in extra_env.items())}", flush=True)
            t0 = time.monotonic()
            try:
                proc = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      cwd=before_lab if arm == "before" else None)
                wall = time.monotonic() - t0
                for line in proc.stdout.splitlines():
                    if "->" in line or "stopped early" in line or "completed" in line or "concurrency" in line:
                        print("  | " + line.rstrip()[:160], flush=True)
                events = asyncio.run(campaign_events(data_dir))
                latest = max((e for e in events if isinstance(e, ev.CampaignStarted)), key=lambda e: e.occurred_at)
                mine = [e for e in events if e.campaign_id == latest.campaign_id]
                results[label] = summarise(mine, wall, cores)
                results[label]["exit"] = proc.returncode
                print("  kernels of its proposals: " + ", ".join(f"{k} {v}" for k, v in kernels_used(mine).items()),
                      flush=True)
                print("  candidates in the order sampled: " + ", ".join(sampled_names(mine)), flush=True)
            finally:   # each arm's stack goes down before the next starts
                subprocess.run([sys.executable, "-m", "services.cli.main", "down"], env=env, capture_output=True,
                               timeout=300)
    print(f"\n{'arm':8} {'wall s':>7} {'exit':>4} {'trained':>7} {'ended':>5} {'stopped':>7} {'cand/CPU-h':>10} "
          f"{'start s':>7}  best")
    for arm, r in results.items():
        best = f"{r['best'][0]} {r['best'][1]:.4f}" if r["best"] else "-"
        start = f"{r['start_s']:.1f}" if r["start_s"] is not None else "-"
        print(f"{arm:8} {r['wall_s']:7.0f} {r['exit']:4d} {r['models_trained']:7d} {r['candidates_ended']:5d} "
              f"{r['stopped']:7d} {r['per_cpu_hour']:10.2f} {start:>7}  {best}")

    def runs_of(arm: str) -> dict[str, dict]:
        return {label: r for label, r in results.items() if label == arm or label.rsplit("-", 1)[0] == arm}

    # the reference is the mean of the before arms: one before campaign has ranged 730-1059 s on this machine
    befores = runs_of("before")
    before = statistics.fmean(r["per_cpu_hour"] for r in befores.values()) if befores else None
    before_best = {(r["best"] or [None])[0] for r in befores.values()}
    for label, r in results.items():
        if before and label not in befores:
            print(f"candidates per CPU-hour {label}/before: {r['per_cpu_hour'] / before:.2f}x (target >= 2x); "
                  f"same best candidate: {(r['best'] or [None])[0] in before_best}")
    for arm in THROUGHPUT_ARMS:
        runs = [r["per_cpu_hour"] for r in runs_of(arm).values()]
        if before and len(runs) > 1:
            print(f"{arm}, mean of {len(runs)} campaigns: {statistics.fmean(runs):.2f} candidates per CPU-hour, "
                  f"{statistics.fmean(runs) / before:.2f}x before")


async def rungs(data_dir: Path, campaign: str | None, stop_noises: float) -> None:
    from lab.training.profiles import get_profile
    from services.engineer.claims import rung_losses
    from services.engineer.worker import worse_at_rung

    events = await campaign_events(data_dir)
    starts = sorted((e for e in events if isinstance(e, ev.CampaignStarted)), key=lambda e: e.occurred_at)
    campaign = campaign or starts[-1].campaign_id
    mine = [e for e in events if e.campaign_id == campaign]
    results = {e.experiment_id: e for e in mine if isinstance(e, ev.ResultsReady)}
    scores = {e.experiment_id: e for e in mine if isinstance(e, ev.ScoreAssigned) and e.rescore_of is None}
    base = next((r for r in results.values() if r.role == "baseline"), None)
    if base is None:
        print(f"campaign {campaign}: no baseline result")
        return
    profile = get_profile(base.profile)
    base_rungs = rung_losses(base.metrics)
    steps = sorted(base_rungs)
    print(f"campaign {campaign} ({base.profile}): baseline {base.name} held-out loss at the rungs "
          + ", ".join(f"step {s} {base_rungs[s]:.4f} (noise {profile.loss_noise_at(s):.3f})" for s in steps))
    print(f"{'candidate':32} " + " ".join(f"{'step ' + str(s):>11}" for s in steps)
          + f" {'final':>8} {'stopped at':>10} {'final loss':>10} {'fitness':>8} significant")
    would, cands = [], []
    for exp, r in sorted(results.items(), key=lambda kv: kv[1].occurred_at):
        if r.role == "baseline" or exp not in scores:
            continue
        own = rung_losses(r.metrics)
        stop = next((s for s in sorted(own) if worse_at_rung(profile, s, own[s], base_rungs.get(s), stop_noises)),
                    None)
        sc = scores[exp]
        cands.append((r, sc, stop))
        print(f"{r.name[:32]:32} " + " ".join(f"{own[s] - base_rungs[s]:+11.4f}" if s in own else f"{'-':>11}"
                                              for s in steps)
              + f" {r.final_loss - base.final_loss:+8.4f} {str(stop) if stop else '-':>10} {r.final_loss:10.4f} "
                f"{sc.fitness:8.4f} {sc.significant}")
        if stop:
            would.append((r, sc))
    best = max(cands, key=lambda c: c[1].fitness, default=None)
    # a winner: significantly different from the baseline (ScoreAssigned.significant) and better (fitness > 0.5)
    lost = [r.name for r, sc in would if (sc.significant and sc.fitness > 0.5)
            or (best and r.experiment_id == best[0].experiment_id)]
    trained = len(cands)
    saved = sum(1 - (stop / profile.steps) for _, _, stop in cands if stop)
    print(f"(rung and final columns: the candidate's held-out loss minus the baseline's, final {base.final_loss:.4f}; "
          f"margin {stop_noises:g} noises of each step)")
    print(f"{len(would)} of {trained} candidates would have been stopped, saving {saved:.2f} of {trained} trainings; "
          f"winners (significantly better than the baseline) or the best among them: {len(lost)} {lost}")


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="part", required=True)
    s = sub.add_parser("scaling")
    s.add_argument("--engineers", default="1,2,4,8")
    s.add_argument("--jobs-per-engineer", type=int, default=6)
    s.add_argument("--job-s", type=float, default=6.0)
    o = sub.add_parser("overhead")
    o.add_argument("--data-dir", type=Path)
    o.add_argument("--campaign")
    o.add_argument("--run", action="store_true", help="run a fresh campaign first, then measure it")
    o.add_argument("--budget", type=int, default=2)
    o.add_argument("--profile", default="cpu-tiny")
    t = sub.add_parser("throughput")
    t.add_argument("--budget", type=int, default=6)
    t.add_argument("--profile", default="cpu-tiny")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--arms", default="before,after,again,fresh")
    t.add_argument("--before-kernels", default=BEFORE_KERNELS,
                   help="git revision of the proposer's kernels for the before arms (HEAD: today's)")
    t.add_argument("--campaign-id", help="the campaign id of every arm (default: one drawn for this bench run)")
    r = sub.add_parser("rungs")
    r.add_argument("--data-dir", type=Path, required=True)
    r.add_argument("--campaign")
    r.add_argument("--stop-noises", type=float, default=4.0)
    a = ap.parse_args()
    if a.part == "rungs":
        asyncio.run(rungs(a.data_dir, a.campaign, a.stop_noises))
    elif a.part == "throughput":
        throughput(a.budget, a.profile, a.seed, [x for x in a.arms.split(",") if x], a.before_kernels,
                   a.campaign_id)
    elif a.part == "scaling":
        asyncio.run(scaling([int(x) for x in a.engineers.split(",")], a.jobs_per_engineer, a.job_s))
    elif a.run:
        run_and_measure(a.budget, a.profile)
    elif a.data_dir is None:
        ap.error("overhead needs --data-dir DIR (a finished campaign's stack) or --run")
    else:
        asyncio.run(overhead(a.data_dir, a.campaign))


if __name__ == "__main__":
    main()
