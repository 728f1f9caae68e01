"""bench/discovery.py's judgement of a campaign and its table (own logic on made-up rows; the training it
summarises is the engineer's runner, tested in tests/engineer)."""
import json
from types import SimpleNamespace

import pytest

from tests.support.bench_script import load_bench


@pytest.fixture(scope="module")
def discovery():
    return load_bench("discovery")


BASE = {"final_loss": 1.5, "benchmark": 0.76, "params": 117_504}
NOISE = SimpleNamespace(loss=0.028, benchmark=0.010)
NOISE6 = SimpleNamespace(loss=0.0236, benchmark=0.0097, seeds=6)   # cpu-tiny's, measured on 6 seeds


def _row(name, fitness=None, benchmark=0.7, verdict=None, replicated=None, stopped_at=None, cpu_s=100.0):
    row = {"name": name, "cpu_s": cpu_s, "stopped_at": stopped_at}
    if fitness is not None:
        row.update(fitness=fitness, benchmark=benchmark, final_loss=1.4)
    if verdict:   # held-out runs the test confirms (far better, little spread) or not (the baseline's values)
        good = verdict == "confirmed"
        runs = [{"final_loss": (1.0 if good else 1.5) + d, "benchmark": (0.9 if good else 0.76) + d, "stopped_at": None}
                for d in (0.0, 0.001)]
        row["replication"] = {"verdict": verdict, "replicated_fitness": replicated, "runs": runs}
    return row


def test_best_confirmed_fitness_is_the_best_replicated_confirmed_one_or_the_baselines(discovery):
    rows = [_row("a", 0.99, 0.80, "not replicated", 0.40),   # the best first run did not hold
            _row("b", 0.90, 0.79, "confirmed", 0.85),
            _row("c", 0.80, 0.79, "confirmed", 0.70),
            _row("d", stopped_at=320, cpu_s=50.0),
            _row("e")]                                         # failed: no fitness, not stopped
    s = discovery.summarize("uct", 0, 5, rows, BASE, NOISE, "abc")
    assert s["best_confirmed_fitness"] == 0.85 and s["confirmed"] == ["b", "c"] and s["claims"] == 3
    assert s["best_first_fitness"] == 0.99 and s["best_first_name"] == "a"
    assert (s["stopped"], s["failed"], s["candidates"], s["cpu_s"]) == (1, 1, 5, 450.0)
    assert s["beats_baseline_2x_noise"] == 3                 # benchmark > 0.76 + 2 x 0.010
    none = discovery.summarize("uct", 1, 2, [_row("a", 0.99, 0.8, "not replicated", 0.4)], BASE, NOISE, "abc")
    assert none["best_confirmed_fitness"] == discovery.BASELINE_FITNESS == 0.5
    # held-out: the best replicated fitness whatever the verdict, never below what the baseline leaves
    assert s["best_replicated_fitness"] == 0.85 and none["best_replicated_fitness"] == 0.5


def test_the_table_pairs_arms_by_seed_with_intervals(discovery, tmp_path, capsys):
    best = {("evolution", 0): 0.5, ("evolution", 1): 0.7, ("evolution", 2): 0.6,
            ("uct", 0): 0.8, ("uct", 1): 0.9, ("uct", 2): 0.6, ("uct", 3): 0.99}   # uct's seed 3 has no pair
    for (arm, seed), value in best.items():
        out = tmp_path / f"{arm}-seed{seed}"
        out.mkdir()
        s = discovery.summarize(arm, seed, 1, [_row("x", value, 0.8, "confirmed", value)], BASE, NOISE, "abc")
        (out / "summary.json").write_text(json.dumps(s))
    # a saved verdict is judged again from the saved runs by the test as it is now
    (tmp_path / "uct-seed2" / "summary.json").write_text(json.dumps(discovery.summarize(
        "uct", 2, 1, [_row("x", 0.6, 0.8, "not replicated", 0.6)], BASE, NOISE, "abc")))
    discovery.report(str(tmp_path), ["evolution", "best-of-n", "uct"], "cpu-tiny")
    text = capsys.readouterr().out
    assert "7 campaigns" in text
    evo = next(line for line in text.splitlines() if line.startswith("evolution "))
    assert evo.split()[1] == "3" and "0.600 [" in evo
    assert "best-of-n " not in text                          # an arm with no campaign gets no row
    confirmed, first_run = text.split("paired difference of best first-run fitness")
    # confirmed: evolution 0.5, 0.7, 0.6 against uct 0.8, 0.9 and 0.5 (seed 2 judged again: not replicated)
    assert "evolution - uct: -0.133 [" in confirmed and "over 3 seeds (1 ahead, 2 behind, 0 level)" in confirmed
    # first run: the same against 0.8, 0.9, 0.6 -> -0.3, -0.2, 0.0
    assert "evolution - uct: -0.167 [" in first_run and "over 3 seeds (0 ahead, 2 behind, 1 level)" in first_run


def test_a_campaign_with_every_candidate_stopped_counts_0_in_the_column_as_in_the_pairs(discovery, tmp_path, capsys):
    rows = {("evolution", 0): [_row("x", 0.45, 0.76)], ("evolution", 1): [_row("y", 0.75, 0.77)],
            ("best-of-n", 0): [_row("s", stopped_at=320)], ("best-of-n", 1): [_row("z", 0.79, 0.77)]}
    for (arm, seed), rs in rows.items():
        (tmp_path / f"{arm}-seed{seed}").mkdir()
        (tmp_path / f"{arm}-seed{seed}" / "summary.json").write_text(
            json.dumps(discovery.summarize(arm, seed, 1, rs, BASE, NOISE, "abc")))
    discovery.report(str(tmp_path), ["evolution", "best-of-n"], "cpu-tiny")
    text = capsys.readouterr().out
    column = {line.split()[0]: line.split()[5] for line in text.splitlines()
              if line.startswith(("evolution ", "best-of-n "))}
    assert column == {"evolution": "0.600", "best-of-n": "0.395"}        # (0 + 0.79) / 2, not 0.79
    first_run = text.split("paired difference of best first-run fitness")[1]
    assert "evolution - best-of-n: +0.205 [" in first_run                # 0.600 - 0.395


def test_confirm_seeds_trains_only_the_missing_held_out_seeds_and_judges_claims_on_them(discovery, tmp_path,
                                                                                        monkeypatch, capsys):
    """A claim whose 2 held-out runs differ too much for Welch's test is confirmed on 3; the campaign's own
    record stays as it ran."""
    from services.archive.replication import replicate_seed

    base = {**BASE, "final_loss": 1.49, "benchmark": 0.76, "rung_losses": {"320": 1.9}}
    (tmp_path / "baseline-seed0.json").write_text(json.dumps(base))
    # a claim of the discovery bench (uct seed 1, delta-fir7x63-const): its two held-out runs, then a third
    held_out = {replicate_seed(0, 1): (1.350, 0.796), replicate_seed(0, 2): (1.417, 0.774),
                replicate_seed(0, 3): (1.380, 0.785)}
    trained = []

    def fake_train_once(out_dir, code, profile, seed, overrides, base_rungs):
        assert code == "CODE-a" and base_rungs == {320: 1.9}
        if seed <= replicate_seed(0, 2):
            return {"result": dict(zip(("final_loss", "benchmark"), held_out[seed])), "cpu_s": 0.0, "error": "",
                    "stopped_at": None, "rung_losses": {}, "reused": True}
        trained.append(seed)
        return {"result": dict(zip(("final_loss", "benchmark"), held_out[seed])), "cpu_s": 200.0, "error": "",
                "stopped_at": None, "rung_losses": {}}

    monkeypatch.setattr(discovery, "train_once", fake_train_once)
    row = _row("a", 0.98, 0.81)
    runs = [{"seed": s, "cpu_s": 200.0, "stopped_at": None, "error": "", "final_loss": held_out[s][0],
             "benchmark": held_out[s][1]} for s in (replicate_seed(0, 1), replicate_seed(0, 2))]
    row["replication"] = {"runs": runs, "replicated_fitness": 0.9, **discovery.judge_replication(runs, base, NOISE6)}
    assert row["replication"]["verdict"] == "not replicated"      # Welch on 2 runs 0.067 apart: about 1 d.o.f.
    camp = tmp_path / "uct-seed0"
    camp.mkdir()
    (camp / "summary.json").write_text(json.dumps(discovery.summarize("uct", 0, 1, [row], base, NOISE6, "abc")))
    (camp / "progress.json").write_text(json.dumps({"pool": [{"id": "deltanet"}, {"id": "a", "code": "CODE-a"}]}))

    discovery.extend_replication(str(tmp_path), "cpu-tiny", {}, 3, stopping=True, jobs=1)
    assert trained == [replicate_seed(0, 3)]                     # seeds 1 and 2 came back from the runs cache
    saved = json.loads((camp / "replication-k3.json").read_text())
    assert [r["final_loss"] for r in saved["a"]] == [1.350, 1.417, 1.380]
    capsys.readouterr()
    discovery.report(str(tmp_path), ["uct"], "cpu-tiny")
    as_ran = capsys.readouterr().out
    discovery.report(str(tmp_path), ["uct"], "cpu-tiny", 3)
    on_three = capsys.readouterr().out
    uct = lambda text: next(line for line in text.splitlines() if line.startswith("uct "))  # noqa: E731
    assert uct(as_ran).split()[2] == "0.500" and uct(as_ran).split()[-4] == "0"     # nothing confirmed on 2
    assert "on 3 held-out seeds" in on_three and uct(on_three).split()[-4] == "1"   # confirmed on 3
    assert uct(as_ran).split()[-6] == "0.900"                       # best held-out fitness, whatever the verdict
    assert float(uct(on_three).split()[2]) > 0.8
    assert json.loads((camp / "summary.json").read_text())["rows"][0]["replication"]["runs"] == runs


def test_a_campaign_whose_claims_are_not_yet_on_k_seeds_is_left_out_of_that_table_and_named(discovery, tmp_path,
                                                                                           capsys):
    """A campaign that finished after --confirm-seeds ran: the K-seed table leaves it out and says which."""
    for seed in (0, 1):
        row = _row("a", 0.98, 0.81, "not replicated", 0.6)
        (tmp_path / f"uct-seed{seed}").mkdir()
        (tmp_path / f"uct-seed{seed}" / "summary.json").write_text(
            json.dumps(discovery.summarize("uct", seed, 1, [row], BASE, NOISE, "abc")))
    runs = [{"seed": s, "final_loss": 1.5, "benchmark": 0.76, "stopped_at": None} for s in (1, 2, 3)]
    discovery.extended_runs_path(tmp_path / "uct-seed0", 3).write_text(json.dumps({"a": runs}))
    discovery.report(str(tmp_path), ["uct"], "cpu-tiny", 3)
    text = capsys.readouterr().out
    assert "left out of the table on 3 seeds: uct-seed1" in text and "1 campaigns under" in text
