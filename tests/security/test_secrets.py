"""Least privilege for the LLM key (issue 13, point 3) with real processes: the `archlab` CLI moves an
exported key to <data_dir>/secrets/llm_api_key and execs itself without it; no process of the stack holds
the key in its environment, only the LLM services get the key file's path; a sandboxed child cannot open it.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.cli import secrets
from lab import confine
from services.common.embedded import pid_alive
from tests.support.sandbox import require_bwrap
from tests.support.cli_env import clean_env

FAKE = "sk-archlab-fake-key-5150"
REPO = Path(__file__).resolve().parents[2]


def cli_env(data_dir: Path) -> dict[str, str]:
    env = clean_env(("ARCHLAB_", "OPENAI"))
    env.update(ARCHLAB_DATA_DIR=str(data_dir), ARCHLAB_LLM_API_KEY=FAKE, OPENAI_API_KEY=FAKE, COLUMNS="200")
    return env


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


@pytest.mark.parametrize("entry", ["module", "script"])
def test_the_cli_execs_itself_without_the_key_and_keeps_arguments_and_exit_code(tmp_path, entry):
    """`archlab restart` with no stack: the command after the exec still sees its arguments and exits 2."""
    argv = [sys.executable, "-m", "services.cli.main"] if entry == "module" else [str(Path(sys.executable).parent / "archlab")]
    if not Path(argv[0]).exists():
        pytest.skip("no archlab console script in this environment")
    lab = tmp_path / "lab"
    out = subprocess.run([*argv, "restart", "archive", "--data-dir", str(lab)], env=cli_env(tmp_path / "other"),
                         capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.returncode == 2 and "no stack running" in out.stdout, out.stdout + out.stderr
    key = secrets.key_file(lab)  # the --data-dir of the command line, kept through the exec
    assert key.read_text() == FAKE and FAKE not in out.stdout + out.stderr


def test_a_sandboxed_child_cannot_open_the_key_file(tmp_path, monkeypatch):
    require_bwrap()
    lab = tmp_path / "lab"
    key = secrets.write_key_file(lab, FAKE)
    stray = tmp_path / "elsewhere" / "key"   # an operator's key file outside the data dir, inside a bind
    stray.parent.mkdir()
    stray.write_text(FAKE)
    monkeypatch.setenv("ARCHLAB_DATA_DIR", str(lab))
    monkeypatch.setenv(secrets.FILE_VAR, str(stray))
    code = ("import sys\nfor p in sys.argv[1:]:\n    try:\n        print(p, repr(open(p).read()))\n"
            "    except OSError as e:\n        print(p, type(e).__name__)\n")
    argv = confine.confine_argv([sys.executable, "-c", code, str(key), str(stray)], scratch=tmp_path / "scratch",
                                readable=[str(tmp_path)])   # the data dir's parent is even bound read-only
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert FAKE not in out.stdout, out.stdout
    assert f"{key} FileNotFoundError" in out.stdout   # the data dir is an empty tmpfs
    assert f"{stray} ''" in out.stdout or f"{stray} PermissionError" in out.stdout  # /dev/null bound over it


@pytest.mark.integration
def test_no_process_of_the_stack_holds_the_key(tmp_path):
    lab = tmp_path / "lab"
    env = cli_env(lab)
    archlab = [sys.executable, "-m", "services.cli.main"]
    cli = subprocess.Popen([*archlab, "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           cwd=REPO)
    seen = None   # the CLI's own environment once it has exec'd itself (same pid), while it starts the stack
    deadline = time.monotonic() + 60
    while cli.poll() is None and time.monotonic() < deadline:
        try:
            e = environ(cli.pid)
        except (OSError, ValueError):
            break
        if secrets.FILE_VAR in e:
            seen = e
            break
        time.sleep(0.05)
    output = cli.communicate(timeout=240)[0]
    try:
        assert cli.returncode == 0, output
        assert seen is not None, "the CLI was never seen with its key file"
        assert FAKE not in "\0".join(f"{k}={v}" for k, v in seen.items()) and "ARCHLAB_LLM_API_KEY" not in seen
        procs = json.loads((lab / "stack.json").read_text())["processes"]
        key = secrets.key_file(lab)
        assert key.read_text() == FAKE
        for name, pid in procs.items():
            assert pid_alive(pid), name
            assert FAKE.encode() not in Path(f"/proc/{pid}/environ").read_bytes(), name
            e = environ(pid)
            assert not {"ARCHLAB_LLM_API_KEY", "OPENAI_API_KEY"} & set(e), name
            if name in confine.LLM_SERVICES:
                assert e.get(secrets.FILE_VAR) == str(key), name
            else:   # the engineer (it runs generated code), archive, cognition, broker, milvus
                assert secrets.FILE_VAR not in e, name
        assert "engineer-1" in procs and set(confine.LLM_SERVICES) <= set(procs)
        assert FAKE not in output
    finally:
        down = subprocess.run([*archlab, "down"], env=env, capture_output=True, text=True, timeout=240, cwd=REPO)
    assert down.returncode == 0, down.stdout + down.stderr
