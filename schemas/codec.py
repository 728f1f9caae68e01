"""Bytes <-> typed events. Events are plain JSON on the wire, so kcat and friends can tap them."""
from __future__ import annotations

import json
from typing import Any

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
        return cls.model_validate(data)
    except ValidationError as e:
        raise InvalidEvent(f"{type_name} failed validation: {e.error_count()} error(s): "
                           f"{e.errors(include_url=False)[:3]}", raw_bytes) from None
