"""Wiring: the archive subscribes to every topic in one consumer group ("archive")."""
from __future__ import annotations

import functools

from schemas.events import EVENT_TYPES
from services.archive import handlers
from services.archive.storage import open_store
from services.common.bus import Service
from services.common.settings import Settings


def build(settings: Settings | None = None) -> Service:
    svc = Service("archive", settings)
    store = open_store(svc.settings)
    handler = functools.partial(handlers.on_event, store=store)
    for cls in EVENT_TYPES.values():
        svc.on(cls, handler)

    async def republish_pending() -> None:   # decisions committed but maybe never published (crash)
        pending = handlers.pending_events(store)
        if pending:
            svc.log.info("republishing pending decisions", events=len(pending))
            await svc.publish(*pending)

    svc.on_startup(republish_pending)
    return svc


if __name__ == "__main__":
    build().run()
