"""Read topics straight from the log, outside any consumer group: `archlab tap`, replay, audits.

Assigns every partition of the given topics, seeks to the beginning (or the end), and yields
records until the end offsets captured at the start (or forever with `follow=True`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import AsyncIterator

from aiokafka import AIOKafkaConsumer, TopicPartition


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int


async def read_log(bootstrap: str, topics: list[str], *, from_beginning: bool = True, follow: bool = False,
                   poll_ms: int = 500) -> AsyncIterator[Record]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                fetch_max_wait_ms=min(poll_ms, 1000))
    await consumer.start()
    try:
        existing = await consumer.topics()
        parts: list[TopicPartition] = []
        for topic in topics:
            if topic not in existing:
                continue
            for p in sorted(consumer.partitions_for_topic(topic) or []):
                parts.append(TopicPartition(topic, p))
        if not parts:
            return
        consumer.assign(parts)
        if from_beginning:
            await consumer.seek_to_beginning(*parts)
        else:
            await consumer.seek_to_end(*parts)
        end = await consumer.end_offsets(parts)
        remaining = {tp for tp in parts if (await consumer.position(tp)) < end[tp]}
        while follow or remaining:
            batch = await consumer.getmany(timeout_ms=poll_ms, max_records=1000)
            for tp, records in batch.items():
                for r in records:
                    yield Record(r.topic, r.partition, r.offset, r.key, r.value, r.timestamp)
                    if not follow and r.offset >= end[tp] - 1:
                        remaining.discard(tp)
            if not follow and not batch:
                # Compacted or transactional gaps: trust positions, not the last offset seen.
                for tp in list(remaining):
                    if (await consumer.position(tp)) >= end[tp]:
                        remaining.discard(tp)
    finally:
        await consumer.stop()


async def end_offsets(bootstrap: str, topics: list[str]) -> dict[tuple[str, int], int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        existing = await consumer.topics()
        parts = [TopicPartition(t, p) for t in topics if t in existing
                 for p in sorted(consumer.partitions_for_topic(t) or [])]
        return {(tp.topic, tp.partition): off for tp, off in (await consumer.end_offsets(parts)).items()}
    finally:
        await consumer.stop()
