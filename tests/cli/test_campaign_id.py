"""`archlab run --campaign-id`: an id the log already holds is found there (the refusal itself runs in
tests/e2e/test_campaign.py, against a stack that ran a campaign)."""
import asyncio

import pytest
from aiokafka import AIOKafkaProducer

from schemas import codec
from schemas import events as ev
from schemas.topics import topic_for
from services.cli.campaign import campaign_in_log

pytestmark = pytest.mark.integration


async def publish(bootstrap: str, *events: ev.Event) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for event in events:
            await producer.send_and_wait(topic_for(type(event)), codec.encode(event))
    finally:
        await producer.stop()


def test_campaign_in_log_finds_only_a_started_campaign(kafka_broker):
    started = ev.CampaignStarted(campaign_id="c-pinned", experiment_id="c-pinned", producer="cli", name="c-pinned",
                                 profile="cpu-micro", budget=1, concurrency=1, seed=0)
    other = ev.InsightsStored(campaign_id="c-only-insights", experiment_id="e1")
    asyncio.run(publish(kafka_broker, started, other))
    assert asyncio.run(campaign_in_log(kafka_broker, "c-pinned"))
    assert not asyncio.run(campaign_in_log(kafka_broker, "c-only-insights"))   # not started: not a campaign
    assert not asyncio.run(campaign_in_log(kafka_broker, "c-other"))
