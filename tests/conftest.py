"""Test-wide settings: one torch thread (2 shared cores), offline Hugging Face."""
import os

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")
# the suite's own sandbox child modules (tests.engineer.hostile, tests.security.raw_net ...): a child sees lab/ only
os.environ.setdefault("ARCHLAB_CHILD_REPO_DIRS", "lab,tests")
# the machine cache (lab/machine_cache.py: calibration, reused baselines): never the user's ~/.cache/archlab. One
# per session for module-scoped stacks; each test gets its own below, so no test reuses another's baseline.
os.environ.setdefault("ARCHLAB_CACHE_DIR", __import__("tempfile").mkdtemp(prefix="archlab-test-cache-"))

import torch  # noqa: E402

torch.set_num_threads(1)

import asyncio  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def own_machine_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHLAB_CACHE_DIR", str(tmp_path / "machine-cache"))


def shared_dir() -> Path:
    """The workplace's ../shared (third-party reference data, never committed)."""
    return Path(os.environ.get("ARCHLAB_SHARED_DIR", REPO_ROOT.parent / "shared"))


@pytest.fixture
def kafka_broker(tmp_path_factory):
    """A real Kafka-protocol broker (noida-db) on a free 127.0.0.1 port; yields its bootstrap address.

    Topics are created. The broker is stopped with SIGINT at the end of the test.
    """
    from services.common.bus import ensure_topics
    from services.common.embedded import EmbeddedKafka

    broker = EmbeddedKafka(tmp_path_factory.mktemp("kafka")).start()
    try:
        asyncio.run(ensure_topics(broker.bootstrap, partitions=4))
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture
def embedded_kafka(tmp_path_factory):
    """Like `kafka_broker` but yields the `EmbeddedKafka` object (tests that restart the broker)."""
    from services.common.bus import ensure_topics
    from services.common.embedded import EmbeddedKafka

    broker = EmbeddedKafka(tmp_path_factory.mktemp("kafka")).start()
    try:
        asyncio.run(ensure_topics(broker.bootstrap, partitions=4))
        yield broker
    finally:
        broker.stop()
