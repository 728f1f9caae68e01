"""Staged data: `archlab data prepare` writes a profile's tokens into a content-addressed cache; the sandboxed
child trains from it read-only and offline; a profile whose data is missing is refused with the command.
Tested with the project's own corpus ("archlab/stdlib-bytes", byte tokenizer) through the same code path as
FineWeb-edu."""
import hashlib
import json

import pytest
import torch

from lab.training import datastage
from lab.training.data import load_byte_corpus
from lab.training.profiles import get_profile

OVERRIDES = dict(task="hf", hf_dataset=datastage.LOCAL_DATASET, hf_tokenizer=datastage.BYTES_TOKENIZER, steps=6,
                 batch_size=2, seq_len=32, log_every=2, checkpoint_every=6, eval_examples=8, eval_batch_size=8)


def staged_profile(**kw):
    return get_profile("cpu-bytes", **(OVERRIDES | kw))


def test_prepare_is_content_addressed_and_idempotent(tmp_path):
    p = staged_profile()
    assert datastage.needs_staging(p) and not datastage.needs_staging(get_profile("cpu-micro"))
    assert datastage.staged(p, tmp_path) is None
    with pytest.raises(datastage.DataNotStaged, match="archlab data prepare cpu-bytes"):
        datastage.require(p, tmp_path)
    d = datastage.prepare(p, tmp_path)
    assert d == tmp_path.resolve() / "datasets" / datastage.key(p) and datastage.require(p, tmp_path) == d
    manifest = json.loads((d / "manifest.json").read_text())
    raw = (d / "train.u32").read_bytes()
    assert manifest["tokens"] == 6 * 2 * 32 == len(raw) // 4
    assert manifest["sha256"] == hashlib.sha256(raw).hexdigest() and manifest["spec"] == datastage.spec(p)
    tokens = datastage.load_staged_tokens(p, d)
    assert torch.equal(tokens.long(), load_byte_corpus().train[:384].long())
    mtime = (d / "train.u32").stat().st_mtime_ns
    assert datastage.prepare(p, tmp_path) == d and (d / "train.u32").stat().st_mtime_ns == mtime   # kept
    other = staged_profile(steps=8, checkpoint_every=8)            # another recipe: another key, not staged
    assert datastage.key(other) != datastage.key(p) and datastage.staged(other, tmp_path) is None
    with pytest.raises(datastage.DataNotStaged, match="not the data of profile"):
        datastage.load_staged_tokens(other, d)
    assert not list((tmp_path / "datasets").glob(".*partial"))


def test_the_held_out_split_is_the_stream_after_the_training_tokens_and_only_the_scorer_reads_it(tmp_path):
    """Issue 25: an hf profile scores on tokens never trained on, in a directory no child binds."""
    from lab import confine
    from lab.training.heldout import heldout_batch_fn

    p = staged_profile()
    d = datastage.prepare(p, tmp_path)
    h = datastage.heldout_dir(p, tmp_path)
    assert h.parent == d.parent and h != d and not h.is_relative_to(d)
    held = datastage.load_staged_heldout(p, tmp_path)
    n = datastage.heldout_wanted(p)
    assert n == 64 * 33 and len(held) == n
    assert torch.equal(held.long(), load_byte_corpus().train[384:384 + n].long())   # the stream's next tokens
    x, y = heldout_batch_fn(p, seed=5, data_dir=tmp_path)(0)
    assert x.shape == (2, 32) and torch.equal(x[:, 1:], y[:, :-1])
    windows = {tuple(held[i:i + 33].tolist()) for i in range(n - 32)}
    assert all(tuple(torch.cat([x[r], y[r, -1:]]).tolist()) in windows for r in range(2))
    # the child's filesystem: the training stage is bound, the held-out split is not
    argv = confine.confine_argv(["python"], scratch=tmp_path / "s", readable=[str(d)])
    assert str(d) in argv and str(h) not in argv
    # a stage without its split is not complete
    (h / datastage.HELDOUT_NAME).unlink()
    assert datastage.staged(p, tmp_path) is None
    with pytest.raises(datastage.DataNotStaged, match="archlab data prepare"):
        datastage.load_staged_heldout(p, tmp_path)


def test_a_truncated_stage_is_not_found(tmp_path):
    p = staged_profile()
    d = datastage.prepare(p, tmp_path)
    (d / "train.u32").write_bytes((d / "train.u32").read_bytes()[:-4])
    assert datastage.staged(p, tmp_path) is None


def test_the_runner_reads_the_stage_and_refuses_without_it_in_the_sandbox(tmp_path, monkeypatch):
    from lab.training.runner import make_batch_fn
    p = staged_profile()
    d = datastage.prepare(p, tmp_path)
    monkeypatch.setenv("ARCHLAB_SANDBOX", "1")
    monkeypatch.delenv(datastage.STAGE_ENV, raising=False)
    with pytest.raises(datastage.DataNotStaged, match="archlab data prepare"):
        make_batch_fn(p, seed=0)
    monkeypatch.setenv(datastage.STAGE_ENV, str(d))
    x, y = make_batch_fn(p, seed=0)(0)
    assert x.shape == (2, 32) and torch.equal(x[:, 1:], y[:, :-1]) and int(x.max()) < 256


@pytest.mark.slow
def test_sandboxed_training_reads_the_stage_read_only(tmp_path, monkeypatch):
    """The real sandbox (bwrap, offline) trains from the staged cache inside a hidden data dir."""
    from lab import confine
    from lab.training.sandboxed import run_training_sandboxed
    from lab.zoo.registry import zoo_source

    ok, why = confine.available()
    if not ok:
        pytest.skip(why)
    data_dir = tmp_path / "lab"
    monkeypatch.setenv("ARCHLAB_DATA_DIR", str(data_dir))     # the data dir is hidden in the child ...
    with pytest.raises(datastage.DataNotStaged, match="archlab data prepare cpu-bytes"):
        run_training_sandboxed(zoo_source("deltanet"), "cpu-bytes", 0, scratch=tmp_path / "s0",
                               profile_overrides=OVERRIDES, data_dir=data_dir)
    d = datastage.prepare(staged_profile(), data_dir)
    res = run_training_sandboxed(zoo_source("deltanet"), "cpu-bytes", 0, scratch=tmp_path / "s1",
                                 profile_overrides=OVERRIDES, data_dir=data_dir)
    assert res.ok, (res.kind, res.error if hasattr(res, "error") else res)
    assert res.result["steps"] == 6 and res.result["final_loss"] < 6.0     # ... but the stage shows through
    assert json.loads((d / "manifest.json").read_text())["tokens"] == 384   # untouched


def test_the_stage_shows_through_the_hidden_data_dir(tmp_path):
    """The lab's data dir is a tmpfs in the child; the staged dir is bound read-only after (over) it."""
    from lab import confine

    hidden = confine.hidden_dirs()[0]          # <repo>/.archlab: inside the repository's read-only bind
    stage = hidden / "datasets" / "k-test-stage"
    made = [d for d in (hidden, hidden / "datasets", stage) if not d.exists()]
    stage.mkdir(parents=True, exist_ok=True)
    try:
        argv = confine.confine_argv(["python"], scratch=tmp_path / "s", readable=[str(stage)])
    finally:
        for d in reversed(made):
            d.rmdir()
    pairs = [(argv[i], argv[i + 1]) for i in range(len(argv) - 1)]
    ro = pairs.index(("--ro-bind", str(stage)))
    assert ("--bind", str(stage)) not in pairs                  # read-only
    # since issue 25 the repository is not bound whole (only lab/ and tests/), so the data dir is simply absent;
    # wherever a bind still covers it, it is hidden under a tmpfs placed before the stage shows through
    assert ("--ro-bind", str(confine.REPO_ROOT)) not in pairs and ("--ro-bind", str(hidden)) not in pairs
    if ("--tmpfs", str(hidden)) in pairs:
        assert pairs.index(("--tmpfs", str(hidden))) < ro


def test_cli_refuses_a_profile_without_its_data_and_names_the_command(tmp_path):
    from typer.testing import CliRunner

    from services.cli.main import app

    r = CliRunner().invoke(app, ["run", "--profile", "explore-20m", "--data-dir", str(tmp_path)])
    assert r.exit_code == 2 and "archlab data prepare explore-20m" in " ".join(r.output.split())
    assert not (tmp_path / "run").exists() and not list(tmp_path.glob("*.pid"))   # no stack was started
    r = CliRunner().invoke(app, ["data", "prepare", "cpu-micro", "--data-dir", str(tmp_path)])
    assert r.exit_code == 0 and "nothing to stage" in " ".join(r.output.split())
    r = CliRunner(env={"COLUMNS": "250"}).invoke(app, ["data", "status", "--data-dir", str(tmp_path)])
    out = " ".join(r.output.split())
    assert r.exit_code == 0 and "missing" in out and "archlab data prepare verify-340m" in out
