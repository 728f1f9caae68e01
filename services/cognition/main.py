"""Wiring of the cognition service: CognitionIngested -> the Milvus collection.
`python -m services.cognition.main`.

On startup it publishes our own seed (services/cognition/seed) as CognitionIngested events with
deterministic ids: the first start fills the base, later starts publish the same facts, which
every consumer drops as duplicates.
"""
from __future__ import annotations

import functools

from schemas import events as ev
from services.cognition import handlers
from services.common.cognition_model import to_event
from services.common.cognition_base import CognitionBase
from services.cognition.seed import load_seed
from services.common.bus import Service
from services.common.settings import Settings


def build(settings: Settings | None = None, *, publish_seed: bool = True) -> Service:
    svc = Service("cognition", settings)
    base = CognitionBase.from_settings(svc.settings)
    base.embedder.embed(["warm-up"])   # load the model before "service started": `archlab up` then returns a settled stack
    svc.on(ev.CognitionIngested, functools.partial(handlers.on_cognition_ingested, base=base))

    async def seed() -> None:
        await svc.publish(*[to_event(e) for e in load_seed()])

    if publish_seed:
        svc.on_startup(seed)
    return svc


if __name__ == "__main__":
    build().run()
