"""Where the broker and the vector store are: from settings, else from the embedded stack.

`archlab up` writes `<data_dir>/stack.json` with the addresses it started; a service that has no
`ARCHLAB_KAFKA_BOOTSTRAP` / `ARCHLAB_MILVUS_URI` reads them from there. Pointing the settings at
an existing Kafka or Milvus skips the embedded ones: the same code path serves both.
"""
from __future__ import annotations

import json
from pathlib import Path

from services.common.settings import Settings


class StackNotRunning(RuntimeError):
    pass


def stack_file(settings: Settings) -> Path:
    return Path(settings.data_dir) / "stack.json"


def read_stack(settings: Settings) -> dict:
    path = stack_file(settings)
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def kafka_bootstrap(settings: Settings) -> str:
    if settings.kafka_bootstrap:
        return settings.kafka_bootstrap
    addr = read_stack(settings).get("kafka")
    if not addr:
        raise StackNotRunning(
            f"no Kafka broker: set ARCHLAB_KAFKA_BOOTSTRAP or start the embedded stack with "
            f"`archlab up` (looked for {stack_file(settings)})")
    return addr


def milvus_uri(settings: Settings) -> str:
    if settings.milvus_uri:
        return settings.milvus_uri
    uri = read_stack(settings).get("milvus")
    if uri:
        return uri
    # No server: an in-process milvus-lite file (one process per file; fine for tools and tests).
    return str(Path(settings.data_dir) / "milvus.db")
