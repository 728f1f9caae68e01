"""Helpers for the engineer's integration tests on the embedded broker."""
import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas import codec
from schemas.events import EVENT_TYPES
from schemas.topics import topic_for
from services.common.bus import publish_events
from services.common.settings import Settings


def settings_for(bootstrap, data_dir, **kw) -> Settings:
    """A test's settings: its data dir is also its machine cache unless `cache_dir` says otherwise."""
    kw.setdefault("cache_dir", data_dir)
    return Settings(kafka_bootstrap=bootstrap, data_dir=data_dir, partitions=4, handler_retries=1, **kw)


class Collector:
    """Reads every event topic from the beginning (no group) into `events`."""

    def __init__(self, bootstrap):
        self.bootstrap, self.events, self._task = bootstrap, [], None

    async def __aenter__(self):
        self.consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False)
        await self.consumer.start()
        tps = []
        for cls in EVENT_TYPES.values():
            parts = self.consumer.partitions_for_topic(topic_for(cls))
            while not parts:
                await self.consumer.topics()
                await asyncio.sleep(0.1)
                parts = self.consumer.partitions_for_topic(topic_for(cls))
            tps += [TopicPartition(topic_for(cls), p) for p in parts]
        self.consumer.assign(tps)
        await self.consumer.seek_to_beginning(*tps)
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self):
        while True:
            batches = await self.consumer.getmany(timeout_ms=200)
            for msgs in batches.values():
                self.events += [codec.decode(m.value) for m in msgs]

    async def __aexit__(self, *exc):
        self._task.cancel()
        await self.consumer.stop()

    def of(self, cls, **match):
        return [e for e in self.events if isinstance(e, cls) and all(getattr(e, k) == v for k, v in match.items())]

    async def wait_for(self, predicate, timeout=60.0):
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            if asyncio.get_running_loop().time() > deadline:
                types = [(e.type, e.experiment_id) for e in self.events]
                raise TimeoutError(f"condition not met in {timeout} s; events: {types[-40:]}")
            await asyncio.sleep(0.1)


async def publish(bootstrap, *events):
    from services.common.bus import make_broker
    broker = make_broker(Settings(kafka_bootstrap=bootstrap))
    await broker.start()
    try:
        await publish_events(broker, events)
    finally:
        await broker.stop()
