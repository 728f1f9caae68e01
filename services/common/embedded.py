"""Child processes of the embedded stack: the Kafka-protocol broker and the milvus-lite server.

The broker is noida-db's bundled binary started directly (its `noida-db` Python wrapper would
swallow our SIGINT and leave the broker running). Stopping sends SIGINT to the process group so
the broker writes its snapshot; topics, events and committed offsets survive a restart.
"""
from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return True


def noida_binary() -> Path:
    return Path(str(resources.files("noida_db") / "noida-db"))


def _without_secrets() -> dict[str, str]:
    """This environment minus credentials (the broker and milvus need none; the LLM services get theirs
    through an explicit env from services/cli/stack.py)."""
    from lab.confine import without_secrets
    return without_secrets(dict(os.environ))


@dataclass
class ChildProcess:
    """A long-running child in its own process group, with its log file."""
    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] | None = None
    cwd: Path | None = None
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def start(self) -> int:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=self.env if self.env is not None else _without_secrets(),
                                     cwd=self.cwd, start_new_session=True)
        log.close()
        return self.proc.pid

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None


def stop_pid(pid: int, sig: int = signal.SIGINT, timeout: float = 15.0) -> bool:
    """Signal a process group (then the process), wait, escalate to SIGKILL. True if it stopped in time."""
    for send in (lambda s: os.killpg(pid, s), lambda s: os.kill(pid, s)):
        try:
            send(sig)
            break
        except (ProcessLookupError, PermissionError):
            continue
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    for send in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            send()
        except (ProcessLookupError, PermissionError):
            pass
    time.sleep(0.2)
    _reap(pid)
    return False


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def wait_port(port: int, timeout: float, proc: subprocess.Popen | None = None, what: str = "server") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open("127.0.0.1", port):
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before listening on port {port}")
        time.sleep(0.1)
    raise TimeoutError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f}s")


METADATA_V0 = struct.pack(">hhih", 3, 0, 1, len(b"archlab-ready")) + b"archlab-ready" + struct.pack(">i", 0)


def kafka_answers(port: int, timeout: float = 2.0) -> bool:
    """True if a Kafka Metadata request (v0, all topics) on 127.0.0.1:port gets its response.

    An open port is not a serving broker: a broker that listens before it has loaded its snapshot,
    or a gateway whose upstream is not there yet, accepts the connection and then closes it, and a
    client bootstrapping at that moment fails at once (aiokafka does not retry its bootstrap)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(struct.pack(">i", len(METADATA_V0)) + METADATA_V0)
            head = _recv_exactly(s, 8)
            return head is not None and struct.unpack(">ii", head)[1] == 1   # our correlation id
    except OSError:
        return False


def _recv_exactly(s: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def wait_kafka_ready(port: int, timeout: float, proc: subprocess.Popen | None = None, what: str = "kafka",
                     log_path: Path | None = None) -> None:
    """Wait until 127.0.0.1:port answers a Metadata request; a clear error (with the log's tail) if not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if kafka_answers(port):
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before serving on port {port}"
                               + _log_tail(log_path))
        time.sleep(0.1)
    raise TimeoutError(f"{what} on 127.0.0.1:{port} did not answer a Metadata request within {timeout:.0f}s"
                       + _log_tail(log_path))


def _log_tail(log_path: Path | None, lines: int = 5) -> str:
    if log_path is None or not log_path.exists():
        return ""
    tail = log_path.read_text(errors="replace").splitlines()[-lines:]
    return f"; the end of {log_path}:\n" + "\n".join(tail)


def kafka_process(data_dir: Path, port: int) -> ChildProcess:
    return ChildProcess("kafka", [str(noida_binary()), "start", "--only", "kafka", "--host", "127.0.0.1",
                                  "--data-dir", str(data_dir), "--kafka-port", str(port)],
                        log_path=data_dir / "broker.log")


def gateway_process(data_dir: Path, port: int, broker_port: int) -> ChildProcess:
    """The long-poll gateway in front of the broker (services/common/kafka_gateway.py: why)."""
    return ChildProcess("kafka-gateway", [sys.executable, "-m", "services.common.kafka_gateway",
                                          "--listen", str(port), "--upstream", f"127.0.0.1:{broker_port}"],
                        log_path=data_dir / "gateway.log")


def milvus_process(data_dir: Path, port: int) -> ChildProcess:
    exe = Path(sys.executable).parent / "milvus-lite"
    argv = [str(exe)] if exe.exists() else [sys.executable, "-m", "milvus_lite.cli"]
    return ChildProcess("milvus", argv + ["server", "--data-dir", str(data_dir), "--host", "127.0.0.1",
                                          "--port", str(port), "--max-workers", "4"],
                        log_path=data_dir / "milvus.log")


class EmbeddedKafka:
    """Start/stop one noida-db Kafka broker on 127.0.0.1 behind its long-poll gateway.

    Clients are given the gateway's address (`bootstrap`, on `port`); the broker itself listens
    on a private port that clients never learn. Used by `archlab up` and by tests.
    """

    def __init__(self, data_dir: Path, port: int | None = None, broker_port: int | None = None):
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.broker_port = broker_port or free_port()
        while self.broker_port == self.port:   # a port just let go of can come back from free_port()
            self.broker_port = free_port()
        self.child = kafka_process(self.data_dir, self.broker_port)
        self.gateway = gateway_process(self.data_dir, self.port, self.broker_port)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> "EmbeddedKafka":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.child.start()
        wait_kafka_ready(self.broker_port, timeout, self.child.proc, "noida-db kafka broker", self.child.log_path)
        self.gateway.start()
        try:   # through the gateway: its upstream connection is part of what a client needs
            wait_kafka_ready(self.port, timeout, self.gateway.proc, "kafka gateway", self.gateway.log_path)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> bool:
        clean = True
        if self.gateway.pid is not None:
            clean &= stop_pid(self.gateway.pid, signal.SIGTERM)
        if self.child.pid is not None:
            clean &= stop_pid(self.child.pid, signal.SIGINT)
        return clean
