"""Bytes <-> typed events. Events are plain JSON on the wire, so kcat and friends can tap them.

Old events stay readable. When an event's fields change incompatibly, raise its class's
`SCHEMA_VERSION` and register an upcaster that turns the old payload into the new one:

    @upcaster("ScoreAssigned", from_version=1)
    def _score_v1_to_v2(data: dict) -> dict:
        data["loss_score"] = data.pop("loss_component")
        return data

`decode` applies them in order (v1 -> v2 -> v3) before validation. An additive change (a new
optional field) needs no upcaster and no version bump: readers keep unknown fields and fill defaults.
"""
from __future__ import annotations

import json
from typing import Any, Callable

from pydantic import ValidationError

from schemas.events import EVENT_TYPES, Event


class EventDecodeError(ValueError):
    """A payload that cannot become a typed event. `kind` names why; the DLQ records it."""
    kind = "invalid"

    def __init__(self, message: str, raw: bytes | None = None):
        super().__init__(message)
        self.raw = raw


class MalformedPayload(EventDecodeError):
    kind = "malformed"


class UnknownEventType(EventDecodeError):
    kind = "unknown_type"


class UnsupportedSchemaVersion(EventDecodeError):
    kind = "unsupported_version"


class InvalidEvent(EventDecodeError):
    kind = "invalid"


Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
UPCASTERS: dict[tuple[str, int], Upcaster] = {}   # (event type, version v) -> payload v to payload v + 1


def upcaster(type_name: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Register `fn` as the upcaster of `type_name` payloads of version `from_version` (to the next)."""
    if type_name not in EVENT_TYPES:
        raise KeyError(f"no event type {type_name!r}; known: {sorted(EVENT_TYPES)}")

    def register(fn: Upcaster) -> Upcaster:
        key = (type_name, from_version)
        if key in UPCASTERS:
            raise ValueError(f"{type_name} v{from_version} already has an upcaster: {UPCASTERS[key].__name__}")
        UPCASTERS[key] = fn
        return fn
    return register


def upcast(data: dict[str, Any], cls: type[Event]) -> dict[str, Any]:
    """The payload at `cls.SCHEMA_VERSION`: each registered upcaster from its version on, in order."""
    version = data.get("schema_version", 1)
    while version < cls.SCHEMA_VERSION:
        fn = UPCASTERS.get((cls.__name__, version))
        data = fn(dict(data)) if fn is not None else dict(data)
        version += 1
        data["schema_version"] = version
    return data


def encode(event: Event) -> bytes:
    return event.model_dump_json().encode()


def decode(raw: bytes | str | dict[str, Any], expected: type[Event] | None = None) -> Event:
    """Parse a payload into its typed event, or raise an `EventDecodeError` saying why."""
    raw_bytes = raw if isinstance(raw, bytes) else (raw.encode() if isinstance(raw, str) else None)
    if isinstance(raw, dict):
        data = raw
    else:
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise MalformedPayload(f"payload is not JSON: {e}", raw_bytes) from None
    if not isinstance(data, dict):
        raise MalformedPayload(f"payload is a JSON {type(data).__name__}, not an object", raw_bytes)
    type_name = data.get("type")
    cls = EVENT_TYPES.get(type_name) if isinstance(type_name, str) else None
    if cls is None:
        raise UnknownEventType(f"unknown event type {type_name!r}", raw_bytes)
    if expected is not None and cls is not expected:
        raise InvalidEvent(f"expected {expected.__name__} on this topic, got {type_name}", raw_bytes)
    version = data.get("schema_version", 1)
    if not isinstance(version, int) or version < 1:
        raise InvalidEvent(f"schema_version must be a positive integer, got {version!r}", raw_bytes)
    if version > cls.SCHEMA_VERSION:
        raise UnsupportedSchemaVersion(
            f"{type_name} schema_version {version} is newer than this reader's {cls.SCHEMA_VERSION}; "
            f"upgrade archlab to read it", raw_bytes)
    try:
        data = upcast(data, cls)
    except Exception as e:  # noqa: BLE001 - an upcaster that cannot read this payload: a clear, recorded error
        raise InvalidEvent(f"{type_name} v{version} could not be upcast: {e!r}", raw_bytes) from None
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise InvalidEvent(f"{type_name} failed validation: {e.error_count()} error(s): "
                           f"{e.errors(include_url=False)[:3]}", raw_bytes) from None
