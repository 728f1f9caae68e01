"""The bus against a real Kafka-protocol broker (noida-db): typed delivery, order, DLQ, idempotency,
and durability across a SIGINT restart. No TestKafkaBroker here: this is the integration proof."""
import asyncio
import json

import pytest

from schemas import codec
from schemas import events as ev
from schemas.events import EVENT_TYPES
from schemas.topics import DEAD_LETTER_TOPIC, topic_for
from services.common.bus import Service, ensure_topics, publish_events
from services.common.log_reader import read_log
from services.common.settings import Settings
from tests.common.samples import sample_event

pytestmark = pytest.mark.integration


async def wait_for(predicate, timeout=30.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.05)


def make_service(name, bootstrap, tmp_path):
    return Service(name, Settings(kafka_bootstrap=bootstrap, data_dir=tmp_path / name, partitions=4,
                                  handler_retries=1))


async def test_every_event_type_reaches_two_groups_typed_and_in_order(kafka_broker, tmp_path):
    seen = {"g1": [], "g2": []}
    services = []
    for group in seen:
        svc = make_service(f"svc-{group}", kafka_broker, tmp_path)
        for cls in EVENT_TYPES.values():
            async def handler(event, _g=group):
                seen[_g].append(event)
            svc.on(cls, handler)
        services.append(svc)
    for svc in services:
        await svc.start()
    try:
        sent = [sample_event(cls, experiment_id="exp-order") for cls in EVENT_TYPES.values()]
        # Per-experiment order: five progress events of one experiment on one topic.
        progress = [ev.TrainingProgress(campaign_id="c", experiment_id="exp-p", engineer_id="e", step=i,
                                        total_steps=5) for i in range(5)]
        await publish_events(services[0].broker, sent + progress)
        total = len(sent) + len(progress)
        await wait_for(lambda: all(len(v) == total for v in seen.values()))
        for group, got in seen.items():
            by_id = {e.event_id: e for e in got}
            for e in sent:
                assert type(by_id[e.event_id]) is type(e)
                assert by_id[e.event_id] == e
            steps = [e.step for e in got if isinstance(e, ev.TrainingProgress) and e.experiment_id == "exp-p"]
            assert steps == [0, 1, 2, 3, 4]
    finally:
        for svc in services:
            await svc.stop()


async def test_malformed_payload_goes_to_dlq_and_next_event_is_processed(kafka_broker, tmp_path):
    got = []
    svc = make_service("judge-like", kafka_broker, tmp_path)

    async def handler(event):
        if event.name == "explode":
            raise RuntimeError("handler bug")
        got.append(event)
    svc.on(ev.ResultsReady, handler)
    await svc.start()
    try:
        topic = topic_for(ev.ResultsReady)
        await svc.broker.publish(b"{not json", topic=topic, key=b"exp-1")
        await svc.broker.publish(json.dumps({"type": "ResultsReady", "campaign_id": "c"}).encode(), topic=topic,
                                 key=b"exp-1")
        bad_handler = ev.ResultsReady(campaign_id="c", experiment_id="exp-1", name="explode")
        good = ev.ResultsReady(campaign_id="c", experiment_id="exp-1", name="good", final_loss=1.0)
        await svc.publish(bad_handler, good)
        await wait_for(lambda: len(got) == 1)
        assert got[0].event_id == good.event_id
        letters = []
        async def collect():
            async for rec in read_log(kafka_broker, [DEAD_LETTER_TOPIC]):
                letters.append(json.loads(rec.value))
        for _ in range(100):
            letters.clear()
            await collect()
            if len(letters) >= 3:
                break
            await asyncio.sleep(0.1)
        kinds = sorted(letter["error_kind"] for letter in letters)
        assert kinds == ["handler_error", "invalid", "malformed"]
        malformed = next(x for x in letters if x["error_kind"] == "malformed")
        assert malformed["payload_text"] == "{not json" and malformed["topic"] == topic
        crashed = next(x for x in letters if x["error_kind"] == "handler_error")
        assert "handler bug" in crashed["error"] and crashed["event_id"] == bad_handler.event_id
        assert crashed["attempts"] == 2
    finally:
        await svc.stop()


async def test_same_event_id_twice_is_handled_once(kafka_broker, tmp_path):
    got = []
    svc = make_service("archive-like", kafka_broker, tmp_path)

    async def handler(event):
        got.append(event.event_id)
        return [event.caused(ev.ScoreAssigned, producer="test", fitness=0.5)]
    svc.on(ev.ResultsReady, handler)
    await svc.start()
    try:
        e = ev.ResultsReady(campaign_id="c", experiment_id="exp-dup", name="x", final_loss=1.0)
        marker = ev.ResultsReady(campaign_id="c", experiment_id="exp-dup", name="marker", final_loss=1.0)
        await svc.publish(e, e, marker)
        await wait_for(lambda: marker.event_id in got)
        assert got.count(e.event_id) == 1
        # The reply was published once, with a deterministic id.
        scores = [codec.decode(r.value) async for r in read_log(kafka_broker, [topic_for(ev.ScoreAssigned)])]
        assert len([s for s in scores if s.causation_id == e.event_id]) == 1
    finally:
        await svc.stop()


async def test_events_and_committed_offsets_survive_a_sigint_restart(embedded_kafka, tmp_path):
    from services.common.embedded import EmbeddedKafka

    got = []
    svc = make_service("durable", embedded_kafka.bootstrap, tmp_path)

    async def handler(event):
        got.append(event.event_id)
    svc.on(ev.InsightsStored, handler)
    await svc.start()
    first = [ev.InsightsStored(campaign_id="c", experiment_id=f"e{i}") for i in range(3)]
    await svc.publish(*first)
    await wait_for(lambda: len(got) == 3)
    await asyncio.sleep(1.0)  # let the commit land
    await svc.stop()
    assert embedded_kafka.stop(), "broker did not stop on SIGINT"

    restarted = EmbeddedKafka(embedded_kafka.data_dir, port=embedded_kafka.port).start()
    try:
        stored = [codec.decode(r.value).event_id async for r in read_log(restarted.bootstrap,
                                                                         [topic_for(ev.InsightsStored)])]
        assert sorted(stored) == sorted(e.event_id for e in first)
        # A fresh process of the same group (new idempotency file) resumes after the committed offsets.
        got2 = []
        svc2 = Service("durable", Settings(kafka_bootstrap=restarted.bootstrap, data_dir=tmp_path / "fresh",
                                           partitions=4))

        async def handler2(event):
            got2.append(event.event_id)
        svc2.on(ev.InsightsStored, handler2)
        await svc2.start()
        later = ev.InsightsStored(campaign_id="c", experiment_id="e9")
        await svc2.publish(later)
        await wait_for(lambda: later.event_id in got2)
        assert got2 == [later.event_id], "committed offsets were lost: old events redelivered"
        await svc2.stop()
    finally:
        restarted.stop()


async def test_a_handler_that_gives_up_ends_its_experiment_with_the_cause(kafka_broker, tmp_path):
    """Issue 27: the analyst-style failure (a handler raising on every attempt) is not silent. The input goes to the
    dead-letter topic, and on the service's own group the experiment is abandoned, naming the service, the event
    and the error; a side group's failure only dead-letters."""
    svc = make_service("analyst", kafka_broker, tmp_path)

    async def broken(event):
        raise RuntimeError("Collection 'cognitions' is in state 'released'")

    async def side(event):
        raise RuntimeError("side memory down")

    svc.on(ev.ScoreAssigned, broken)
    svc.on(ev.ProposalCreated, side, group="analyst-memory")
    await svc.start()
    try:
        score = sample_event(ev.ScoreAssigned, experiment_id="exp-gives-up", campaign_id="camp-gives-up")
        proposal = sample_event(ev.ProposalCreated, experiment_id="exp-side", campaign_id="camp-gives-up")
        await publish_events(svc.broker, [score, proposal])
        abandoned, letters = [], []

        async def collect():
            async for rec in read_log(kafka_broker, [topic_for(ev.ExperimentAbandoned), DEAD_LETTER_TOPIC],
                                      follow=True, poll_ms=200):
                if rec.topic == DEAD_LETTER_TOPIC:
                    letters.append(json.loads(rec.value))
                else:
                    abandoned.append(codec.decode(rec.value))
                if len(letters) >= 2 and abandoned:
                    return
        await asyncio.wait_for(collect(), 60)
    finally:
        await svc.stop()
    assert {(d["group"], d["event_id"]) for d in letters} == {("analyst", score.event_id),
                                                              ("analyst-memory", proposal.event_id)}
    (gave_up,) = abandoned
    assert gave_up.experiment_id == "exp-gives-up" and gave_up.causation_id == score.event_id
    assert gave_up.reason.startswith("handler_error: analyst could not handle ScoreAssigned after 2 attempts")
    assert "released" in gave_up.reason
