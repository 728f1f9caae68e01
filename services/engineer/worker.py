"""One engineer: claims proposals through the log, trains them in the sandbox, publishes the outcome.

Why not a consumer group: a group hands each partition to one member, so a proposal waits behind
a busy engineer's hour-long run while another engineer idles, and a run longer than the poll
interval triggers a rebalance. Instead every engineer reads every work topic (all partitions,
manual assignment, no group), folds them into its WorkTable (claims.py) and, when idle, claims the
next waiting run with a TrainingStarted; the first claim in the log wins (see claims.py). Nothing
is committed: on start an engineer replays the work topics to rebuild the table.

While training, the asyncio loop stays free: the sandbox child runs in a thread, stdout progress
lines come back through `on_line`, and a TrainingProgress heartbeat goes out every heartbeat_s
(the lease). If the table shows that another engineer took the run over, the child is stopped.
Before publishing ResultsReady/TrainingFailed the engineer reads the claim partition up to its
end and publishes only if its claim still owns the run (fencing); the outcome's event_id is
derived from experiment+revision, so even a race at the very end yields one fact.
Checkpoints live in a shared directory keyed by experiment and revision, so a takeover resumes
from the last checkpoint.
"""
from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas import codec
from schemas import events as ev
from schemas.topics import topic_for
from services.common import endpoints
from services.common.bus import Service, ensure_topics
from lab.sandbox import RESULT_NAME, Limits, SandboxResult, write_child_file
from lab.training import calibrate
from lab.training import datastage
from lab.training.runner import RUNG_GO_NAME, rung_dir
from lab.training.sandboxed import (RUNNER_MODULE, RUNNER_PREIMPORT, progress_of, rung_of, training_job,
                                    training_limits)
from lab.training.heldout import campaign_eval_seed
from lab.training.scoring import forward_limits, run_and_score, score
from lab.training.train import AUTOCAST_MODES
from services.common.settings import Settings, get_settings
from services.engineer import handlers
from services.engineer.baseline_cache import BaselineCache, cache_key
from services.engineer.claims import RUNG_METRIC, Run, WorkTable
from services.engineer.concurrency import THREADS_FILE, CoreShare, load_plan, write_threads
from lab.training.profiles import get_profile

WORK_EVENTS = (ev.ProposalCreated, ev.TrainingStarted, ev.TrainingProgress, ev.ResultsReady, ev.TrainingFailed,
               ev.TrainingStopped)


def rung_steps(profile, fracs) -> tuple[int, ...]:
    """The steps at which a run's weights are judged (early stopping): `fracs` of the steps, on loss-curve points,
    strictly inside the run."""
    steps = {round(f * profile.steps / profile.log_every) * profile.log_every for f in fracs}
    return tuple(sorted(s for s in steps if 0 < s < profile.steps))


def worse_at_rung(profile, step: int, loss: float, baseline_loss: float | None, stop_noises: float) -> bool:
    """Early stopping's rule: the trusted held-out loss at rung `step` exceeds the baseline's there by more than
    `stop_noises` seed noises of the loss at that step (`Profile.loss_noise_at`); never without a baseline loss,
    a known noise, or with `stop_noises` 0."""
    noise = profile.loss_noise_at(step)
    return baseline_loss is not None and noise > 0 and stop_noises > 0 and loss > baseline_loss + stop_noises * noise


def default_engineer_id(settings: Settings) -> str:
    return settings.engineer_id or f"{socket.gethostname()}-{os.getpid()}"


def detect_device(settings: Settings) -> str:
    if settings.device != "auto":
        return settings.device
    return "cuda" if Path("/dev/nvidia0").exists() and os.environ.get("CUDA_VISIBLE_DEVICES", "x") != "" else "cpu"


@dataclass
class WorkerConfig:
    engineer_id: str
    lease_s: float = 60.0
    heartbeat_s: float = 5.0
    threads: int = 1
    device: str = "cpu"
    runner_module: str = "lab.training.runner"
    profile_overrides: dict = field(default_factory=dict)  # e.g. {"steps": 30} in tests
    claim_timeout_s: float = 30.0
    preimport: tuple[str, ...] = RUNNER_PREIMPORT
    keep_scratch: bool = False
    calibrate: bool = True       # time limits from this machine's measured speed (calibrate.py)
    share_cores: bool = True     # with a measured plan of this machine: a lone run gets the free cores (concurrency.py)
    share_every_s: float = 1.0   # how often a run's share is recomputed while it trains
    rung_fracs: tuple[float, ...] = (0.4, 0.5, 0.75)  # early stopping: weights judged at these fractions of the steps
    stop_noises: float = 4.0     # stop a candidate worse than the baseline at a rung by more (0: judge, never stop)
    reuse_baseline: bool = True  # a baseline already trained on this machine is re-scored, not trained (baseline_cache)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides) -> "WorkerConfig":
        base = dict(engineer_id=default_engineer_id(settings), lease_s=settings.engineer_lease_s,
                    heartbeat_s=settings.engineer_heartbeat_s, threads=settings.engineer_threads,
                    stop_noises=settings.engineer_stop_noises, reuse_baseline=settings.engineer_reuse_baseline,
                    rung_fracs=tuple(settings.engineer_rung_fracs), device=detect_device(settings))
        return cls(**{**base, **overrides})


class Worker:
    def __init__(self, settings: Settings | None = None, config: WorkerConfig | None = None):
        self.settings = settings or get_settings()
        self.config = config or WorkerConfig.from_settings(self.settings)
        self.id = self.config.engineer_id
        self.svc = Service("engineer", self.settings)  # broker (publishing), structlog, DLQ format
        self.log = self.svc.log.bind(engineer_id=self.id)
        self.table = WorkTable(self.id)
        self.consumer: AIOKafkaConsumer | None = None
        self.positions: dict[TopicPartition, int] = {}
        self._start_offsets: dict[TopicPartition, int] = {}
        self._caught_up_to: dict[TopicPartition, int] = {}
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._step_s: dict[str, float | None] = {}   # profile -> calibrated seconds per step
        self._tasks: list[asyncio.Task] = []
        self.current: tuple[str, int] | None = None     # the run being trained
        self.completed: list[tuple[str, int, str]] = []   # (experiment, revision, outcome) published by us

    # ---------------------------------------------------------------- paths
    def checkpoint_dir(self, experiment_id: str, revision: int) -> Path:
        return (Path(self.settings.data_dir) / "checkpoints" / experiment_id / f"rev{revision}").resolve()

    def scratch_root(self) -> Path:
        root = (Path(self.settings.data_dir) / "scratch" / self.id).resolve()
        root.mkdir(parents=True, exist_ok=True)
        return root

    # ---------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        bootstrap = endpoints.kafka_bootstrap(self.settings)
        await ensure_topics(bootstrap, self.settings.partitions, self.settings.replication_factor)
        await self.svc.broker.start()
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                         auto_offset_reset="earliest", client_id=f"engineer-{self.id}",
                                         fetch_max_wait_ms=self.settings.fetch_max_wait_ms)
        await self.consumer.start()
        tps = []
        for cls in WORK_EVENTS:
            topic = topic_for(cls)
            parts = self.consumer.partitions_for_topic(topic)
            for _ in range(50):
                if parts:
                    break
                await self.consumer.topics()  # refreshes metadata
                await asyncio.sleep(0.1)
                parts = self.consumer.partitions_for_topic(topic)
            tps += [TopicPartition(topic, p) for p in sorted(parts or [])]
        self.consumer.assign(tps)
        await self.consumer.seek_to_beginning(*tps)
        self._start_offsets = await self.consumer.beginning_offsets(tps)
        self._caught_up_to = await self.consumer.end_offsets(tps)
        self._tasks = [asyncio.create_task(self._consume(), name="engineer-consume"),
                       asyncio.create_task(self._schedule(), name="engineer-schedule")]
        self.log.info("engineer started", device=self.config.device, lease_s=self.config.lease_s,
                      partitions=len(tps))

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        for task in self._tasks:
            try:
                await asyncio.wait_for(task, timeout=self.config.heartbeat_s + 30)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                task.cancel()
            except Exception as e:  # noqa: BLE001
                self.log.warning("task ended with an error", error=repr(e))
        if self.consumer is not None:
            await self.consumer.stop()
        await self.svc.stop()

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stopping.set)
        await self.start()
        try:
            await self._stopping.wait()
        finally:
            await self.stop()

    def run(self) -> None:
        asyncio.run(self.serve())

    # ---------------------------------------------------------------- reading the log
    def position(self, tp: TopicPartition) -> int:
        return self.positions.get(tp, self._start_offsets.get(tp, 0))

    @property
    def caught_up(self) -> bool:
        """The history that existed at start is folded in (no claim is made before)."""
        return all(self.position(tp) >= end for tp, end in self._caught_up_to.items())

    async def _consume(self) -> None:
        while not self._stopping.is_set():
            try:
                batches = await self.consumer.getmany(timeout_ms=300, max_records=1000)
            except Exception as e:  # noqa: BLE001 - a broker hiccup: retry
                self.log.warning("fetch failed", error=repr(e))
                await asyncio.sleep(1.0)
                continue
            for tp, messages in batches.items():
                for msg in messages:
                    await self._fold(tp, msg)
                    self.positions[tp] = msg.offset + 1
            if batches:
                self._wake.set()

    async def _fold(self, tp: TopicPartition, msg) -> None:
        try:
            event = codec.decode(msg.value)
        except codec.EventDecodeError as e:
            self.log.error("undecodable event", error_kind=e.kind, error=str(e), topic=tp.topic,
                           partition=tp.partition, offset=msg.offset)
            await self._dead_letter(tp, msg, e.kind, str(e))
            return
        self.table.apply(event)

    async def _dead_letter(self, tp: TopicPartition, msg, kind: str, error: str) -> None:
        try:
            await self.svc.dead_letter(f"engineer-{self.id}", tp.topic, msg.value or b"", kind, error,
                                       partition=tp.partition, offset=msg.offset, key=msg.key)
        except Exception as e:  # noqa: BLE001 - the broker is away: the error is logged above already
            self.log.warning("dead-letter publish failed", error=repr(e))

    async def _until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline or self._stopping.is_set():
                return predicate()
            await asyncio.sleep(0.05)
        return True

    async def _read_up_to_end(self, tp: TopicPartition, timeout: float = 30.0) -> bool:
        """Fold partition `tp` up to its current end (e.g. every claim made so far)."""
        end = (await self.consumer.end_offsets([tp]))[tp]
        return await self._until(lambda: self.position(tp) >= end, timeout)

    async def publish(self, event: ev.Event):
        """Publish one event through the service's bus; its record metadata (the claim's partition, offset)."""
        (meta,) = await self.svc.publish(event)
        return meta

    # ---------------------------------------------------------------- claiming
    async def _schedule(self) -> None:
        while not self._stopping.is_set():
            run = self.table.next_claimable() if self.caught_up else None
            if run is None:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=1.0)
                except asyncio.TimeoutError:
                    pass
                continue
            await asyncio.sleep(random.uniform(0.0, 0.2))  # spread simultaneous claims of idle engineers
            if not any(r is run for r in self.table.claimable()):
                continue
            try:
                await self.claim_and_train(run)
            except Exception as e:  # noqa: BLE001 - an engineer must survive any single run
                self.log.exception("run failed in the engineer", experiment_id=run.experiment_id, error=repr(e))
                await asyncio.sleep(1.0)

    async def claim_and_train(self, run: Run) -> None:
        proposal = run.proposal
        exp, rev = run.experiment_id, run.revision
        takeover_of = run.owner_id  # set only when the owner's lease expired
        step_s = await self.calibrated_step_s(proposal.profile)
        profile = get_profile(proposal.profile, **self.config.profile_overrides)
        claim = handlers.claim_event(proposal, engineer_id=self.id, lease_s=self.config.lease_s,
                                     device=self.config.device, takeover_of=takeover_of,
                                     resumed_from_step=run.checkpoint_step or 0, calibrated_step_s=step_s,
                                     wall_limit_s=self.limits_for(profile, self.checkpoint_dir(exp, rev), step_s).wall_s)
        meta = await self.publish(claim)
        claim_tp = TopicPartition(meta.topic, meta.partition)
        seen = await self._until(lambda: self.table.claim_seen(exp, rev, claim.event_id), self.config.claim_timeout_s)
        if not seen or not self.table.holds(exp, rev, claim.event_id):
            self.log.info("claim lost", experiment_id=exp, revision=rev, owner=self.table.run(exp, rev).owner_id)
            return
        self.log.info("claim won", experiment_id=exp, revision=rev, takeover_of=takeover_of,
                      offset=meta.offset, checkpoint_step=run.checkpoint_step)
        self.current = (exp, rev)
        try:
            await self.train(proposal, claim, claim_tp)
        finally:
            self.current = None

    # ---------------------------------------------------------------- training
    def core_share(self, profile) -> CoreShare | None:
        """This host's share of the cores between training runs, where a measured plan for the profile exists
        (`archlab run` measures one; concurrency.py); None: every run keeps `config.threads`."""
        if not self.config.share_cores or self.config.device != "cpu":
            return None
        found = load_plan(self.settings.machine_cache, profile.name)
        if found is None or found.lone_threads <= 1 and found.threads <= 1:
            return None
        return CoreShare(self.settings.data_dir, self.id, cores=found.cores, lone_threads=found.lone_threads)

    async def _keep_share(self, share: CoreShare, scratch: Path, child: asyncio.Future) -> None:
        """While the child trains: its share of the cores, rewritten when the number of runs changes."""
        current = None
        while not child.done():
            threads = share.threads()
            if threads != current:
                try:
                    write_threads(scratch, threads)
                except OSError as e:   # the child's scratch is the child's: it may have put a directory there
                    self.log.warning("threads share not written; the run keeps its threads", error=repr(e))
                current = threads
            await asyncio.sleep(self.config.share_every_s)

    def limits_for(self, profile, checkpoint_dir: Path, step_s: float | None = None,
                   data_stage: Path | None = None, threads: int | None = None) -> Limits:
        return training_limits(profile, device=self.config.device, threads=threads or self.config.threads,
                               writable=(str(checkpoint_dir),), preimport=self.config.preimport, step_s=step_s,
                               data_stage=data_stage)

    async def staged_data(self, profile) -> Path | None:
        """The profile's staged data (datastage.py), prepared here, trusted and network-allowed, before this
        engineer's first job of the profile. None: the profile needs none, or preparing failed (logged; the
        offline child then fails naming `archlab data prepare`)."""
        if not datastage.needs_staging(profile):
            return None
        found = datastage.staged(profile, self.settings.data_dir)
        if found is None:
            self.log.info("staging the profile's data", profile=profile.name)
            try:
                found = await asyncio.to_thread(datastage.prepare, profile, self.settings.data_dir)
            except Exception as e:  # noqa: BLE001 - no network, no hub: the run fails with the command to run
                self.log.warning("data staging failed", profile=profile.name, error=repr(e))
        return found

    async def calibrated_step_s(self, profile_name: str) -> float | None:
        """This machine's seconds per step on the profile, measured once (None: not measured)."""
        if not self.config.calibrate or self.config.runner_module != RUNNER_MODULE:
            return None
        plan = load_plan(self.settings.machine_cache, profile_name) if profile_name not in self._step_s else None
        per_run = plan.tokens_per_s.get(f"{plan.concurrency}x{plan.threads}", 0.0) / plan.concurrency if plan else 0.0
        if per_run > 0:   # measured at start-up already (concurrency.py): no calibration child before the first run
            self._step_s[profile_name] = get_profile(profile_name).tokens_per_step / per_run
            self.log.info("speed from the concurrency plan", profile=profile_name,
                          step_s=round(self._step_s[profile_name], 4), tokens_per_s=round(per_run))
        if profile_name not in self._step_s:
            try:
                cal = await calibrate.calibrate(profile_name, threads=self.config.threads)
                self._step_s[profile_name] = cal["step_s"]
                self.log.info("speed calibrated", profile=profile_name, step_s=round(cal["step_s"], 4),
                              tokens_per_s=round(cal["tokens_per_s"]))
            except Exception as e:  # noqa: BLE001 - the profile's constant limit still applies
                self.log.warning("speed calibration failed; the profile's constant time limit applies",
                                 profile=profile_name, error=repr(e))
                self._step_s[profile_name] = None
        return self._step_s[profile_name]

    def rung_steps(self, profile) -> tuple[int, ...]:
        return rung_steps(profile, self.config.rung_fracs)

    async def _judge_rung(self, proposal: ev.ProposalCreated, job: dict, scratch: Path, limits: Limits, profile,
                          rung: dict, stop: threading.Event, verdict: dict) -> None:
        """`_score_rung`, then, unless the run was stopped there, the go-ahead its child waits for at the rung
        (runner.Job.rung_go), whatever became of the scoring."""
        try:
            await self._score_rung(proposal, job, scratch, limits, profile, rung, stop, verdict)
        finally:
            if job.get("rung_go") and not verdict["stopped"]:
                try:
                    write_child_file(scratch, RUNG_GO_NAME.format(step=int(rung.get("step") or 0)), "")
                except (OSError, ValueError) as e:   # the child trains on after RUNG_WAIT_S anyway
                    self.log.warning("rung go-ahead not written", experiment_id=proposal.experiment_id,
                                     error=repr(e))

    async def _score_rung(self, proposal: ev.ProposalCreated, job: dict, scratch: Path, limits: Limits, profile,
                          rung: dict, stop: threading.Event, verdict: dict) -> None:
        """The trusted held-out loss of the weights at a rung (the child only says they are there; where they are
        is ours to say), recorded for the result; a candidate worse than the baseline at the same rung by more
        than `stop_noises` seed noises is stopped (`verdict["stopped"]`, then `stop`). The held-out batches are the
        campaign's (heldout.py), the same for the baseline and every candidate."""
        step = int(rung.get("step") or 0)
        if step not in verdict["rungs"] or step in verdict["losses"]:
            return
        mode = rung.get("autocast") if rung.get("autocast") in AUTOCAST_MODES else "fp32"
        # the held-out loss is what is judged, not the profile's benchmark battery
        rjob = {**job, "workdir": str(rung_dir(job["workdir"], step))}
        t0 = time.monotonic()
        try:   # no causality probe here: a program that cheats at a rung only trains on, to be probed at the end
            # one thread: the run's other threads, if any, belong to the other runs (a run that a rung can stop
            # waits for the verdict; a baseline trains on beside its scoring)
            fields, _ = await asyncio.to_thread(score, rjob, scratch, limits=replace(forward_limits(limits, profile),
                                                                                     threads=1),
                                                stop=stop, autocast=mode, probe=False, benchmark=False,
                                                eval_seed=campaign_eval_seed(self.settings.data_dir,
                                                                             proposal.campaign_id))
        except Exception as e:  # noqa: BLE001 - no verdict at this rung; the run goes on
            fields = {"error": repr(e)}
        loss = fields.get("final_loss")
        if loss is None:
            self.log.warning("rung not scored; the run goes on", experiment_id=proposal.experiment_id, step=step,
                             error=str(fields.get("error"))[:300])
            return
        verdict["losses"][step] = loss
        base = None if proposal.role == "baseline" else self.table.baseline_rung_loss(proposal, step)
        noise = profile.loss_noise_at(step)   # the spread between seeds at this step, not only at the end
        self.log.info("rung scored", experiment_id=proposal.experiment_id, step=step, heldout_loss=round(loss, 4),
                      baseline_loss=base, seed_noise=noise, scoring_s=round(time.monotonic() - t0, 1))
        if not worse_at_rung(profile, step, loss, base, self.config.stop_noises):
            return
        verdict["stopped"] = {"rung": verdict["rungs"].index(step) + 1, "step": step, "total_steps": profile.steps,
                              "heldout_loss": float(loss), "baseline_loss": float(base), "seed_noise": noise,
                              "noises": float(self.config.stop_noises)}
        stop.set()

    def baseline_key(self, proposal: ev.ProposalCreated) -> str | None:
        """The baseline cache's key for a campaign baseline (baseline_cache.py); None: this run is never reused."""
        if proposal.role != "baseline" or proposal.revision or not self.config.reuse_baseline:
            return None
        return cache_key(proposal.code, proposal.profile, self.config.profile_overrides, proposal.seed,
                         self.config.device)

    def reused_baseline(self, key: str, workdir: Path, rungs: tuple[int, ...], exp: str) -> SandboxResult | None:
        """A baseline already trained on this machine: its weights copied into `workdir`, and the training child's
        result for the scorer; None: train it."""
        cached = BaselineCache(self.settings.machine_cache).lookup(key, rungs)
        if cached is None:
            return None
        try:
            result = cached.restore(workdir, rungs)
        except OSError as e:   # a damaged entry: train as if there were none
            self.log.warning("baseline cache entry unreadable; training", cache=str(cached.path), error=repr(e))
            return None
        self.log.info("baseline reused: its weights are scored on this campaign's held-out data", experiment_id=exp,
                      trained_by=cached.trained_by, cache=str(cached.path))
        return SandboxResult(True, "ok", 0, result=result)

    def keep_baseline(self, key: str, result: dict, workdir: Path, scratch: Path, rungs: tuple[int, ...],
                      proposal: ev.ProposalCreated) -> None:
        kept = BaselineCache(self.settings.machine_cache).store(key, result, workdir, scratch, rungs,
                                                           f"{proposal.campaign_id}/{proposal.experiment_id}")
        if kept is not None:
            self.log.info("baseline kept for reuse on this machine", experiment_id=proposal.experiment_id,
                          cache=str(kept))

    async def train(self, proposal: ev.ProposalCreated, claim: ev.TrainingStarted, claim_tp: TopicPartition) -> None:
        exp, rev = proposal.experiment_id, proposal.revision
        profile = get_profile(proposal.profile, **self.config.profile_overrides)
        ckpt = self.checkpoint_dir(exp, rev)
        ckpt.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f"{exp[:16]}-r{rev}-", dir=self.scratch_root()))
        reference = self.table.reference_step_s(proposal, self.config.device)
        real_runner = self.config.runner_module == RUNNER_MODULE   # tests swap in a fake runner, scored as is
        share = self.core_share(profile)
        threads = None
        if share is not None:   # registered before the child starts: a lone run sees us within share_every_s
            share.enter()
            threads = share.threads()
            write_threads(scratch, threads)
        rungs = self.rung_steps(profile) if real_runner else ()
        # a run that a rung can stop waits there for the verdict (runner.Job.rung_go); a baseline trains on
        can_stop = bool(rungs) and proposal.role != "baseline" and self.config.stop_noises > 0
        job = training_job(proposal.code, proposal.profile, proposal.seed, scratch=scratch, checkpoint_dir=ckpt,
                           resume=True, reference_step_s=reference,
                           reference_probe_s=self.table.reference_probe_s(proposal, self.config.device),
                           profile_overrides=self.config.profile_overrides,
                           evaluate=not real_runner, checks=real_runner and proposal.revision > 0,
                           threads_file=scratch / THREADS_FILE if share is not None else None, rungs=rungs,
                           rung_go=scratch / RUNG_GO_NAME if can_stop else None)
        limits = self.limits_for(profile, ckpt, claim.calibrated_step_s, await self.staged_data(profile), threads)
        key = self.baseline_key(proposal) if real_runner else None
        trained = self.reused_baseline(key, Path(job["workdir"]), rungs, exp) if key else None

        loop = asyncio.get_running_loop()
        progress: dict = {}
        stop = threading.Event()
        verdict: dict = {"rungs": list(rungs), "losses": {}, "stopped": None}
        judging: list[asyncio.Future] = []

        def judge(rung: dict) -> None:  # in the loop
            judging.append(asyncio.ensure_future(
                self._judge_rung(proposal, job, scratch, limits, profile, rung, stop, verdict)))

        def on_line(line: str) -> None:  # in the sandbox thread
            update = progress_of(line)
            if update is not None:
                loop.call_soon_threadsafe(progress.update, update)
            elif rungs and (rung := rung_of(line)) is not None:
                loop.call_soon_threadsafe(judge, rung)

        t0 = time.monotonic()
        if trained is not None:   # the reused weights' rungs, judged as a training child's would be
            for step in rungs:
                judge({"step": step, "autocast": trained.result.get("autocast")})
        child = asyncio.ensure_future(asyncio.to_thread(
            run_and_score, self.config.runner_module, [str(scratch / "job.json"), str(scratch / RESULT_NAME)],
            trained=trained,
            job=job, scratch=scratch, limits=limits, on_line=on_line, stop=stop,
            # the campaign's secret held-out data (issue 25; lab/training/heldout.py): never in an event or log
            eval_seed=campaign_eval_seed(self.settings.data_dir, proposal.campaign_id) if real_runner else None,
            # scored with the run's share of the cores when scoring starts, not the share it started with
            score_threads=share.threads if share is not None else None))
        sharing = asyncio.ensure_future(self._keep_share(share, scratch, child)) if share is not None else None
        if share is not None:
            self.log.info("threads shared", experiment_id=exp, threads=threads, cores=share.cores,
                          lone_threads=share.lone_threads)
        lost = False
        try:
            while True:
                done, _ = await asyncio.wait({child}, timeout=self.config.heartbeat_s)
                if done:
                    break
                if self._stopping.is_set() or not self.table.holds(exp, rev, claim.event_id):
                    lost = lost or not self.table.holds(exp, rev, claim.event_id)
                    stop.set()  # the child is killed; the run is someone else's (or resumes elsewhere)
                    continue
                try:
                    await self.publish(handlers.heartbeat_event(claim, progress, total_steps=profile.steps,
                                                                checkpoint_every=profile.checkpoint_every,
                                                                elapsed_s=time.monotonic() - t0))
                except Exception as e:  # noqa: BLE001 - the lease may lapse; the fencing check decides
                    self.log.warning("heartbeat failed", error=repr(e))
            res: SandboxResult = child.result()
            if judging:   # a rung still being scored when the run ended: its loss belongs in the result
                await asyncio.gather(*judging, return_exceptions=True)
            if key and trained is None and res.ok and isinstance(res.result, dict) and "final_loss" in res.result \
                    and not lost and len(verdict["losses"]) == len(rungs):   # trained to the end, every rung scored
                self.keep_baseline(key, res.result, Path(job["workdir"]), scratch, rungs, proposal)
        finally:
            stop.set()
            if sharing is not None:
                sharing.cancel()
                share.leave()
            if not self.config.keep_scratch:
                shutil.rmtree(scratch, ignore_errors=True)
        # a verdict that came only after the run had finished and was scored: the result stands
        finished = res.ok and isinstance(res.result, dict) and "final_loss" in res.result
        if verdict["stopped"] and not finished and not lost and not self._stopping.is_set():
            await self.finish_stopped(proposal, claim, claim_tp, verdict["stopped"], wall_s=time.monotonic() - t0)
            return
        if lost or res.kind == "cancelled":
            self.log.warning("run stopped", experiment_id=exp, revision=rev, lease_lost=lost,
                             owner=self.table.run(exp, rev).owner_id)
            return
        if verdict["losses"] and res.ok and isinstance(res.result, dict):
            res.result.setdefault("metrics", {}).update(
                {RUNG_METRIC.format(step=s): v for s, v in verdict["losses"].items()})
        await self.finish(proposal, claim, claim_tp, res, last_step=int(progress.get("step") or 0),
                          total_steps=profile.steps)

    async def finish_stopped(self, proposal: ev.ProposalCreated, claim: ev.TrainingStarted, claim_tp: TopicPartition,
                             stopped: dict, *, wall_s: float) -> None:
        """Early stopping's outcome, fenced like any other (finish)."""
        exp, rev = proposal.experiment_id, proposal.revision
        if not await self._read_up_to_end(claim_tp) or not self.table.holds(exp, rev, claim.event_id):
            self.log.warning("lease lost before publishing: stop dropped", experiment_id=exp, revision=rev)
            return
        await self.publish(handlers.stopped_event(proposal, stopped, engineer_id=self.id,
                                                  causation_id=claim.event_id, wall_s=round(wall_s, 3)))
        self.table.mark_over(exp, rev, "stopped")
        self.completed.append((exp, rev, "stopped"))
        self.log.info("run stopped early", experiment_id=exp, revision=rev, **stopped)

    async def finish(self, proposal: ev.ProposalCreated, claim: ev.TrainingStarted, claim_tp: TopicPartition,
                     res: SandboxResult, *, last_step: int, total_steps: int) -> None:
        exp, rev = proposal.experiment_id, proposal.revision
        # fencing: every claim made so far is folded in, and ours still owns the run
        if not await self._read_up_to_end(claim_tp) or not self.table.holds(exp, rev, claim.event_id):
            self.log.warning("lease lost before publishing: outcome dropped", experiment_id=exp, revision=rev,
                             owner=self.table.run(exp, rev).owner_id)
            return
        result = res.result or {}
        if res.ok and "final_loss" in result:
            event: ev.Event = handlers.results_event(proposal, result, engineer_id=self.id,
                                                     causation_id=claim.event_id)
        else:
            event = handlers.failure_event(proposal, res, engineer_id=self.id, causation_id=claim.event_id,
                                           last_step=last_step, total_steps=total_steps)
        await self.publish(event)
        outcome = "results" if isinstance(event, ev.ResultsReady) else "failed"
        self.table.mark_over(exp, rev, outcome)
        self.completed.append((exp, rev, outcome))
        self.log.info("run finished", experiment_id=exp, revision=rev, outcome=outcome,
                      kind=getattr(event, "kind", None), final_loss=getattr(event, "final_loss", None),
                      wall_s=res.wall_s)
