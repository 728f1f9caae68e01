"""schemas/topics.py's CONSUMERS (the event-flow map the AsyncAPI document is built from) against what
every service really subscribes to: each service is built by its own wiring (`main.build`), with an
LLM configured so that optional consumer groups (the planner's routing) exist, and its routes are read.
Heavy dependencies (Milvus, embedding models) are replaced: the subject here is the wiring only."""
from __future__ import annotations

from collections import defaultdict

import pytest

from schemas.events import EVENT_TYPES
from schemas.topics import CONSUMERS
from services.common.settings import Settings


class _Router:   # the planner's bandit: only its observe methods are wired
    def observe_proposal(self, event): ...
    def observe_rejection(self, event): ...
    def observe_score(self, event): ...


@pytest.fixture
def settings(tmp_path):
    return Settings(data_dir=tmp_path, llm_base_url="http://127.0.0.1:9/v1", llm_models_planner=["a", "b"],
                    kafka_bootstrap="127.0.0.1:9")


class _NoBase:
    """No Milvus, no model: build() only warms the embedder up."""
    class embedder:
        @staticmethod
        def embed(texts):
            return [[0.0] for _ in texts]


def _services(settings, monkeypatch):
    from services.analyst import main as analyst
    from services.archive import main as archive
    from services.cognition import main as cognition
    from services.debugger import main as debugger
    from services.judge import main as judge
    from services.researcher import main as researcher

    monkeypatch.setattr(researcher, "build_deps", lambda s, **_: {"router": _Router(), "novelty": None})
    monkeypatch.setattr(cognition.CognitionBase, "from_settings", classmethod(lambda cls, s: _NoBase()))
    monkeypatch.setattr(analyst, "make_cognition_base", lambda s: None)
    return [archive.build(settings), cognition.build(settings, publish_seed=False), researcher.build(settings),
            judge.build(settings), analyst.build(settings), debugger.build(settings)]


def test_consumers_match_every_service_subscription(settings, monkeypatch):
    from services.engineer.worker import WORK_EVENTS

    real: dict[str, set[str]] = defaultdict(set)
    for svc in _services(settings, monkeypatch):
        for group, routes in svc._routes.items():
            for topic, route in routes.items():
                real[route.event_cls.__name__].add(group)
    for cls in WORK_EVENTS:   # the engineer reads its work partitions directly (no consumer group)
        real[cls.__name__].add("engineer")
    documented = {t: set(groups) for t, groups in CONSUMERS.items() if groups}
    assert dict(real) == documented, (
        "update schemas/topics.py CONSUMERS (then `archlab schemas export` for docs/asyncapi.json): "
        f"missing {_diff(real, documented)}, stale {_diff(documented, real)}")
    assert set(CONSUMERS) == set(EVENT_TYPES)


def _diff(a, b):
    return {t: sorted(a[t] - b.get(t, set())) for t in a if a[t] - b.get(t, set())}
