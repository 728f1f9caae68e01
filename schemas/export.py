"""Machine-readable contract: JSON Schema of every event and the AsyncAPI document.

Both are committed under docs/ (`archlab schemas export`) and a test checks they are fresh.
"""
from __future__ import annotations

import json
from pathlib import Path

from schemas.events import EVENT_TYPES, DeadLetter
from schemas.topics import CONSUMERS, DEAD_LETTER_TOPIC, topic_for


def json_schemas() -> dict[str, dict]:
    out = {name: cls.model_json_schema() for name, cls in sorted(EVENT_TYPES.items())}
    out["DeadLetter"] = DeadLetter.model_json_schema()
    return out


def asyncapi_document() -> dict:
    """The AsyncAPI 3 document FastStream generates for a broker declaring every channel of the lab."""
    from faststream.kafka import KafkaBroker
    from faststream.specification import AsyncAPI

    broker = KafkaBroker("kafka:9092")
    for name, cls in sorted(EVENT_TYPES.items()):
        topic = topic_for(cls)
        broker.publisher(topic, title=f"{topic}:publish", schema=cls, description=cls.__doc__)
        for consumer in CONSUMERS.get(name, ()):
            def handler(event: cls) -> None:  # noqa: B023 - declaration only, never called
                return None
            handler.__name__ = f"{consumer}_on_{name}"
            broker.subscriber(topic, group_id=consumer, title=f"{topic}:{consumer}",
                              description=f"{consumer} consumes {name}")(handler)
    broker.publisher(DEAD_LETTER_TOPIC, title=f"{DEAD_LETTER_TOPIC}:publish", schema=DeadLetter,
                     description=DeadLetter.__doc__)
    spec = AsyncAPI(broker, title="archlab", version="1",
                    description="Events of the archlab autonomous architecture-research lab. "
                                "One topic per event type; the Kafka key is experiment_id.")
    return json.loads(spec.to_specification().to_json())


def export(out_dir: Path) -> list[Path]:
    """Write docs/schemas/<Event>.json and docs/asyncapi.json; returns the paths written."""
    out_dir = Path(out_dir)
    (out_dir / "schemas").mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in json_schemas().items():
        path = out_dir / "schemas" / f"{name}.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    path = out_dir / "asyncapi.json"
    path.write_text(json.dumps(asyncapi_document(), indent=2, sort_keys=True) + "\n")
    written.append(path)
    return written
