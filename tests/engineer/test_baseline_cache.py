"""A baseline trained once per data directory and reused (issue 23): the weights come back, every trusted number is
computed again on the new campaign's held-out data, and what a child wrote is kept only as plain files."""
import json
import os
import shutil

import pytest

from lab.training.runner import WEIGHTS_NAME, rung_dir
from schemas import events as ev
from services.common.settings import Settings
from services.engineer.baseline_cache import BaselineCache, cache_key
from services.engineer.worker import Worker, WorkerConfig
from tests.engineer.busutil import Collector, publish, settings_for
from tests.engineer.programs import source
from tests.support.sandbox import require_bwrap

RESULT = {"final_loss": 1.25, "benchmark": 0.7, "eval_s": 3.0, "scored_by": "trusted", "params": 1000,
          "loss_curve": [[10, 2.0], [20, 1.3]], "train_s": 12.0, "step_cost_s": 0.05, "probe_s": 1e-4,
          "autocast": "fp32", "metrics": {"heldout/loss": 1.25, "train/claimed_final_loss": 1.31, "mqar/acc": 0.7}}


def trained_workdir(tmp_path, rungs=(10,)):
    scratch = tmp_path / "scratch"
    work = scratch / "work"
    work.mkdir(parents=True)
    (work / WEIGHTS_NAME).write_bytes(b"final")
    for step in rungs:
        rung_dir(work, step).mkdir()
        (rung_dir(work, step) / WEIGHTS_NAME).write_bytes(f"rung {step}".encode())
    return scratch, work


def test_a_kept_baseline_comes_back_without_its_scored_fields(tmp_path):
    scratch, work = trained_workdir(tmp_path)
    cache = BaselineCache(tmp_path / "lab")
    key = cache_key("code", "cpu-micro", {}, 0, "cpu")
    assert cache.lookup(key, (10,)) is None
    kept = cache.store(key, RESULT, work, scratch, (10,), "c1/exp-b")
    assert kept == (tmp_path / "lab" / "baselines" / key).resolve()
    assert cache.store(key, RESULT, work, scratch, (10,), "c2/exp-b") is None   # the first entry stays
    entry = cache.lookup(key, (10,))
    assert entry.trained_by == "c1/exp-b"
    restored = entry.restore(tmp_path / "new" / "work", (10,))
    assert (tmp_path / "new" / "work" / WEIGHTS_NAME).read_bytes() == b"final"
    assert (rung_dir(tmp_path / "new" / "work", 10) / WEIGHTS_NAME).read_bytes() == b"rung 10"
    # the child's own numbers stay; what the scorer computes is gone, the final loss is the child's claim
    assert restored["final_loss"] == 1.31 and restored["weights_from"] == "c1/exp-b"
    assert not {"benchmark", "eval_s", "metrics", "scored_by"} & set(restored)
    assert (restored["loss_curve"], restored["step_cost_s"], restored["probe_s"]) == ([[10, 2.0], [20, 1.3]], 0.05,
                                                                                       1e-4)
    assert cache.lookup(key, (10, 15)) is None   # a rung it does not have: train


def test_the_key_changes_with_everything_that_changes_the_weights():
    base = cache_key("code", "cpu-micro", {}, 0, "cpu")
    assert base == cache_key("code", "cpu-micro", {}, 0, "cpu")
    assert len({base, cache_key("code2", "cpu-micro", {}, 0, "cpu"), cache_key("code", "cpu-tiny", {}, 0, "cpu"),
                cache_key("code", "cpu-micro", {"steps": 40}, 0, "cpu"), cache_key("code", "cpu-micro", {}, 1, "cpu"),
                cache_key("code", "cpu-micro", {}, 0, "cuda")}) == 6


def test_the_key_follows_the_labs_training_code(tmp_path, monkeypatch):
    """A faster kernel in the fla shim or the training loop trains the baseline again, instead of serving the
    weights the code before it trained: the key covers lab/training and lab/fla_shim."""
    from services.engineer import baseline_cache

    names = {p.name for root in baseline_cache.TRAINING_CODE_DIRS for p in root.rglob("*.py")}
    assert {"convolution.py", "train.py", "model.py", "data.py"} <= names
    base = cache_key("code", "cpu-micro", {}, 0, "cpu")
    copy = tmp_path / "lab"
    for root in baseline_cache.TRAINING_CODE_DIRS:
        shutil.copytree(root, copy / root.name)
    monkeypatch.setattr(baseline_cache, "TRAINING_CODE_DIRS", (copy / "training", copy / "fla_shim"))
    baseline_cache.training_code_digest.cache_clear()
    try:
        assert cache_key("code", "cpu-micro", {}, 0, "cpu") == base    # the same code: the same key
        conv = next((copy / "fla_shim").rglob("convolution.py"))
        conv.write_text(conv.read_text() + "\n# changed\n")
        baseline_cache.training_code_digest.cache_clear()
        assert cache_key("code", "cpu-micro", {}, 0, "cpu") != base
    finally:
        baseline_cache.training_code_digest.cache_clear()


def test_a_symlink_left_by_the_child_is_not_kept_and_a_damaged_entry_is_a_miss(tmp_path):
    scratch, work = trained_workdir(tmp_path)
    secret = tmp_path / "secret"
    secret.write_text("not weights")
    (work / WEIGHTS_NAME).unlink()
    os.symlink(secret, work / WEIGHTS_NAME)
    cache = BaselineCache(tmp_path / "lab")
    key = cache_key("code", "cpu-micro", {}, 0, "cpu")
    assert cache.store(key, RESULT, work, scratch, (10,), "c1/exp-b") is None
    assert list(cache.root.iterdir()) == []   # nothing half-written left behind
    entry = cache.root / key
    entry.mkdir()
    (entry / "result.json").write_text("{not json")
    (entry / WEIGHTS_NAME).write_bytes(b"w")
    assert cache.lookup(key, ()) is None
    (entry / "result.json").write_text(json.dumps({"result": {"final_loss": 1.0}, "trained_by": "c/e"}))
    assert cache.lookup(key, ()) is not None and cache.lookup(key, (10,)) is None


def test_reuse_is_on_by_default_and_the_setting_turns_it_off(tmp_path):
    assert WorkerConfig.from_settings(Settings(data_dir=tmp_path)).reuse_baseline is True
    assert WorkerConfig.from_settings(Settings(data_dir=tmp_path, engineer_reuse_baseline=False)).reuse_baseline is False


def proposal(campaign, exp, code, seed=0):
    return ev.ProposalCreated(campaign_id=campaign, experiment_id=exp, name="deltanet", code=code, motivation="m",
                              profile="cpu-micro", role="baseline", seed=seed)


@pytest.mark.slow
@pytest.mark.integration
async def test_a_second_campaigns_baseline_is_rescored_not_trained(kafka_broker, tmp_path):
    """The second campaign runs in another data directory (a fresh folder, as a second clone's `make run`) on the
    same machine: the machine cache gives it the first one's weights."""
    overrides = {"steps": 60, "eval_examples": 32}
    async with Collector(kafka_broker) as log:
        for campaign in ("c1", "c2"):
            w = Worker(settings_for(kafka_broker, tmp_path / f"lab-{campaign}", cache_dir=tmp_path / "machine"),
                       WorkerConfig(engineer_id=f"eng-{campaign}", lease_s=30, heartbeat_s=1.0,
                                    profile_overrides=overrides, rung_fracs=(0.5,)))
            await w.start()
            try:
                await publish(kafka_broker, proposal(campaign, f"{campaign}-base", source("deltanet")))
                await log.wait_for(lambda: log.of(ev.ResultsReady, experiment_id=f"{campaign}-base")
                                   or log.of(ev.TrainingFailed), timeout=300)
            finally:
                await w.stop()
    assert list((tmp_path / "machine" / "baselines").iterdir())   # kept in the machine cache, not a data dir
    assert not list(tmp_path.glob("lab-*/**/baselines"))
    assert not log.of(ev.TrainingFailed), log.of(ev.TrainingFailed)[0].log_tail
    (first,) = log.of(ev.ResultsReady, experiment_id="c1-base")
    (second,) = log.of(ev.ResultsReady, experiment_id="c2-base")
    assert first.weights_from is None and second.weights_from == "c1/c1-base"
    # no training child for the second: no progress past step 0, the first run's curve and costs
    assert not [b for b in log.of(ev.TrainingProgress, experiment_id="c2-base") if b.step]
    assert (second.loss_curve, second.train_s, second.step_time_s, second.probe_s) == \
        (first.loss_curve, first.train_s, first.step_time_s, first.probe_s)
    # every trusted number computed again, on c2's own secret held-out data
    assert 0 < second.metrics["rung/30/heldout_loss"] < 10 and 0 <= second.benchmark <= 1
    assert second.final_loss == pytest.approx(first.final_loss, abs=0.5)
    assert second.metrics["heldout/loss"] == second.final_loss
    assert second.metrics["train/claimed_final_loss"] == first.metrics["train/claimed_final_loss"]


def test_no_sandbox_child_sees_the_machine_cache(tmp_path, monkeypatch):
    """A program that could read DeltaNet's trained weights could load them and skip training: the machine cache is
    an empty tmpfs in every child, even where it lies inside a directory the child may read."""
    import subprocess
    import sys

    from lab import confine

    require_bwrap()
    machine = tmp_path / "machine"
    weights = machine / "baselines" / "k" / WEIGHTS_NAME
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"trained")
    monkeypatch.setenv("ARCHLAB_CACHE_DIR", str(machine))
    code = "import sys\ntry:\n    print(open(sys.argv[1], 'rb').read())\nexcept OSError as e:\n    print(type(e).__name__)\n"
    argv = confine.confine_argv([sys.executable, "-c", code, str(weights)], scratch=tmp_path / "scratch",
                                readable=[str(tmp_path)])   # the cache's parent is even bound read-only
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "FileNotFoundError", out.stdout


def test_the_machine_cache_is_the_setting_else_the_users_cache(tmp_path, monkeypatch):
    from lab.machine_cache import machine_cache_dir

    monkeypatch.setenv("ARCHLAB_CACHE_DIR", str(tmp_path / "set"))
    assert machine_cache_dir() == tmp_path / "set" and Settings().machine_cache == tmp_path / "set"
    monkeypatch.delenv("ARCHLAB_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert machine_cache_dir() == tmp_path / "xdg" / "archlab"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert machine_cache_dir() == tmp_path / "home" / ".cache" / "archlab"
    assert Settings(cache_dir=tmp_path / "mine").machine_cache == tmp_path / "mine"
