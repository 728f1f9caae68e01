"""Wiring: the archive subscribes to every topic in one consumer group ("archive").

    python -m services.archive.main              # the archive: projection + scheduler
    python -m services.archive.main --replica    # a read-only replica: the projection alone, in its own group

A replica ("archive-replica") applies every event to its own store, as a replay does, and decides nothing:
it never publishes. The web UI's container uses one writing SQLite beside it (infra/docker-compose.yml),
since at scale the archive itself writes Cassandra, which the UI does not read.
"""
from __future__ import annotations

import argparse
import functools

from schemas.events import EVENT_TYPES
from services.archive import handlers
from services.archive.storage import open_store
from services.common.bus import Service
from services.common.settings import Settings


REPLICA = "archive-replica"
# a side group (named apart from its service): a replica is on no campaign's path, so an event it cannot apply
# goes to the dead letters and ends no experiment (bus.Service.gave_up)
REPLICA_GROUP = f"{REPLICA}.projection"


def build(settings: Settings | None = None, *, replica: bool = False) -> Service:
    svc = Service(REPLICA if replica else "archive", settings)
    store = open_store(svc.settings)
    handler = functools.partial(handlers.on_event_replica if replica else handlers.on_event, store=store)
    for cls in EVENT_TYPES.values():
        svc.on(cls, handler, group=REPLICA_GROUP if replica else None)
    if replica:
        return svc

    async def republish_pending() -> None:   # decisions committed but maybe never published (crash)
        pending = handlers.pending_events(store)
        if pending:
            svc.log.info("republishing pending decisions", events=len(pending))
            await svc.publish(*pending)

    svc.on_startup(republish_pending)
    return svc


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="the archive, or a read-only replica of its projection")
    ap.add_argument("--replica", action="store_true", help="project every event into this store; decide nothing")
    build(replica=ap.parse_args().replica).run()
