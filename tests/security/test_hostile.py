"""Hostile programs against the real sandbox (bubblewrap), the real runner and the trusted scorer (issue 13).

Each class of attack ends as a rejection (static checks) or a failure of the right kind, or, where the
OS layer makes the act harmless (a private /proc), with nothing gained: nothing is written outside
scratch, and the parent's secret appears in no result, log tail or file of the run.

bwrap missing: the suite fails when CI is set (CI installs bubblewrap through .ci/run) and skips with
the reason on a developer machine without it.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from lab import confine
from lab.sandbox import Limits, run_python_module
from services.engineer.handlers import failure_kind
from lab.training.sandboxed import run_training_sandboxed
from lab.checks import static_check
from tests.security import programs
from tests.support.sandbox import require_bwrap

SECRET = "sk-archlab-test-secret-4242"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def real_sandbox(monkeypatch):
    require_bwrap()
    monkeypatch.delenv(confine.UNCONFINED_VAR, raising=False)
    monkeypatch.setenv("ARCHLAB_LLM_API_KEY", SECRET)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)


def assert_no_secret(res, *paths: Path) -> None:
    text = json.dumps(asdict(res), default=str)
    assert SECRET not in text
    for p in paths:
        for f in (p.rglob("*") if p.is_dir() else [p]):
            if f.is_file() and not f.is_symlink():
                assert SECRET.encode() not in f.read_bytes(), f


def train(code: str, scratch: Path, steps: int | None = None):
    return run_training_sandboxed(code, "cpu-micro", 0, scratch=scratch,
                                  profile_overrides={"steps": steps} if steps else None)


# ------------------------------------------------------------------ forged results
def test_a_forged_cross_entropy_is_scored_at_its_true_loss(tmp_path):
    """The issue's forgery: F.cross_entropy scaled by 0.75 from the first forward. The run's own claim is
    forged; the scored loss is the held-out loss computed by the engineer from the program's logits."""
    res = train(programs.FORGED_LOSS, tmp_path / "run")
    assert res.ok, (res.kind, res.error, res.stderr_tail[-2000:])
    r = res.result
    claimed, scored = r["metrics"]["train/claimed_final_loss"], r["final_loss"]
    assert r["scored_by"] == "trusted" and scored == r["metrics"]["heldout/loss"]
    assert claimed < 0.8 * scored  # the forgery shows in the claim ...
    assert abs(scored - claimed / 0.75) < 0.15 * scored  # ... and the score is the true loss
    assert 0.0 <= r["benchmark"] <= 1.0


def test_a_planted_result_file_does_not_become_the_result(tmp_path):
    """The program writes the sandbox's result file itself with a perfect score and exits cleanly before
    any training: no weights, so nothing to score -- an eval_error, never the planted numbers."""
    code = programs.deltanet_with("import torch as _t", """
import json as _json
with open(_t.os.environ["ARCHLAB_SANDBOX_RESULT"], "w") as _f:
    _json.dump({"final_loss": 0.01, "benchmark": 1.0, "metrics": {}, "loss_curve": [[1, 0.01]]}, _f)
_t.os._exit(0)
""")
    res = train(code, tmp_path / "run", steps=20)
    assert not res.ok
    kind, error, _ = failure_kind(res, last_step=20, total_steps=20)
    assert kind == "eval_error" and "weights" in error, (kind, error)


def test_a_result_file_linked_to_the_labs_own_file_is_not_read_out(tmp_path):
    """The child leaves its result file as a link to a file of the lab's (here a JSON dict standing for a
    secret): the unconfined parent must not read it through the link as the child's result."""
    lab_file = tmp_path / "lab-secret.json"
    lab_file.write_text(json.dumps({"seed": SECRET}))
    res = run_python_module("tests.engineer.hostile", ["link_result", str(lab_file)], scratch=tmp_path / "s",
                            limits=Limits(wall_s=60))
    assert res.result is None, res.result
    assert SECRET not in json.dumps(asdict(res))


def test_a_result_file_left_as_a_fifo_does_not_hang_the_parent(tmp_path):
    import threading

    box: dict = {}
    reader = threading.Thread(target=lambda: box.update(res=run_python_module(
        "tests.engineer.hostile", ["fifo_result"], scratch=tmp_path / "s", limits=Limits(wall_s=60))), daemon=True)
    reader.start()
    reader.join(timeout=90)
    assert not reader.is_alive(), "the parent blocked opening the child's FIFO"
    assert box["res"].result is None


def test_the_threads_file_is_never_written_through_a_link_the_child_planted(tmp_path):
    """The engineer rewrites `threads` in the child's scratch while it trains. Links planted under the names it
    writes (the final name and the old fixed temporary's) must not carry the write to a file of the lab's."""
    from services.engineer.concurrency import THREADS_FILE, write_threads

    scratch, lab_files = tmp_path / "s", [tmp_path / "archive.sqlite", tmp_path / "other"]
    scratch.mkdir()
    for f in lab_files:
        f.write_text("the lab's data")
    (scratch / (THREADS_FILE + ".tmp")).symlink_to(lab_files[0])
    (scratch / THREADS_FILE).symlink_to(lab_files[1])
    write_threads(scratch, 2)
    assert [f.read_text() for f in lab_files] == ["the lab's data"] * 2
    assert not (scratch / THREADS_FILE).is_symlink() and (scratch / THREADS_FILE).read_text() == "2"
    write_threads(scratch, 1)
    assert (scratch / THREADS_FILE).read_text() == "1"
    assert sorted(p.name for p in scratch.iterdir()) == [THREADS_FILE, THREADS_FILE + ".tmp"]   # no temporary left


# ------------------------------------------------------------------ secrets
def test_proc_environ_through_a_directory_descriptor_reveals_no_secret(tmp_path):
    assert static_check(programs.proc_environ_via_dirfd("x")).reason == "forbidden_import"
    run = tmp_path / "run"
    leak = run / "leak.bin"
    res = train(programs.proc_environ_via_dirfd("leak.bin"), run, steps=20)  # relative: each child's own cwd
    # a private pid namespace: the only processes it can see are bwrap's and its own, with the clean env
    assert leak.exists(), (res.kind, res.error, res.stderr_tail[-2000:])
    assert b"ARCHLAB_SANDBOX=1" in leak.read_bytes()  # it did read environments: its own, clean
    assert res.ok, (res.kind, res.error)
    assert_no_secret(res, run)


def test_env_secrets_are_absent(tmp_path):
    res = run_python_module("tests.engineer.hostile", ["env"], scratch=tmp_path, limits=Limits(wall_s=60))
    assert res.ok and "ARCHLAB_LLM_API_KEY" not in res.result["env"]
    assert_no_secret(res, tmp_path)


# ------------------------------------------------------------------ writes outside scratch
def test_a_write_through_a_directory_descriptor_does_not_leave_scratch(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    res = train(programs.write_via_dirfd(str(outside)), tmp_path / "run", steps=20)
    assert not res.ok
    assert failure_kind(res, last_step=0, total_steps=20)[0] in ("runtime_error", "forbidden")
    assert list(outside.iterdir()) == []


def test_renaming_a_file_out_of_scratch_is_forbidden(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    res = train(programs.rename_out_of_scratch(str(outside / "moved.txt")), tmp_path / "run", steps=20)
    assert not res.ok and res.kind == "forbidden", (res.kind, res.error)
    assert "os.rename" in res.error
    assert list(outside.iterdir()) == []


def test_a_plain_write_outside_is_forbidden(tmp_path):
    target = tmp_path / "pwned.txt"
    res = run_python_module("tests.engineer.hostile", ["write_outside", str(target)], scratch=tmp_path / "s",
                            limits=Limits(wall_s=60))
    assert res.kind == "forbidden" and not target.exists()


# ------------------------------------------------------------------ static bypasses
@pytest.mark.parametrize("code", [programs.GETATTR_OS, programs.SYS_MODULES])
def test_module_reached_through_an_allowed_module_is_rejected(code):
    out = static_check(code)
    assert not out.ok and out.reason == "forbidden_import", out.feedback


# ------------------------------------------------------------------ wave 1: loops, forks, memory, network
@pytest.mark.parametrize("case,kind", [("loop", "timeout"), ("fork_bomb", "forbidden"), ("socket", "forbidden"),
                                       ("memory_hog", "memory")])
def test_wave_one_classes_end_with_their_kind(tmp_path, case, kind):
    res = run_python_module("tests.engineer.hostile", [case], scratch=tmp_path,
                            limits=Limits(wall_s=8, mem_mb=1024, preimport=()))
    assert res.kind == kind, (res.kind, res.error)
    assert res.confinement == "bwrap"
    assert_no_secret(res, tmp_path)


def test_the_network_namespace_holds_without_the_audit_hook(tmp_path):
    """Seen from inside, without the hook: the child's network namespace has only a loopback interface."""
    res = run_python_module("tests.security.raw_net", [], scratch=tmp_path, limits=Limits(wall_s=30, preimport=()))
    assert res.ok and res.result["interfaces"] == ["lo"], res.result


def test_pid_namespace_and_hidden_data_dir(tmp_path):
    res = run_python_module("tests.security.raw_net", ["view"], scratch=tmp_path, limits=Limits(wall_s=30, preimport=()))
    assert res.ok, res.error
    assert len(res.result["pids"]) <= 3, res.result  # bwrap's init, the child (and nothing of the host)
    assert res.result["archlab_dir"] in ([], None)  # the lab's data dir is an empty tmpfs
    assert res.result["root_visible"] == [], res.result  # no home, /var, ssh keys ... of the host


# ------------------------------------------------------------------ no OS sandbox
def test_without_bwrap_untrusted_code_is_refused_unless_the_operator_opts_in(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(confine, "available", lambda: (False, "bwrap is not installed (test)"))
    res = run_python_module("tests.engineer.hostile", ["ok"], scratch=tmp_path, limits=Limits(wall_s=30))
    assert res.kind == "unconfined" and res.confinement == "refused" and confine.UNCONFINED_VAR in res.error
    assert failure_kind(res, last_step=0, total_steps=1)[0] == "infrastructure"
    assert any("refusing" in r.getMessage() for r in caplog.records)
    monkeypatch.setenv(confine.UNCONFINED_VAR, "1")
    res = run_python_module("tests.engineer.hostile", ["ok"], scratch=tmp_path, limits=Limits(wall_s=30))
    assert res.ok and res.confinement == "unconfined"


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root to drop to nobody")
def test_bwrap_works_as_an_unprivileged_user(request):
    import tempfile
    scratch = Path(tempfile.mkdtemp(prefix="archlab-nobody-"))  # pytest's tmp_path is private to root
    request.addfinalizer(lambda: shutil.rmtree(scratch, ignore_errors=True))
    os.chown(scratch, 65534, 65534)
    probe = ("import sys; sys.path.insert(0, %r); from lab import confine; "
             "ok, why = confine.available(); assert ok, why; import subprocess, pathlib; "
             "argv = confine.confine_argv([sys.executable, '-c', 'import os; print(len([p for p in os.listdir(\"/proc\") "
             "if p.isdigit()]), os.getuid())'], scratch=pathlib.Path(%r)); "
             "print(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)") % (str(REPO), str(scratch))
    out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c",
                          probe], capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", confine.BWRAP_VAR: confine.bwrap_path()})  # the venv's wheel
    assert out.returncode == 0, out.stderr
    pids, uid = out.stdout.split()
    assert int(pids) <= 3 and uid == "65534"


# ------------------------------------------------------------------ leaks only while training
TRAIN_ONLY_LEAK = '''
import torch
import torch.nn as nn


class DeltaNet(nn.Module):
    def __init__(self, hidden_size=64, num_heads=1, **kwargs):
        super().__init__()
        self.proj = nn.Linear(hidden_size, hidden_size)

    def forward(self, hidden_states, attention_mask=None, **kwargs):
        h = self.proj(hidden_states)
        if self.training:  # the future, only while training: an eval-mode check never sees it
            h = h + hidden_states.flip(1)
        return h, None, None
'''


def test_a_leak_only_in_training_mode_fails_the_checks_and_the_monitor():
    import torch

    from lab.training.monitor import Monitor, TrainingStopped
    from lab.training.profiles import get_profile
    from lab.program import load_layer_class
    from lab.training.runner import build_model, make_batch_fn
    from lab.checks import profile_dims
    from lab.checks_child import check_program

    torch.set_num_threads(1)
    r = check_program(TRAIN_ONLY_LEAK, profile_dims("cpu-micro"), (64, 256), repeats=1)
    assert not r["ok"] and r["reason"] == "causality" and r["evidence"]["mode"] == "training", r
    profile = get_profile("cpu-micro")
    model = build_model(load_layer_class(TRAIN_ONLY_LEAK), profile)
    x, _ = make_batch_fn(profile, 0)(0)
    with pytest.raises(TrainingStopped) as stopped:
        Monitor().check_model(1, model, x)
    assert stopped.value.kind == "suspected_leak" and stopped.value.evidence["mode"] == "train"


def test_a_debugger_revision_meets_the_dynamic_checks_before_training(tmp_path):
    """The worker sets checks=True for revisions > 0: the runner runs the researcher's dynamic checks first."""
    from lab.training import runner

    job = {"code": TRAIN_ONLY_LEAK, "profile": "cpu-micro", "seed": 0, "workdir": str(tmp_path / "w"),
           "checks": True, "evaluate": False}
    (tmp_path / "job.json").write_text(json.dumps(job))
    assert runner.main([str(tmp_path / "job.json"), str(tmp_path / "result.json")]) == 2
    error = json.loads((tmp_path / "result.json").read_text())["error"]
    assert error["type"] == "ChecksFailed" and error["kind"] == "suspected_leak"
    assert not (tmp_path / "w" / runner.WEIGHTS_NAME).exists()  # never trained


def test_weights_left_as_a_fifo_fail_scoring_at_once(tmp_path):
    """A FIFO under the weights' name: the trusted scorer refuses it instead of blocking on its open."""
    import threading

    from lab.training.runner import WEIGHTS_NAME
    from lab.training.scoring import ScoringFailed, copy_regular_file

    work = tmp_path / "work"
    work.mkdir()
    os.mkfifo(work / WEIGHTS_NAME)
    box: dict = {}

    def copy() -> None:
        try:
            copy_regular_file(work / WEIGHTS_NAME, tmp_path, tmp_path / "copy.pt")
        except ScoringFailed as e:
            box["error"] = str(e)
    t = threading.Thread(target=copy, daemon=True)
    t.start()
    t.join(timeout=10)
    assert not t.is_alive(), "the scorer blocked opening the child's FIFO"
    assert "regular file" in box["error"]


async def test_a_directory_in_place_of_the_threads_file_does_not_end_the_engineers_watch(tmp_path):
    """The child may put a directory where the engineer writes its threads share: the write fails, is logged, and
    the engineer's watch over the run goes on (before, the error escaped the share's task)."""
    import asyncio

    from services.engineer.concurrency import THREADS_FILE
    from services.engineer.worker import Worker, WorkerConfig
    from tests.engineer.busutil import settings_for

    scratch = tmp_path / "s"
    (scratch / THREADS_FILE).mkdir(parents=True)
    w = Worker(settings_for("127.0.0.1:1", tmp_path), WorkerConfig(engineer_id="e", share_every_s=0.05))
    child = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_later(0.3, child.set_result, None)
    share = type("Share", (), {"threads": staticmethod(lambda: 2)})()
    await asyncio.wait_for(w._keep_share(share, scratch, child), timeout=10)
    assert (scratch / THREADS_FILE).is_dir() and child.done()
