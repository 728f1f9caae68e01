"""Bus throughput and hop latency on the embedded broker: FastStream (typed) vs raw aiokafka.

    python bench/bus.py [--n 2000] [--hops 200]

For each path (raw aiokafka; a typed FastStream subscriber; archlab's `Service` = FastStream +
decode + idempotency guard + DLQ wiring) it prints:
- produce: events/s when each publish awaits its acknowledgement (how services publish);
- consume: events/s draining N events already in the log with a new consumer group
  (first to last message, so the group join is not counted);
- hop: publish -> handler latency of a single event, p50/p99;
and the ratio of each typed path to raw aiokafka, all measured in the same run.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from faststream.kafka import KafkaBroker

from schemas import codec
from schemas import events as ev
from schemas.topics import topic_for
from services.common.bus import Service, ensure_topics
from services.common.embedded import EmbeddedKafka
from services.common.settings import Settings

TOPIC = topic_for(ev.TrainingProgress)


def sample(i: int) -> ev.TrainingProgress:
    return ev.TrainingProgress(campaign_id="bench", experiment_id=f"exp-{i % 64}", engineer_id="bench", step=i,
                               total_steps=10**6, loss=2.0, tokens_per_s=1e4, elapsed_s=float(i))


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


class Clock:
    """Arrival times of handled events; `wait(k)` until k have arrived."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._cond = asyncio.Condition()

    async def hit(self) -> None:
        async with self._cond:
            self.times.append(time.perf_counter())
            self._cond.notify_all()

    async def wait(self, k: int, timeout: float = 300) -> None:
        async with self._cond:
            await asyncio.wait_for(self._cond.wait_for(lambda: len(self.times) >= k), timeout)

    def rate(self, n: int) -> float:
        return (n - 1) / (self.times[n - 1] - self.times[0])


async def hops_latency(publish, clock: Clock, hops: int) -> list[float]:
    lat = []
    for i in range(hops):
        k = len(clock.times) + 1
        s = time.perf_counter()
        await publish(i)
        await clock.wait(k, 30)
        lat.append(clock.times[k - 1] - s)
    return lat


async def raw_aiokafka(bootstrap: str, n: int, hops: int) -> dict:
    payloads = [codec.encode(sample(i)) for i in range(n)]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    t0 = time.perf_counter()
    futs = [await producer.send(TOPIC, p, key=f"k{i % 64}".encode()) for i, p in enumerate(payloads)]
    await asyncio.gather(*futs)
    pipelined = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for i, p in enumerate(payloads):
        await producer.send_and_wait(TOPIC, p, key=f"k{i % 64}".encode())
    produce = n / (time.perf_counter() - t0)
    clock = Clock()
    consumer = AIOKafkaConsumer(TOPIC, bootstrap_servers=bootstrap, group_id=f"raw-{time.time_ns()}",
                                auto_offset_reset="earliest", fetch_max_wait_ms=10)

    async def drain() -> None:
        async for record in consumer:
            codec.decode(record.value)  # the same decode work the typed paths do
            await clock.hit()
    await consumer.start()
    task = asyncio.create_task(drain())
    await clock.wait(n)
    consume = clock.rate(n)
    lat = await hops_latency(lambda i: producer.send_and_wait(TOPIC, payloads[i % n], key=b"hop"), clock, hops)
    task.cancel()
    await consumer.stop()
    await producer.stop()
    return dict(produce=produce, pipelined=pipelined, consume=consume, lat=lat)


async def faststream_typed(bootstrap: str, n: int, hops: int) -> dict:
    broker = KafkaBroker(bootstrap, enable_idempotence=True, log_level=logging.DEBUG)
    clock = Clock()

    @broker.subscriber(TOPIC, group_id=f"fs-{time.time_ns()}", auto_offset_reset="earliest")
    async def handler(event: ev.TrainingProgress) -> None:
        await clock.hit()

    await broker.start()
    await clock.wait(n)
    consume = clock.rate(n)
    events = [sample(i) for i in range(n)]
    t0 = time.perf_counter()
    for e in events:
        await broker.publish(e.model_dump(mode="json"), topic=TOPIC, key=e.key)
    produce = n / (time.perf_counter() - t0)
    await clock.wait(2 * n)
    lat = await hops_latency(lambda i: broker.publish(events[i % n].model_dump(mode="json"), topic=TOPIC,
                                                      key=b"hop"), clock, hops)
    await broker.stop()
    return dict(produce=produce, consume=consume, lat=lat)


async def archlab_service(bootstrap: str, n: int, hops: int, data_dir: Path) -> dict:
    svc = Service(f"bench-{time.time_ns()}", Settings(kafka_bootstrap=bootstrap, data_dir=data_dir, partitions=12))
    clock = Clock()

    async def handler(event: ev.TrainingProgress) -> None:
        await clock.hit()
    svc.on(ev.TrainingProgress, handler)
    await svc.start()
    await clock.wait(n)
    consume = clock.rate(n)
    events = [sample(10 * n + i) for i in range(n)]  # new event ids: the guard must not skip them
    t0 = time.perf_counter()
    for e in events:
        await svc.publish(e)
    produce = n / (time.perf_counter() - t0)
    await asyncio.sleep(2)
    lat = await hops_latency(lambda i: svc.publish(sample(20 * n + i)), clock, hops)
    await svc.stop()
    return dict(produce=produce, consume=consume, lat=lat)


async def main(n: int, hops: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        broker = EmbeddedKafka(Path(tmp) / "broker").start()
        try:
            await ensure_topics(broker.bootstrap, 12)
            raw = await raw_aiokafka(broker.bootstrap, n, hops)
            fs = await faststream_typed(broker.bootstrap, n, hops)
            svc = await archlab_service(broker.bootstrap, n, hops, Path(tmp) / "svc")
        finally:
            broker.stop()
    print(f"embedded broker noida-db; {n} TrainingProgress events of {len(codec.encode(sample(0)))} B; {hops} hops")
    print(f"raw aiokafka, pipelined produce (send, then gather acks): {raw['pipelined']:.0f} ev/s")
    print(f"{'path':20} {'produce ev/s':>13} {'consume ev/s':>13} {'hop p50 ms':>11} {'hop p99 ms':>11}")
    for name, r in (("raw aiokafka", raw), ("FastStream typed", fs), ("archlab Service", svc)):
        print(f"{name:20} {r['produce']:13.0f} {r['consume']:13.0f} {pct(r['lat'], .5) * 1e3:11.2f} "
              f"{pct(r['lat'], .99) * 1e3:11.2f}")
    for name, r in (("FastStream typed", fs), ("archlab Service", svc)):
        print(f"ratio {name} / raw aiokafka: produce {r['produce'] / raw['produce']:.2f}, consume "
              f"{r['consume'] / raw['consume']:.2f}, hop p50 {pct(r['lat'], .5) / pct(raw['lat'], .5):.2f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--hops", type=int, default=200)
    a = ap.parse_args()
    asyncio.run(main(a.n, a.hops))
