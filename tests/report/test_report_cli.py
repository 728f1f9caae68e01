"""`archlab report` against the real embedded broker: events published to their topics come back
as a report (plus a record that is not an event, which is skipped and counted)."""
from __future__ import annotations

import asyncio

import pytest
import typer
from aiokafka import AIOKafkaProducer
from typer.testing import CliRunner

from schemas import codec
from schemas.topics import topic_for
from services.cli.report import register
from tests.report.fake_campaign import fake_campaign

pytestmark = pytest.mark.integration


async def _publish(bootstrap: str, events) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for e in events:
            await producer.send(topic_for(e), codec.encode(e), key=e.key)
        await producer.send(topic_for("ResultsReady"), b"not json", key=b"x")
        await producer.flush()
    finally:
        await producer.stop()


def test_archlab_report_reads_the_log(kafka_broker, tmp_path, monkeypatch):
    events = fake_campaign(candidates=4)
    asyncio.run(_publish(kafka_broker, events))
    app = typer.Typer()
    register(app)

    @app.command()
    def _other():  # a second command, so typer keeps `report` as a subcommand name
        pass

    monkeypatch.setenv("ARCHLAB_KAFKA_BOOTSTRAP", kafka_broker)
    out = tmp_path / "r.html"
    result = CliRunner().invoke(app, ["report", "--out", str(out), "--title", "from the log"])
    assert result.exit_code == 0, result.output
    assert f"{len(events)} events" in result.output and "1 undecodable skipped" in result.output
    html = out.read_text()
    assert "from the log" in html
    from tests.report.test_report import chart_specs
    assert len(chart_specs(html)["lineage-plot"]["points"]) == 4 + 2
