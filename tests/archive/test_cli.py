"""The archive's CLI commands on a database built from a synthetic log (and one Kafka round trip)."""
import csv
import json

import pytest
from typer.testing import CliRunner

from services.archive.projection import digest
from services.archive.replay import replay_events
from services.archive.storage import SQLiteStore
from services.archive.synthetic import synthetic_log
from services.cli.main import app

runner = CliRunner()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    with SQLiteStore(d / "archive.sqlite") as store:
        replay_events(synthetic_log(experiments=30, seed=1, code_size=200), store)
    return d


def _run(*args):
    result = runner.invoke(app, [*args], env={"COLUMNS": "200"})
    return result


def test_leaderboard(data_dir):
    r = _run("leaderboard", "--data-dir", str(data_dir), "--limit", "5")
    assert r.exit_code == 0, r.output
    assert "leaderboard" in r.output and "fitness" in r.output
    assert r.output.count("synth-1-0-") >= 5


def test_show_lists_every_attempt(data_dir):
    store = SQLiteStore(data_dir / "archive.sqlite", read_only=True)
    exp = next(d for d in store.experiments() if d["status"] == "done" and
               {"rejected", "failure"} <= {a["kind"] for a in store.attempts(d["experiment_id"])})
    attempts = store.attempts(exp["experiment_id"])
    r = _run("show", exp["experiment_id"], "--data-dir", str(data_dir))
    assert r.exit_code == 0, r.output
    assert r.output.count("rejected ") == sum(a["kind"] == "rejected" for a in attempts)
    assert r.output.count("failure ") == sum(a["kind"] == "failure" for a in attempts)
    assert "too similar to a sibling" in r.output and "shape mismatch" in r.output
    r = _run("show", exp["experiment_id"], "--json", "--data-dir", str(data_dir))
    rec = json.loads(r.output)
    assert rec["attempts"] == attempts and rec["experiment"]["status"] == "done"
    assert _run("show", "nope", "--data-dir", str(data_dir)).exit_code == 1


def test_lineage_tree(data_dir):
    store = SQLiteStore(data_dir / "archive.sqlite", read_only=True)
    deep = [d for d in store.experiments() if d.get("parent_id", "") and d["parent_id"].startswith("synth-1-0-c")]
    r = _run("lineage", deep[-1]["experiment_id"], "--data-dir", str(data_dir))
    assert r.exit_code == 0, r.output
    assert deep[-1]["parent_id"] in r.output and deep[-1]["experiment_id"] in r.output
    assert "└──" in r.output


def test_export_jsonl_and_csv(data_dir, tmp_path):
    n = len(SQLiteStore(data_dir / "archive.sqlite", read_only=True).experiments())
    r = _run("export", "--format", "jsonl", "--out", str(tmp_path / "x.jsonl"), "--data-dir", str(data_dir))
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in (tmp_path / "x.jsonl").read_text().splitlines()]
    assert len(rows) == n and all({"experiment", "attempts", "scores"} <= set(x) for x in rows)
    r = _run("export", "--format", "csv", "--out", str(tmp_path / "x.csv"), "--data-dir", str(data_dir))
    assert r.exit_code == 0, r.output
    table = list(csv.DictReader((tmp_path / "x.csv").open()))
    assert len(table) == n and sum(int(t["rejections"]) for t in table) > 0
    r = _run("export", "--format", "xml", "--out", str(tmp_path / "x.xml"), "--data-dir", str(data_dir))
    assert r.exit_code == 2


def test_missing_database_is_a_clear_error(tmp_path):
    r = _run("leaderboard", "--data-dir", str(tmp_path))
    assert r.exit_code == 1 and "no archive database" in r.output


@pytest.mark.integration
def test_import_then_replay_through_kafka(kafka_broker, tmp_path):
    from tests.archive.test_import import REFERENCE

    if not REFERENCE.exists():
        pytest.skip(f"ASI-Arch reference data absent ({REFERENCE})")
    env = {"ARCHLAB_KAFKA_BOOTSTRAP": kafka_broker, "COLUMNS": "200"}
    r = runner.invoke(app, ["import-asi-arch", str(REFERENCE), "--data-dir", str(tmp_path)], env=env)
    assert r.exit_code == 0, r.output
    assert "published 106" in r.output
    # a live archive database that is behind the log: replay says so
    SQLiteStore(tmp_path / "archive.sqlite").close()
    r = runner.invoke(app, ["replay", "--data-dir", str(tmp_path), "--out", str(tmp_path / "r1.sqlite")], env=env)
    assert r.exit_code == 1 and "read 106 events" in r.output and "digests differ" in r.output
    # the replayed file is the projection; as the live database it compares equal
    (tmp_path / "r1.sqlite").rename(tmp_path / "archive.sqlite")
    r = runner.invoke(app, ["replay", "--shuffle-seed", "4", "--data-dir", str(tmp_path),
                            "--out", str(tmp_path / "r2.sqlite")], env=env)
    assert r.exit_code == 0, r.output
    assert "digests equal" in r.output
    assert digest(SQLiteStore(tmp_path / "r2.sqlite", read_only=True)) == \
        digest(SQLiteStore(tmp_path / "archive.sqlite", read_only=True))
