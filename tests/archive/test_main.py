"""Wiring: one consumer group over every topic; on the real embedded broker, a campaign starts."""
import asyncio

import pytest

from schemas import events as ev
from schemas.topics import TOPICS
from services.archive import main
from services.archive.storage.cassandra import schema_statements
from services.common.settings import Settings


def test_archive_subscribes_to_every_topic_in_one_group(tmp_path):
    svc = main.build(Settings(data_dir=tmp_path, kafka_bootstrap="127.0.0.1:1"))
    assert list(svc._routes) == ["archive"]
    assert set(svc._routes["archive"]) == {spec.name for spec in TOPICS.values()}


def test_cassandra_schema_covers_every_prepared_statement():
    """No server here: at least every column the backend names exists in infra/cassandra/schema.cql."""
    import re

    from services.archive.storage import cassandra

    tables = {}
    for stmt in schema_statements("ks"):
        m = re.match(r"CREATE TABLE IF NOT EXISTS ks\.(\w+) \((.*)\)", " ".join(stmt.split()), re.S)
        if m:
            cols = {c.strip().split()[0] for c in re.sub(r"PRIMARY KEY \(.*?\)\)?", "", m.group(2)).split(",")
                    if c.strip()}
            tables[m.group(1)] = cols
    assert {"experiments", "experiments_by_campaign", "children_by_parent", "elite_pool_by_campaign",
            "attempts_by_experiment", "scores_by_experiment", "campaigns", "cognitions", "processed_events",
            "pool_membership", "pending_local"} <= set(tables)
    for name, text in cassandra.STATEMENTS.items():
        table = re.search(r"(?:FROM|INTO)\s+(\w+)", text).group(1)
        assert table in tables, name
        for col in re.findall(r"\b([a-z_]+)\s*=\s*\?", text):
            assert col in tables[table], (name, col)
        m = re.search(r"INTO \w+ \(([^)]*)\)", text) or re.search(r"SELECT (.*) FROM", text)
        if m:   # DELETE names its columns in WHERE only
            assert {c.strip() for c in m.group(1).split(",")} <= tables[table], name


@pytest.mark.integration
async def test_archive_service_starts_a_campaign_on_the_broker(kafka_broker, tmp_path, monkeypatch):
    from services.archive import scheduler
    from services.common.log_reader import read_log
    from schemas.topics import topic_for
    from schemas import codec

    monkeypatch.setattr(scheduler, "_zoo_source", lambda name: f"# {name}\n")
    svc = main.build(Settings(data_dir=tmp_path, kafka_bootstrap=kafka_broker, partitions=4))
    await svc.start()
    try:
        await svc.publish(ev.CampaignStarted(campaign_id="c1", experiment_id="c1", baselines=["deltanet", "gla"],
                                             budget=2))
        found = []
        for _ in range(60):
            found = [codec.decode(r.value) async for r in read_log(kafka_broker, [topic_for(ev.ParentSampled)])]
            if len(found) >= 2:
                break
            await asyncio.sleep(0.5)
        assert sorted(e.experiment_id for e in found) == ["c1-base-deltanet", "c1-base-gla"]
        assert all(e.mode == "baseline" and e.producer == "archive" for e in found)
    finally:
        await svc.stop()


@pytest.mark.integration
async def test_a_replica_projects_every_event_and_decides_nothing(kafka_broker, tmp_path):
    """`--replica` (the UI's read model at scale): its own group and store, the same projection as the archive's
    (the UI reads it), and not one event published, not even when a campaign starts."""
    from schemas import codec
    from schemas.topics import topic_for
    from services.common.bus import publish_once
    from services.common.log_reader import read_log
    from services.ui.readmodel import ReadModel
    from tests.report.fake_campaign import fake_campaign

    # a finished campaign's log, and a campaign just started (the archive would sample its baseline at once)
    events = fake_campaign(candidates=3, seed=4) + [
        ev.CampaignStarted(campaign_id="c-new", experiment_id="c-new", baselines=["deltanet"], budget=2)]
    settings = Settings(data_dir=tmp_path / "replica", kafka_bootstrap=kafka_broker, partitions=4)
    svc = main.build(settings, replica=True)
    assert list(svc._routes) == [main.REPLICA_GROUP] and svc.name == main.REPLICA
    from schemas.events import EVENT_TYPES
    topics = [topic_for(t) for t in EVENT_TYPES]
    before = {codec.decode(r.value).event_id async for r in read_log(kafka_broker, topics)}
    await svc.start()
    try:
        await publish_once(settings, *events)
        model = ReadModel(settings.data_dir)
        want = {e.experiment_id for e in events if e.experiment_id != e.campaign_id}
        for _ in range(60):
            if model.exists() and "c-new" in {c["campaign_id"] for c in model.campaigns()}:
                break
            await asyncio.sleep(0.5)
        for _ in range(120):
            if model.exists() and want <= {r["experiment_id"] for r in model.rows()}:
                break
            await asyncio.sleep(0.5)
        rows = {r["experiment_id"]: r for r in model.rows()}
        assert want <= set(rows)
        scored = [e for e in events if isinstance(e, ev.ScoreAssigned) and e.rescore_of is None]
        await asyncio.sleep(2)
        rows = {r["experiment_id"]: r for r in model.rows()}
        assert all(rows[e.experiment_id]["fitness"] is not None for e in scored)
    finally:
        await svc.stop()
    # the campaign started and its experiments ended, yet nothing but what was published is in the log: the
    # archive itself would have sampled the campaign's baseline (test above)
    after = {codec.decode(r.value).event_id async for r in read_log(kafka_broker, topics)}
    assert after - before == {e.event_id for e in events}
