"""The long-poll gateway in front of the embedded broker: idle consumers cost ~nothing, data
still arrives at once, and clients are kept on the gateway's address."""
import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.protocol.fetch import FetchResponse_v4

from services.common.kafka_gateway import fetch_is_empty

pytestmark = pytest.mark.integration


def fetch_response(records: bytes, error: int = 0) -> bytes:
    return FetchResponse_v4(0, [("t", [(0, error, 10, 10, [], records)])]).encode()


def test_fetch_is_empty_only_without_records_and_errors():
    assert fetch_is_empty(4, fetch_response(b""))
    assert not fetch_is_empty(4, fetch_response(b"\x00" * 70))
    assert not fetch_is_empty(4, fetch_response(b"", error=1))
    assert not fetch_is_empty(99, fetch_response(b""))       # unknown version: relayed, never held
    assert not fetch_is_empty(4, b"\x01\x02")                # undecodable: relayed


async def test_idle_consumer_is_cheap_and_data_still_arrives_at_once(embedded_kafka):
    bootstrap = embedded_kafka.bootstrap
    topic = "archlab.parent-sampled"
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id="gw-test", auto_offset_reset="latest",
                                fetch_max_wait_ms=1000)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await consumer.start()
    await producer.start()
    try:
        # every connection goes through the gateway: the broker's own port is never handed out
        assert {b.port for b in consumer._client.cluster.brokers()} == {embedded_kafka.port}
        received: list[float] = []

        async def drain():
            async for msg in consumer:
                received.append(time.perf_counter() - float(msg.value))
        task = asyncio.create_task(drain())
        await asyncio.sleep(3)    # joined and idle
        wall0, cpu0 = time.perf_counter(), time.process_time()
        await asyncio.sleep(5)
        idle_cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
        # without the gateway this one consumer takes 60-98 % of a core (docs/architecture.md)
        assert idle_cpu < 0.10, f"idle consumer used {idle_cpu:.0%} of a core"
        for _ in range(20):
            await producer.send_and_wait(topic, str(time.perf_counter()).encode())
            await asyncio.sleep(0.05)
        for _ in range(100):
            if len(received) == 20:
                break
            await asyncio.sleep(0.05)
        assert len(received) == 20
        # a held fetch is released by the produce, not by its 1 s max wait
        assert sorted(received)[10] < 0.5, sorted(received)
        task.cancel()
    finally:
        await consumer.stop()
        await producer.stop()
