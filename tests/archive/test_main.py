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
