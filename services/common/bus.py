"""The broker wiring every service shares: one `Service` object per process.

    svc = Service("judge", settings)
    svc.on(ev.ResultsReady, functools.partial(handlers.on_results_ready, state=state))
    svc.run()

For each message `Service` decodes the bytes into the typed event (an undecodable payload goes
to the dead-letter topic with the error and the original bytes), skips an event_id its consumer
group already handled, calls the handler (bounded retries, then the DLQ and, on the campaign's path, the experiment's
abandonment: `gave_up`), publishes the events
the handler returns, then commits. Handlers stay plain async functions with no Kafka in them.
"""
from __future__ import annotations

import asyncio
import base64
import logging
import signal
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.middlewares import AckPolicy

from schemas import codec
from lab.lifecycle import concerns
from schemas.events import DeadLetter, Event, ExperimentAbandoned
from schemas.topics import DEAD_LETTER_TOPIC, all_topics, topic_for
from services.common import endpoints
from services.common.idempotency import IdempotencyGuard
from services.common.logging import configure_logging, get_logger
from services.common.settings import Settings, get_settings

Handler = Callable[[Event], Awaitable[Iterable[Event] | None]]


def make_broker(settings: Settings, client_id: str = "archlab") -> KafkaBroker:
    """The FastStream KafkaBroker for the configured (or embedded) Kafka."""
    # Per-message "Received/Processed" lines go to DEBUG: our own structured log says what happened.
    quiet = logging.getLogger("archlab.faststream")
    quiet.setLevel(logging.WARNING)
    return KafkaBroker(endpoints.kafka_bootstrap(settings), client_id=client_id,
                       enable_idempotence=True, log_level=logging.DEBUG, logger=quiet)


async def ensure_topics(bootstrap: str, partitions: int, replication_factor: int = 1) -> list[str]:
    """Create every topic of the registry that does not exist yet; returns the ones created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in all_topics() if t not in existing]
        if missing:
            await admin.create_topics([NewTopic(t, partitions, replication_factor) for t in missing])
        return missing
    finally:
        await admin.close()


async def publish_events(broker: KafkaBroker, events: Iterable[Event]) -> list:
    """Publish in order, each acknowledged before the next; returns each record's metadata (topic, partition,
    offset), which the engineer needs to read its own claim back."""
    return [await broker.publish(codec.encode(event), topic=topic_for(event), key=event.key,
                                 headers={"content-type": "application/json", "event-type": event.type})
            for event in events]


async def publish_once(settings: Settings, *events: Event, client_id: str = "archlab-cli") -> None:
    """Publish events from a short-lived process (the CLI): connect, publish, disconnect."""
    broker = make_broker(settings, client_id=client_id)
    await broker.start()
    try:
        await publish_events(broker, events)
    finally:
        await broker.stop()


@dataclass
class _Route:
    event_cls: type[Event]
    fn: Handler


class Service:
    def __init__(self, name: str, settings: Settings | None = None):
        self.name = name
        self.settings = settings or get_settings()
        configure_logging(name)
        self.log = get_logger(service=name)
        self._routes: dict[str, dict[str, _Route]] = {}   # group -> topic -> route
        self._startup: list[Callable[[], Awaitable[None]]] = []
        self._broker: KafkaBroker | None = None
        self._guard: IdempotencyGuard | None = None
        self._stop = asyncio.Event()

    # ---------------------------------------------------------------- wiring
    @property
    def broker(self) -> KafkaBroker:
        if self._broker is None:
            self._broker = make_broker(self.settings, client_id=self.name)
        return self._broker

    @property
    def guard(self) -> IdempotencyGuard:
        if self._guard is None:
            self._guard = IdempotencyGuard(Path(self.settings.data_dir) / "idempotency" / f"{self.name}.sqlite")
        return self._guard

    def on(self, event_cls: type[Event], fn: Handler, *, group: str | None = None) -> None:
        """Call `fn(event)` for every `event_cls` event; `group` defaults to the service name."""
        routes = self._routes.setdefault(group or self.name, {})
        topic = topic_for(event_cls)
        if topic in routes:
            raise ValueError(f"{event_cls.__name__} already has a handler in group {group or self.name}")
        routes[topic] = _Route(event_cls, fn)

    def on_startup(self, fn: Callable[[], Awaitable[None]]) -> None:
        self._startup.append(fn)

    async def publish(self, *events: Event) -> list:
        return await publish_events(self.broker, events)

    # ---------------------------------------------------------------- one message
    async def handle(self, group: str, topic: str, raw: bytes, *, partition: int | None = None,
                     offset: int | None = None, key: bytes | None = None) -> list[Event]:
        """Decode, deduplicate, call the handler with retries, publish; DLQ on failure.

        Returns the events published. Raises only when publishing itself fails (the broker is
        away): the message is then not committed and comes back.
        """
        route = self._routes[group][topic]
        where = dict(group=group, topic=topic, partition=partition, offset=offset)
        try:
            event = codec.decode(raw, expected=route.event_cls)
        except codec.EventDecodeError as e:
            self.log.error("undecodable event", error_kind=e.kind, error=str(e), **where)
            await self.dead_letter(group, topic, raw, e.kind, str(e), partition=partition, offset=offset, key=key)
            return []
        with structlog.contextvars.bound_contextvars(event_id=event.event_id, experiment_id=event.experiment_id,
                                                     event_type=event.type):
            if self.guard.seen(group, event.event_id):
                self.log.info("duplicate delivery skipped", **where)
                return []
            attempts = self.settings.handler_retries + 1
            for attempt in range(1, attempts + 1):
                try:
                    produced = list(await route.fn(event) or [])
                    break
                except Exception as e:  # noqa: BLE001 - a handler bug must never crash the service
                    tb = traceback.format_exc()
                    self.log.warning("handler failed", attempt=attempt, of=attempts, error=repr(e), **where)
                    if attempt == attempts:
                        await self.dead_letter(group, topic, raw, "handler_error", repr(e), tb=tb,
                                                attempts=attempts, event_id=event.event_id,
                                                partition=partition, offset=offset, key=key)
                        gave_up = self.gave_up(group, event, attempts, e)
                        await self.publish(*gave_up)
                        self.guard.mark(group, event.event_id)
                        return gave_up
                    await asyncio.sleep(min(0.2 * 2 ** attempt, 5.0))
            await self.publish(*produced)
            self.guard.mark(group, event.event_id)
            if produced:
                self.log.info("handled", published=[e.type for e in produced], **where)
            return produced

    def gave_up(self, group: str, event: Event, attempts: int, error: Exception) -> list[Event]:
        """What the campaign learns when a handler on its path exhausts its retries: the experiment ends
        (ExperimentAbandoned, reason `handler_error`, the service, the event and the error), so the campaign
        never waits for it in silence (docs/archive.md, "A handler that gives up"). Only the service's own
        group is on the campaign's path; side groups (memories, routing) lose nothing the campaign waits for.
        An event about a campaign or a paper, not an experiment, has nothing to end."""
        if group != self.name or not concerns(event) or event.experiment_id == event.campaign_id:
            return []
        self.log.error("handler gave up: the experiment is abandoned", attempts=attempts, error=repr(error))
        return [ExperimentAbandoned(
            campaign_id=event.campaign_id, experiment_id=event.experiment_id, causation_id=event.event_id,
            producer=self.name, attempts=attempts,
            reason=f"handler_error: {self.name} could not handle {event.type} after {attempts} attempts: "
                   f"{repr(error)[:300]}")]

    async def dead_letter(self, group: str, topic: str, raw: bytes, kind: str, error: str, *, tb: str = "",
                           attempts: int = 0, event_id: str | None = None, partition: int | None = None,
                           offset: int | None = None, key: bytes | None = None) -> None:
        try:
            text, b64 = raw.decode(), None
        except UnicodeDecodeError:
            text, b64 = None, base64.b64encode(raw).decode()
        letter = DeadLetter(service=self.name, group=group, topic=topic, partition=partition, offset=offset,
                            key=key.decode(errors="replace") if key else None, error_kind=kind, error=error,
                            traceback=tb, attempts=attempts, event_id=event_id, payload_text=text, payload_b64=b64)
        await self.broker.publish(letter.model_dump_json().encode(), topic=DEAD_LETTER_TOPIC, key=key,
                                  headers={"content-type": "application/json"})

    # ---------------------------------------------------------------- lifecycle
    def _subscribe(self) -> None:
        for group, routes in self._routes.items():
            topics = sorted(routes)

            self.broker.subscriber(*topics, group_id=group, auto_offset_reset="earliest",
                                   ack_policy=AckPolicy.NACK_ON_ERROR,
                                   max_poll_interval_ms=10 * 60 * 1000,
                                   fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
                                   group_instance_id=f"{self.settings.instance_id}.{group}"
                                   if self.settings.instance_id else None)(self._consumer(group))

    def _consumer(self, group: str):
        async def consume(body: Any, message: KafkaMessage) -> None:
            raw = message.raw_message
            await self.handle(group, raw.topic, message.body, partition=raw.partition, offset=raw.offset,
                              key=raw.key)
        return consume

    async def start(self) -> None:
        await ensure_topics(endpoints.kafka_bootstrap(self.settings), self.settings.partitions,
                            self.settings.replication_factor)
        self._subscribe()
        await self.broker.start()
        for fn in self._startup:
            await fn()
        self.log.info("service started", groups=sorted(self._routes),
                      bootstrap=endpoints.kafka_bootstrap(self.settings))

    async def stop(self) -> None:
        if self._broker is not None:
            await self._broker.stop()
        if self._guard is not None:
            self._guard.close()
        self.log.info("service stopped")

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stop.set)
        await self.start()
        try:
            await self._stop.wait()
        finally:
            await self.stop()

    def run(self) -> None:
        """Blocking entry point of `python -m services.<name>.main`."""
        asyncio.run(self.serve())
