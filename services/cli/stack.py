"""The embedded stack: broker, vector store and one OS process per service, under one data dir.

`archlab up` starts what is not running and records it in `<data_dir>/stack.json`;
`archlab down` stops services first (SIGTERM: they finish the message in hand), then the
vector store, then the broker (SIGINT: it writes its snapshot). Nothing is killed by name:
every process is stopped through the pid and process group recorded when it was started.
"""
from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lab import confine
from services.common import endpoints
from services.common.embedded import (ChildProcess, EmbeddedKafka, free_port, milvus_process, pid_alive, port_open,
                                      stop_pid, wait_port)
from services.common.settings import Settings

# Service processes of the embedded stack, in start order: (process name, module, extra args).
SERVICES: list[tuple[str, str, list[str]]] = [
    ("archive", "services.archive.main", []),
    ("cognition", "services.cognition.main", []),
    ("researcher", "services.researcher.main", []),
    ("judge", "services.judge.main", []),
    ("analyst", "services.analyst.main", []),
    ("debugger", "services.debugger.main", []),
    ("engineer", "services.engineer.main", []),
    ("ui", "services.ui.main", []),   # read-only web UI (docs/ui.md); its address goes to <data_dir>/ui.json
]


@dataclass
class StackState:
    data_dir: Path
    kafka: str
    milvus: str | None
    processes: dict[str, int]           # name -> pid
    embedded_kafka: bool
    started_at: float

    def dump(self, path: Path) -> None:
        path.write_text(json.dumps({"data_dir": str(self.data_dir), "kafka": self.kafka, "milvus": self.milvus,
                                    "processes": self.processes, "embedded_kafka": self.embedded_kafka,
                                    "started_at": self.started_at}, indent=2))

    @classmethod
    def load(cls, path: Path) -> "StackState | None":
        if not path.exists():
            return None
        d = json.loads(path.read_text())
        return cls(Path(d["data_dir"]), d["kafka"], d.get("milvus"), d.get("processes", {}),
                   d.get("embedded_kafka", True), d.get("started_at", 0.0))


def absolute(settings: Settings) -> Settings:
    return settings.model_copy(update={"data_dir": Path(settings.data_dir).resolve()})


def service_env(settings: Settings, state: StackState) -> dict[str, str]:
    env = dict(os.environ)
    env["ARCHLAB_DATA_DIR"] = str(settings.data_dir)
    env["ARCHLAB_KAFKA_BOOTSTRAP"] = state.kafka
    if state.milvus:
        env["ARCHLAB_MILVUS_URI"] = state.milvus
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("HF_DATASETS_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def running_state(settings: Settings) -> StackState | None:
    """The recorded stack, if its broker (or any of its processes) is still alive."""
    state = StackState.load(endpoints.stack_file(settings))
    if state is None:
        return None
    alive = any(pid_alive(pid) for pid in state.processes.values())
    return state if alive else None


INFRA = ("kafka", "kafka-gateway", "milvus")   # not services: stopped last, by `down`
READY_MARKERS = (b'"service started"', b'"engineer started"')


def _wait_started(log_path: Path, proc: ChildProcess, timeout: float, offset: int = 0) -> None:
    """A service is up when it logs "service started" (after joining its consumer groups)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log_path.exists() and any(m in log_path.read_bytes()[offset:] for m in READY_MARKERS):
            return
        if proc.proc is not None and proc.proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:] if log_path.exists() else ""
            raise RuntimeError(f"{proc.name} exited with code {proc.proc.returncode} during start:\n{tail}")
        time.sleep(0.2)
    raise TimeoutError(f"{proc.name} did not report 'service started' within {timeout:.0f}s (log: {log_path})")


def _spec(pname: str) -> tuple[str, list[str]]:
    """Module and arguments of a service process name ("engineer-2" is an engineer)."""
    base = pname.rsplit("-", 1)[0] if pname.startswith("engineer-") else pname
    for name, module, args in SERVICES:
        if name == base:
            return module, args
    raise KeyError(f"unknown service process {pname!r}; known: {[n for n, _, _ in SERVICES]}")


def _launch(settings: Settings, state: StackState, pname: str) -> tuple[ChildProcess, Path, int]:
    """Start one service process and record it; returns it, its log and the log offset at start."""
    module, args = _spec(pname)
    if importlib.util.find_spec(module) is None:
        raise RuntimeError(f"service module {module} not found")
    env = service_env(settings, state)
    env["ARCHLAB_INSTANCE_ID"] = pname   # static group membership: a restart takes over at once
    if pname.startswith("engineer-"):
        env["ARCHLAB_ENGINEER_ID"] = pname
    if pname.rsplit("-", 1)[0] not in confine.LLM_SERVICES and pname not in confine.LLM_SERVICES:
        # least privilege: the engineer runs generated code (docs/security.md); neither the key nor the path of
        # its file (ARCHLAB_LLM_API_KEY_FILE, set by services/cli/secrets.py) reaches a non-LLM service
        env = confine.without_secrets(env)
    log_path = Path(settings.data_dir) / "logs" / f"{pname}.log"
    offset = log_path.stat().st_size if log_path.exists() else 0
    child = ChildProcess(pname, [sys.executable, "-m", module, *args], log_path, env=env)
    child.start()
    state.processes[pname] = child.pid
    state.dump(endpoints.stack_file(settings))
    return child, log_path, offset


def restart(settings: Settings, pname: str, *, timeout: float = 120.0, progress=print) -> int:
    """Stop (if alive) and start again one process of the running stack; returns its new pid.

    The broker comes back on the same port with the same data: its snapshot keeps topics,
    events and committed offsets, and clients reconnect to the address they know.
    """
    settings = absolute(settings)
    state = StackState.load(endpoints.stack_file(settings))
    if state is None:
        raise RuntimeError("no stack running (start one with `archlab up`)")
    if pname == "kafka-gateway":
        pname = "kafka"   # the broker and its gateway start and stop together
    old = state.processes.get(pname)
    if pname == "kafka":
        gateway = state.processes.get("kafka-gateway")
        if gateway and pid_alive(gateway):
            stop_pid(gateway, signal.SIGTERM, timeout=30)
    if old and pid_alive(old):
        stop_pid(old, signal.SIGINT if pname in ("kafka", "milvus") else signal.SIGTERM, timeout=30)
    if pname == "kafka":
        port = int(state.kafka.rsplit(":", 1)[1])
        deadline = time.monotonic() + 30
        while port_open("127.0.0.1", port) and time.monotonic() < deadline:  # the old gateway lets go of it
            time.sleep(0.2)
        broker = EmbeddedKafka(Path(settings.data_dir) / "broker", port=port).start()
        state.processes["kafka"] = broker.child.pid
        state.processes["kafka-gateway"] = broker.gateway.pid
        state.dump(endpoints.stack_file(settings))
        progress(f"restarted kafka (pid {broker.child.pid}) behind its gateway at {state.kafka}")
        return broker.child.pid
    if pname == "milvus":   # same port and data: the services' clients reconnect and reload (vectors.py)
        if not state.milvus or "milvus" not in state.processes:
            raise ValueError("this stack uses an external Milvus (ARCHLAB_MILVUS_URI): restart it there")
        port = int(state.milvus.rsplit(":", 1)[1])
        milvus = milvus_process(Path(settings.data_dir) / "milvus", port)
        milvus.start()
        state.processes["milvus"] = milvus.pid
        state.dump(endpoints.stack_file(settings))
        wait_port(port, 60, milvus.proc, "milvus-lite server")
        progress(f"restarted milvus (pid {milvus.pid}) at {state.milvus}")
        return milvus.pid
    child, log_path, offset = _launch(settings, state, pname)
    _wait_started(log_path, child, timeout, offset)
    progress(f"restarted {pname} (pid {child.pid})")
    return child.pid


def up(settings: Settings, *, engineers: int = 1, services: list[str] | None = None, progress=print,
       timeout: float = 120.0) -> StackState:
    settings = absolute(settings)
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    existing = running_state(settings)
    if existing is not None:
        progress(f"stack already running (broker {existing.kafka}); `archlab down` first to restart it")
        return existing
    state = StackState(data_dir, "", None, {}, settings.embedded_broker, time.time())
    stack_path = endpoints.stack_file(settings)
    try:
        if settings.kafka_bootstrap:
            state.kafka = settings.kafka_bootstrap
            progress(f"using existing Kafka at {state.kafka}")
        else:
            broker = EmbeddedKafka(data_dir / "broker").start()
            state.kafka = broker.bootstrap
            state.processes["kafka"] = broker.child.pid
            state.processes["kafka-gateway"] = broker.gateway.pid
            progress(f"started embedded Kafka broker (noida-db) behind its long-poll gateway at {state.kafka}")
        state.dump(stack_path)
        from services.common.bus import ensure_topics
        created = asyncio.run(ensure_topics(state.kafka, settings.partitions, settings.replication_factor))
        progress(f"topics ready ({len(created)} created, {settings.partitions} partitions each)")
        if settings.milvus_uri:
            state.milvus = settings.milvus_uri
        else:
            port = free_port()
            milvus = milvus_process(data_dir / "milvus", port)
            (data_dir / "milvus").mkdir(exist_ok=True)
            milvus.start()
            state.processes["milvus"] = milvus.pid
            state.dump(stack_path)
            wait_port(port, 60, milvus.proc, "milvus-lite server")
            state.milvus = f"http://127.0.0.1:{port}"
            progress(f"started milvus-lite server at {state.milvus}")
        state.dump(stack_path)
        wanted = [name for name, _, _ in SERVICES] if services is None else services
        started = []
        for name, _, _ in SERVICES:
            if name not in wanted:
                continue
            for i in range(engineers if name == "engineer" else 1):
                pname = f"{name}-{i + 1}" if name == "engineer" else name
                started.append(_launch(settings, state, pname))
        for child, log_path, offset in started:
            _wait_started(log_path, child, timeout, offset)
            progress(f"started {child.name} (pid {child.pid})")
        return state
    except BaseException:
        progress("start failed; stopping what was started")
        down(settings, progress=lambda *_: None)
        raise


def down(settings: Settings, *, progress=print) -> bool:
    """Stop everything recorded in stack.json. True if every process stopped cleanly."""
    settings = absolute(settings)
    path = endpoints.stack_file(settings)
    state = StackState.load(path)
    if state is None:
        progress("no stack recorded: nothing to stop")
        return True
    clean = True
    services = [(n, p) for n, p in state.processes.items() if n not in INFRA]
    for name, pid in services:  # SIGTERM to all first, then wait: they stop in parallel
        if pid_alive(pid):
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    for name, pid in services:
        ok = stop_pid(pid, signal.SIGTERM, timeout=30)
        clean &= ok
        progress(f"stopped {name}" + ("" if ok else " (had to SIGKILL)"))
    # milvus-lite: SIGTERM; its collections are projections of the log (novelty memory, cognitions),
    # so a forced stop under load loses nothing that a replay cannot rebuild and does not fail `down`.
    # The broker: SIGINT, so that it writes its snapshot; a forced stop there is an error.
    for name, sig, must_be_clean in (("milvus", signal.SIGTERM, False), ("kafka-gateway", signal.SIGTERM, False),
                                     ("kafka", signal.SIGINT, True)):
        pid = state.processes.get(name)
        if pid:
            ok = stop_pid(pid, sig, timeout=30)
            clean &= ok or not must_be_clean
            progress(f"stopped {name}" + ("" if ok else " (had to SIGKILL)"))
    path.unlink(missing_ok=True)
    return clean


async def group_lag(bootstrap: str) -> dict[str, int]:
    """Consumer-group lag summed over partitions: end offset minus committed offset."""
    from aiokafka.admin import AIOKafkaAdminClient

    from schemas.topics import all_topics
    from services.common.log_reader import end_offsets

    ends = await end_offsets(bootstrap, all_topics())
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        groups = [g[0] if isinstance(g, tuple) else g for g in await admin.list_consumer_groups()]
        lag = {}
        for group in sorted(groups):
            offsets = await admin.list_consumer_group_offsets(group)
            lag[group] = sum(max(0, ends.get((tp.topic, tp.partition), 0) - meta.offset)
                             for tp, meta in offsets.items() if meta.offset >= 0)
        return lag
    finally:
        await admin.close()
