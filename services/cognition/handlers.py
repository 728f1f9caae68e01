"""The cognition service's handler: CognitionIngested -> upsert into the Milvus collection.

Every write to the base is an event, so dropping the collection and replaying the topic rebuilds it.
"""
from __future__ import annotations

import asyncio

from schemas import events as ev
from services.common.cognition_model import from_event
from services.common.cognition_base import CognitionBase


async def on_cognition_ingested(event: ev.CognitionIngested, *, base: CognitionBase) -> None:
    # in a thread: embedding (and the model's first load) would block the event loop, and with it the consumer's
    # heartbeats: the group then expires the member and redelivers (seen while the stack settled under load)
    await asyncio.to_thread(base.upsert, [from_event(event)])
