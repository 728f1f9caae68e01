"""Replay: the database rebuilt from the log in any legal order equals the live one."""
from collections import defaultdict

import pytest

from schemas import codec
from schemas.topics import topic_for
from services.archive.projection import apply, digest
from services.archive.replay import interleave, read_log_events, replay_events
from services.archive.synthetic import synthetic_log


@pytest.fixture(scope="module")
def recorded():
    log = synthetic_log(experiments=100, seed=3)
    assert len(log) >= 1000
    return log


def test_synthetic_log_is_realistic(recorded):
    types = {e.type for e in recorded}
    assert {"ProposalRejected", "TrainingFailed", "ExperimentAbandoned", "TrainingProgress", "ScoreAssigned",
            "InsightsStored", "CognitionIngested", "ExperimentImported", "CampaignCompleted"} <= types
    assert len({e.event_id for e in recorded}) == len(recorded)
    again = synthetic_log(experiments=100, seed=3)   # deterministic apart from the random event ids
    assert [(e.type, e.experiment_id, e.occurred_at) for e in again] == \
        [(e.type, e.experiment_id, e.occurred_at) for e in recorded]


def test_interleave_keeps_per_topic_per_experiment_order(recorded):
    shuffled = interleave(recorded, seed=9)
    assert sorted(e.event_id for e in shuffled) == sorted(e.event_id for e in recorded)
    assert [e.event_id for e in shuffled] != [e.event_id for e in recorded]

    def sequences(events):
        out = defaultdict(list)
        for e in events:
            out[(topic_for(e), e.experiment_id)].append(e.event_id)
        return out

    assert sequences(shuffled) == sequences(recorded)
    # and it really mixes topics: results often come before their own experiment's sampling event
    position = {e.event_id: i for i, e in enumerate(shuffled)}
    first = {}
    for e in recorded:
        first.setdefault((e.experiment_id, e.type), position[e.event_id])
    inverted = sum(1 for (exp, t), p in first.items() if t == "ResultsReady" and p < first[(exp, "ParentSampled")])
    assert inverted > 10


def test_replay_in_shuffled_order_with_duplicates_equals_live(store_factory, recorded):
    live = store_factory("live")
    for e in recorded:            # the live archive: publication order, a commit per event
        with live.transaction():
            apply(live, e)
    live_digest = digest(live)
    experiments = live.experiments()
    assert len(experiments) >= 100
    assert {d["status"] for d in experiments} >= {"done", "abandoned", "rejected-only"}

    for seed in (1, 2):
        fresh = store_factory(f"replay{seed}")
        shuffled = interleave(recorded, seed)
        stats = replay_events(shuffled + shuffled[: len(shuffled) // 3], fresh, batch=700)
        assert stats.applied == len(recorded) and stats.duplicates == len(recorded) // 3
        assert digest(fresh) == live_digest
    # redelivery into the live store changes nothing either
    stats = replay_events(recorded[::7], live)
    assert stats.applied == 0 and digest(live) == live_digest


@pytest.mark.integration
async def test_kafka_reader_reads_every_topic_from_offset_zero(kafka_broker, tmp_path):
    from services.common.bus import make_broker, publish_events
    from services.common.settings import Settings
    from services.archive.storage.sqlite import SQLiteStore

    log = synthetic_log(experiments=8, seed=4, code_size=300)
    broker = make_broker(Settings(kafka_bootstrap=kafka_broker, data_dir=tmp_path))
    await broker.start()
    try:
        await publish_events(broker, log)
    finally:
        await broker.stop()
    events, bad = await read_log_events(kafka_broker)
    assert bad == 0 and sorted(e.event_id for e in events) == sorted(e.event_id for e in log)
    live, replayed = SQLiteStore(tmp_path / "live.sqlite"), SQLiteStore(tmp_path / "replayed.sqlite")
    replay_events(log, live)
    replay_events(events, replayed)
    assert digest(live) == digest(replayed)
    assert codec.encode(events[0]) == codec.encode(next(e for e in log if e.event_id == events[0].event_id))
