"""Run untrusted Python (generated layer programs) in a contained child process.

    res = run_python_module("lab.training.runner", [job, out], scratch=tmp, limits=Limits(wall_s=600))
    res.kind   # ok | timeout | memory | forbidden | exception | crashed | cancelled

Layers of containment, outermost first:
- its own process group, killed as a whole at the wall-time limit (or when the parent dies:
  PR_SET_PDEATHSIG), and no network namespace (`unshare --net`) where the kernel permits;
- rlimits: address space (or data segment on CUDA, whose driver reserves huge virtual ranges),
  file size, no core dumps;
- an environment built from an allow-list: no API keys, HOME and TMPDIR inside the scratch dir,
  CPU threads capped, Hugging Face offline, no bytecode writes;
- a bootstrap (this module's `__main__`) that imports the trusted heavy modules, then installs a
  Python audit hook before the untrusted module runs. The hook refuses processes (fork, exec,
  subprocess, system, spawn), sockets (connect, bind, send, name lookups), signals to other
  processes, ctypes, writes outside the scratch dir (+ `Limits.writable`) and reads of other
  processes' /proc entries (their environment holds the secrets). A violation is written to
  a side file and the child exits at once: `kind == "forbidden"` with what was attempted.
RLIMIT_NPROC does not bind root, so process bombs are stopped by the hook and the group kill.
An audit hook is a tripwire, not a proof (C extensions can step around it); the namespace, the
rlimits and the allow-listed environment do not rely on it.
"""
from __future__ import annotations

import json
import logging
import os
import resource
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from lab import confine, proc_cpu

_log = logging.getLogger("archlab.sandbox")
REPO_ROOT = Path(__file__).resolve().parents[1]
RESULT_NAME = "sandbox_result.json"       # the child writes its result here (env ARCHLAB_SANDBOX_RESULT)
VIOLATIONS_NAME = ".sandbox_violations.jsonl"
EXIT_FORBIDDEN = 87
KINDS = ("ok", "timeout", "memory", "forbidden", "exception", "crashed", "cancelled", "unconfined")

# Variables copied from the parent when set; everything else (API keys included) stays out.
ENV_ALLOW = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES",
             "CUDA_HOME", "TORCHDYNAMO_DISABLE", "TORCH_CUDA_ARCH_LIST",
             "ARCHLAB_SHARED_DIR")
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "RAYON_NUM_THREADS")
MEMORY_MARKERS = ("MemoryError", "std::bad_alloc", "can't allocate memory", "CUDA out of memory",
                  "OutOfMemoryError", "Cannot allocate memory", "failed to map segment")


@dataclass
class Limits:
    wall_s: float = 600.0
    mem_mb: int = 4096                # address space (torch alone maps ~650 MB); data segment on CUDA
    threads: int = 1
    file_mb: int = 4096               # largest file the child may write (checkpoints)
    writable: tuple[str, ...] = ()    # directories besides scratch the child may write (shared checkpoints)
    readable: tuple[str, ...] = ()    # directories besides the code (Python, venv, repo) the child may read
    network: bool = False
    cuda: bool | None = None          # None: detect (changes the memory rlimit to RLIMIT_DATA)
    preimport: tuple[str, ...] = ("torch",)  # trusted modules imported before the hook is armed
    compile: bool = False             # torch.compile; off (TORCHDYNAMO_DISABLE=1): Inductor would spawn compilers
    allow_exec: tuple[str, ...] = ()  # executables (absolute paths of trusted binaries, never names) subprocess
    #                                   may start: the compilers triton needs on GPU (see trusted_executables)
    absent_exec: tuple[str, ...] = ("git",)  # refused as if not installed, not reported (lm-eval runs `git describe`)
    # strict: any violation ends the child as "forbidden". Not strict: only a violation with program
    # code (exec'd as "<program ...>", see lab.program) on the stack does; a trusted
    # library's own probe (lm-eval's `pip list`, torch's env report) is refused with PermissionError.
    strict: bool = True
    extra_env: dict[str, str] = field(default_factory=dict)


@dataclass
class SandboxResult:
    ok: bool
    kind: str
    returncode: int | None
    traceback: str = ""
    stdout_tail: str = ""
    stderr_tail: str = ""
    result: dict | None = None
    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_mb: float = 0.0
    error: str = ""                   # one line: what went wrong (the violation, the limit, the signal)
    violations: list[dict] = field(default_factory=list)
    confinement: str = "bwrap"        # bwrap | unconfined (the operator's opt-in) | refused


# ====================================================================== parent side
_unshare_ok: bool | None = None


def _can_unshare_net() -> bool:
    global _unshare_ok
    if _unshare_ok is None:
        exe = shutil.which("unshare")
        try:
            _unshare_ok = bool(exe) and subprocess.run([exe, "--net", "true"], capture_output=True,
                                                       timeout=10).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            _unshare_ok = False
    return _unshare_ok


TRUSTED_BIN_DIRS = ("/usr/bin", "/usr/local/cuda/bin", "/usr/local/bin", "/bin")


def trusted_executables(names: tuple[str, ...], dirs: tuple[str, ...] = TRUSTED_BIN_DIRS) -> tuple[str, ...]:
    """Real absolute paths of the named tools, looked up in system directories only (plus the binaries
    triton ships in its package), never through the PATH a child could change. Missing tools are left out."""
    found = []
    extra: list[str] = []
    try:
        import importlib.util
        spec = importlib.util.find_spec("triton")
        if spec is not None and spec.origin:
            extra.append(str(Path(spec.origin).parent / "backends" / "nvidia" / "bin"))
    except (ImportError, ValueError):
        pass
    for name in names:
        for d in (*dirs, *extra):
            p = Path(d) / name
            if p.is_file() and os.access(p, os.X_OK):
                found.append(os.path.realpath(p))
    return tuple(dict.fromkeys(found))


def _cuda_wanted(limits: Limits) -> bool:
    if limits.cuda is not None:
        return limits.cuda
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "":
        return False
    return Path("/dev/nvidia0").exists() or Path("/dev/nvidiactl").exists()


def child_env(scratch: Path, limits: Limits) -> dict[str, str]:
    env = {k: os.environ[k] for k in ENV_ALLOW if k in os.environ}
    env.setdefault("PATH", os.defpath)
    threads = str(max(1, limits.threads))
    env.update({v: threads for v in THREAD_VARS})
    writable = [str(Path(w).resolve()) for w in limits.writable]
    env.update(
        HOME=str(scratch), TMPDIR=str(scratch / "tmp"), PYTHONPATH=str(REPO_ROOT), PYTHONDONTWRITEBYTECODE="1",
        PYTHONNOUSERSITE="1", PYTHONHASHSEED="0", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
        MALLOC_ARENA_MAX="2",  # every thread's malloc arena would reserve 64 MB of the address-space limit
        TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", HF_HUB_DISABLE_TELEMETRY="1",
        ARCHLAB_SANDBOX="1", ARCHLAB_SANDBOX_SCRATCH=str(scratch), ARCHLAB_SANDBOX_RESULT=str(scratch / RESULT_NAME),
        ARCHLAB_SANDBOX_WRITABLE=os.pathsep.join(writable), ARCHLAB_SANDBOX_THREADS=threads,
        ARCHLAB_SANDBOX_NETWORK="1" if limits.network else "0",
        ARCHLAB_SANDBOX_PREIMPORT=",".join(limits.preimport), ARCHLAB_SANDBOX_ALLOW_EXEC=",".join(limits.allow_exec),
        ARCHLAB_SANDBOX_ABSENT_EXEC=",".join(limits.absent_exec), ARCHLAB_SANDBOX_STRICT="1" if limits.strict else "0",
    )
    if not limits.compile:
        env["TORCHDYNAMO_DISABLE"] = "1"
    else:  # Inductor compiles in-process: its worker pool would be processes the hook refuses
        env["TORCHINDUCTOR_COMPILE_THREADS"] = "1"
    env.update(limits.extra_env)
    return env


def _preexec(limits: Limits, cuda: bool) -> Callable[[], None]:
    mem = limits.mem_mb * 2**20
    fsize = limits.file_mb * 2**20

    def limit() -> None:  # in the child, between fork and exec
        resource.setrlimit(resource.RLIMIT_DATA if cuda else resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        try:  # die with the parent (a killed engineer must not leave a run behind)
            import ctypes
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except Exception:  # noqa: BLE001 - not Linux/glibc: the group kill remains
            pass
    return limit


class TreeUsage:
    """CPU seconds and peak RSS of a process and its descendants, sampled from /proc.

    Under bwrap the program is not a waited-for child of the process we start (the outer bwrap), so
    wait4's rusage covers bwrap alone: a few tenths of a second, whatever the program ran. The tree is
    sampled while it runs (every 0.3 s, and once as its output closes); a process that lives less than
    0.3 s between samples is missed, which a training run is not."""

    def __init__(self, root: int):
        self.root, self.cpu, self.peak_rss_kb = root, {}, 0

    def sample(self) -> None:
        tree = proc_cpu.descendants({"program": self.root})
        # utime + stime (not cutime: a reaped child's seconds are already counted)
        for pid, seconds in proc_cpu.cpu_seconds(tree).items():
            self.cpu[pid] = max(self.cpu.get(pid, 0.0), seconds)
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        self.peak_rss_kb = max(self.peak_rss_kb, int(line.split()[1]))
            except (OSError, ValueError, IndexError):
                pass

    @property
    def cpu_s(self) -> float:
        return sum(self.cpu.values())


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_python_module(module: str, args: list[str], *, scratch: Path, limits: Limits | None = None,
                      on_line: Callable[[str], None] | None = None,
                      stop: threading.Event | None = None) -> SandboxResult:
    """Run `python -m module *args` contained (see the module docstring); blocks until it ends.

    Every stdout line is passed to `on_line` as it arrives (progress). Setting `stop` kills the
    child (kind "cancelled"). The child's result JSON (env ARCHLAB_SANDBOX_RESULT, i.e.
    scratch/sandbox_result.json) comes back parsed as `result`.
    """
    limits = limits or Limits()
    scratch = Path(scratch).resolve()
    (scratch / "tmp").mkdir(parents=True, exist_ok=True)
    for name in (RESULT_NAME, VIOLATIONS_NAME):
        (scratch / name).unlink(missing_ok=True)
    cuda = _cuda_wanted(limits)
    argv = [sys.executable, "-B", "-s", "-m", "lab.sandbox", module, *args]
    confined, why_not = confine.available()
    if confined:
        argv = confine.confine_argv(argv, scratch=scratch, writable=limits.writable, readable=limits.readable,
                                    network=limits.network, cuda=cuda)
    elif not confine.unconfined_allowed():
        _log.error("sandbox: refusing to run untrusted code without OS confinement: %s (set %s=1 to accept the "
                   "risk)", why_not, confine.UNCONFINED_VAR)
        return SandboxResult(False, "unconfined", None, confinement="refused",
                             error=f"no OS sandbox: {why_not}; refusing to run untrusted code (the operator may "
                                   f"opt in with {confine.UNCONFINED_VAR}=1)")
    else:
        _log.warning("sandbox: running untrusted code WITHOUT OS confinement (%s=1): %s", confine.UNCONFINED_VAR,
                     why_not)
        if not limits.network and _can_unshare_net():
            argv = [shutil.which("unshare"), "--net", "--", *argv]

    t0 = time.monotonic()
    try:
        proc = subprocess.Popen(argv, cwd=scratch, env=child_env(scratch, limits), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                                preexec_fn=_preexec(limits, cuda))
    except OSError as e:
        return SandboxResult(False, "crashed", None, error=f"could not start the sandbox child: {e}")

    out_tail: deque[str] = deque(maxlen=200)
    err_tail: deque[str] = deque(maxlen=400)
    reason: list[str] = []  # why the parent killed it: timeout | cancelled

    tree = TreeUsage(proc.pid)

    def watchdog() -> None:
        ticks = 0
        while proc.returncode is None:
            if ticks % 3 == 0:   # every 0.3 s
                tree.sample()
            ticks += 1
            if time.monotonic() - t0 > limits.wall_s:
                reason.append("timeout")
            elif stop is not None and stop.is_set():
                reason.append("cancelled")
            if reason:
                _kill_group(proc.pid)
                return
            time.sleep(0.1)

    threading.Thread(target=watchdog, daemon=True).start()
    _pump(proc, out_tail, err_tail, on_line)
    tree.sample()   # its output closed: it is ending, its last CPU seconds are still readable
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if confined:
        proc.returncode = confine.exit_status(proc.returncode)
    _kill_group(proc.pid)  # anything it left behind in its group
    wall = time.monotonic() - t0
    res = _classify(proc.returncode, reason[0] if reason else None, scratch, limits, wall, usage,
                    "".join(out_tail), "".join(err_tail))
    res.cpu_s = round(max(res.cpu_s, tree.cpu_s), 3)
    res.peak_rss_mb = round(max(res.peak_rss_mb, tree.peak_rss_kb / 1024), 1)
    res.confinement = "bwrap" if confined else "unconfined"
    return res


def _pump(proc: subprocess.Popen, out_tail: deque, err_tail: deque, on_line) -> None:
    """Read stdout/stderr until both close; stdout lines go to on_line."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, "out")
    sel.register(proc.stderr, selectors.EVENT_READ, "err")
    partial = {"out": b"", "err": b""}
    while sel.get_map():
        for key, _ in sel.select(timeout=0.5):
            chunk = os.read(key.fileobj.fileno(), 65536)
            if not chunk:
                sel.unregister(key.fileobj)
                key.fileobj.close()
                lines = [partial[key.data]] if partial[key.data] else []
            else:
                *lines, partial[key.data] = (partial[key.data] + chunk).split(b"\n")
                lines = [line + b"\n" for line in lines]
            for raw in lines:
                text = raw.decode(errors="replace")
                if key.data == "out":
                    out_tail.append(text)
                    if on_line is not None:
                        try:
                            on_line(text.rstrip("\n"))
                        except Exception:  # noqa: BLE001 - a progress callback must not kill the run
                            pass
                else:
                    err_tail.append(text)


STDERR_LINES = 5   # of a child that died without a traceback, in its error (the user's first clue)


def _classify(rc: int, killed_for: str | None, scratch: Path, limits: Limits, wall: float, usage,
              out: str, err: str) -> SandboxResult:
    result = _read_json(scratch / RESULT_NAME)
    violations = _read_violations(scratch / VIOLATIONS_NAME)
    tb = _traceback_of(err, result)
    common = dict(returncode=rc, traceback=tb, stdout_tail=out[-8000:], stderr_tail=err[-8000:], result=result,
                  wall_s=round(wall, 3), cpu_s=round(usage.ru_utime + usage.ru_stime, 3),
                  peak_rss_mb=round(usage.ru_maxrss / 1024, 1), violations=violations)
    if violations:
        v = violations[0]
        return SandboxResult(False, "forbidden", error=f"forbidden: {v['what']} ({v['detail']})", **common)
    if killed_for == "timeout":
        return SandboxResult(False, "timeout", error=f"wall-time limit of {limits.wall_s:g} s exceeded", **common)
    if killed_for == "cancelled":
        return SandboxResult(False, "cancelled", error="stopped by the parent", **common)
    if rc == 0:
        return SandboxResult(True, "ok", **common)
    text = err[-20000:] + json.dumps(result or {})[-4000:]
    if any(m in text for m in MEMORY_MARKERS) or rc == -signal.SIGKILL:
        # SIGKILL we did not send: the kernel's OOM killer
        return SandboxResult(False, "memory", error=f"memory limit of {limits.mem_mb} MB exceeded", **common)
    if rc == -signal.SIGXFSZ:
        return SandboxResult(False, "forbidden", error=f"file size limit of {limits.file_mb} MB exceeded", **common)
    if rc < 0:
        name = signal.Signals(-rc).name if -rc in signal.Signals._value2member_map_ else str(-rc)
        return SandboxResult(False, "crashed", error=f"killed by signal {name}", **common)
    if tb:
        return SandboxResult(False, "exception", error=tb.strip().splitlines()[-1][:500], **common)
    if isinstance(result, dict) and isinstance(result.get("error"), dict):  # reported by the module itself
        e = result["error"]
        return SandboxResult(False, "exception", error=f"{e.get('type', 'Error')}: {e.get('message', '')}"[:500],
                             **common)
    last = "\n".join(err.strip().splitlines()[-STDERR_LINES:])   # what the child (or bwrap itself) said last
    return SandboxResult(False, "crashed", error=f"exit status {rc} without a traceback"
                         + (f"; its last output:\n{last}" if last else ""), **common)


def _traceback_of(err: str, result: dict | None) -> str:
    if isinstance(result, dict) and isinstance(result.get("error"), dict) and result["error"].get("traceback"):
        return result["error"]["traceback"]
    i = err.rfind("Traceback (most recent call last)")
    return err[i:][-20000:] if i >= 0 else ""


CHILD_FILE_LIMIT = 64 << 20   # bytes of a result or violations file the parent reads back


def open_child_file(path: Path, limit: int):
    """A file a sandboxed child wrote in its scratch, opened (binary) by the unconfined parent: never through a link
    the child planted under that name (it would read the lab's own files out, its secrets included, as the child's
    output) nor a FIFO (it would block the reader). OSError: absent or a link; ValueError: not a regular file of at
    most `limit` bytes."""
    f = os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK), "rb")
    st = os.fstat(f.fileno())
    if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
        f.close()
        raise ValueError(f"{Path(path).name} is not a regular file of at most {limit} bytes")
    return f


def read_child_file(path: Path, limit: int = CHILD_FILE_LIMIT) -> str | None:
    """`open_child_file`'s text, or None when it refuses the file."""
    try:
        with open_child_file(path, limit) as f:
            return f.read(limit).decode("utf-8", errors="replace")
    except (OSError, ValueError):
        return None


def write_child_file(directory: Path, name: str, text: str) -> None:
    """(Re)write `directory/name` for a sandboxed child whose scratch `directory` is, atomically and without
    following a link the child planted there: a fresh temporary (O_EXCL: never an existing name) renamed over
    `name` (a rename replaces a link, never its target). Writing through a planted `name.tmp` link would let a
    child overwrite any file the lab can write."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, Path(directory) / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(read_child_file(path) or "")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _read_violations(path: Path) -> list[dict]:
    text = read_child_file(path)
    if text is None:
        return []
    lines = text.splitlines()
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


# ====================================================================== child side (the bootstrap)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_PROCESS_EVENTS = {"os.fork", "os.forkpty", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
                   "subprocess.Popen", "os.startfile", "pty.spawn"}
_NETWORK_EVENTS = {"socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo",
                   "socket.gethostbyname", "socket.gethostbyaddr", "socket.getnameinfo"}
_CTYPES_EVENTS = {"ctypes.dlopen", "ctypes.dlsym", "ctypes.dlsym/handle", "ctypes.call_function",
                  "ctypes.string_at", "ctypes.wstring_at", "ctypes.cdata"}
# the path arguments each event writes to (both ends of a rename: moving a file out is a write outside)
_PATH_EVENTS = {"os.remove": (0,), "os.rename": (0, 1), "os.replace": (0, 1), "os.rmdir": (0,), "os.mkdir": (0,),
                "os.symlink": (1,), "os.link": (1,), "os.chmod": (0,), "os.chown": (0,), "os.truncate": (0,),
                "os.utime": (0,), "shutil.copyfile": (1,), "shutil.move": (0, 1), "os.mkfifo": (0,), "os.mknod": (0,)}


def _loopback(args: tuple) -> bool:
    address = args[1] if len(args) > 1 else None
    host = address[0] if isinstance(address, tuple) and address else None
    return isinstance(host, str) and (host.startswith("127.") or host in ("::1", "localhost"))


PROGRAM_FILENAME_PREFIX = "<program"  # how lab.program names exec'd generated code


def _program_on_stack() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_filename.startswith(PROGRAM_FILENAME_PREFIX):
            return True
        frame = frame.f_back
    return False


class _Policy:
    def __init__(self, scratch: str, writable: list[str], network: bool, report_fd: int,
                 allow_exec: tuple[str, ...] = (), absent_exec: tuple[str, ...] = (), strict: bool = True):
        self.roots = [os.path.realpath(p) for p in [scratch, *writable] if p] + ["/dev/null"]
        self.network, self.report_fd = network, report_fd
        self.allow_exec = {os.path.realpath(p) for p in allow_exec if os.path.isabs(p)}  # absolute paths only
        self.absent_exec, self.strict = set(absent_exec), strict
        self.pid = os.getpid()
        self.busy = False

    def writable(self, path) -> bool:
        if isinstance(path, int):  # an already-open descriptor
            return True
        p = os.path.realpath(os.fsdecode(path))
        return any(p == r or p.startswith(r.rstrip("/") + "/") for r in self.roots)

    def proc_of_other(self, path) -> bool:
        if isinstance(path, int):
            return False
        p = os.path.realpath(os.fsdecode(path))
        if not p.startswith("/proc/"):
            return False
        head = p.split("/")[2]
        return head.isdigit() and int(head) != self.pid

    def executable(self, args: tuple) -> str:
        """The real path a subprocess.Popen would run (a bare name through the PATH it will search)."""
        exe = os.fsdecode(args[0]) if args and args[0] else ""
        if exe and os.sep not in exe:
            env = args[3] if len(args) > 3 and isinstance(args[3], dict) else os.environ
            exe = shutil.which(exe, path=env.get("PATH", os.defpath)) or exe
        return os.path.realpath(exe) if os.sep in exe else exe

    def violation(self, event: str, args: tuple) -> str | None:
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None, None))[:3]
            if self.proc_of_other(path):
                return "read another process's /proc entry"
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & _WRITE_FLAGS)
            if writing and not self.writable(path):
                return "write outside the scratch directory"
            return None
        if event in _PATH_EVENTS:
            for i in _PATH_EVENTS[event]:
                path = args[i] if len(args) > i else None
                if path is not None and not self.writable(path):
                    return f"{event} outside the scratch directory"
            return None
        if event in _PROCESS_EVENTS:
            exe = self.executable(args) if event == "subprocess.Popen" else ""
            if exe in self.allow_exec and not self.writable(exe):
                return None
            if os.path.basename(exe) in self.absent_exec:
                raise FileNotFoundError(2, "not available in the sandbox", exe)
            return "start a process"
        if not self.network and event in _NETWORK_EVENTS:
            address = args[1] if len(args) > 1 else None
            if event == "socket.connect" and isinstance(address, (str, bytes)) and address \
                    and self.writable(address):
                return None  # a Unix socket inside scratch: the trusted scorer's channel (scoring.py)
            if event == "socket.bind" and _loopback(args):
                return None  # urllib3 probes IPv6 by binding ::1 at import; a loopback socket reaches nothing
            return "use the network"
        if event in ("os.kill", "os.killpg", "signal.pthread_kill"):
            target = args[0] if args else None
            return None if target in (self.pid, 0) else "signal another process"
        if event in _CTYPES_EVENTS:
            return "use ctypes"
        return None

    def __call__(self, event: str, args: tuple) -> None:
        if self.busy:
            return
        try:
            what = self.violation(event, args)
        except FileNotFoundError:
            raise
        except Exception:  # noqa: BLE001 - a malformed argument is no violation of ours
            return
        if what is None:
            return
        if not self.strict and not _program_on_stack():
            sys.stderr.write(f"sandbox: refused to a library: {what}: {event} {repr(args)[:200]}\n")
            raise PermissionError(f"sandbox: {what} is not allowed")
        self.busy = True
        import traceback
        record = {"what": what, "event": event, "detail": repr(args)[:300],
                  "stack": "".join(traceback.format_stack(limit=12)[:-1])[-3000:]}
        try:
            os.write(self.report_fd, (json.dumps(record) + "\n").encode())
            sys.stderr.write(f"sandbox: forbidden: {what}: {event} {repr(args)[:200]}\n")
            sys.stderr.flush()
            sys.stdout.flush()
        finally:
            os._exit(EXIT_FORBIDDEN)  # no except clause of the program can swallow this


def _child_main(argv: list[str]) -> None:
    """`python -m lab.sandbox MODULE ARGS...`: arm the hook, then run MODULE as __main__."""
    import runpy

    module, args = argv[0], argv[1:]
    scratch = os.environ["ARCHLAB_SANDBOX_SCRATCH"]
    threads = int(os.environ.get("ARCHLAB_SANDBOX_THREADS", "1"))
    for name in filter(None, os.environ.get("ARCHLAB_SANDBOX_PREIMPORT", "").split(",")):
        try:
            __import__(name)
        except ImportError:
            pass
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    writable = [p for p in os.environ.get("ARCHLAB_SANDBOX_WRITABLE", "").split(os.pathsep) if p]
    report_fd = os.open(os.path.join(scratch, VIOLATIONS_NAME), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    names = lambda var: tuple(filter(None, os.environ.get(var, "").split(",")))  # noqa: E731
    sys.addaudithook(_Policy(scratch, writable, os.environ.get("ARCHLAB_SANDBOX_NETWORK") == "1", report_fd,
                             names("ARCHLAB_SANDBOX_ALLOW_EXEC"), names("ARCHLAB_SANDBOX_ABSENT_EXEC"),
                             os.environ.get("ARCHLAB_SANDBOX_STRICT", "1") == "1"))
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    _child_main(sys.argv[1:])
