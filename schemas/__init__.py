"""The event contract of archlab: one pydantic model per event, one envelope, one topic per type.

No I/O lives here. Services import `schemas.events` for the models, `schemas.topics` for topic
names, and `schemas.codec` to turn bytes into typed events (and back).
"""
from schemas.events import EVENT_TYPES, Event  # noqa: F401
