"""The event contract: JSON round trips, envelope invariants, topic registry, forward compatibility,
and the committed JSON Schema / AsyncAPI documents being fresh."""
import json
from datetime import timezone
from pathlib import Path

import pytest

from schemas import codec
from schemas import events as ev
from schemas.events import EVENT_TYPES
from schemas.export import asyncapi_document, json_schemas
from schemas.topics import CONSUMERS, DEAD_LETTER_TOPIC, TOPICS, all_topics, event_type_of_topic, topic_for
from tests.common.samples import sample_event

DOCS = Path(__file__).resolve().parents[2] / "docs"
REQUIRED = {"CampaignStarted", "ParentSampled", "ProposalCreated", "ProposalRejected", "TrainingStarted",
            "TrainingProgress", "TrainingFailed", "ResultsReady", "ScoreAssigned", "InsightsStored",
            "CognitionIngested", "ExperimentAbandoned"}


def test_required_event_types_exist():
    assert REQUIRED <= set(EVENT_TYPES)


@pytest.mark.parametrize("cls", list(EVENT_TYPES.values()), ids=list(EVENT_TYPES))
def test_every_event_round_trips_through_json(cls):
    event = sample_event(cls)
    raw = codec.encode(event)
    assert json.loads(raw)["type"] == cls.__name__
    back = codec.decode(raw)
    assert type(back) is cls and back == event
    assert back.occurred_at.tzinfo is not None and back.occurred_at.utcoffset() == timezone.utc.utcoffset(None)


@pytest.mark.parametrize("cls", list(EVENT_TYPES.values()), ids=list(EVENT_TYPES))
def test_envelope_invariants(cls):
    a, b = sample_event(cls), sample_event(cls)
    assert a.event_id != b.event_id and len(a.event_id) == 32
    assert a.type == cls.__name__ and a.schema_version == cls.SCHEMA_VERSION
    assert a.key == b"exp-1"
    with pytest.raises(Exception):
        a.campaign_id = "other"  # events are immutable facts
    with pytest.raises(ValueError):
        cls.model_validate({**json.loads(codec.encode(a)), "type": "SomethingElse"})


def test_caused_events_have_deterministic_ids_and_causation():
    started = sample_event(ev.CampaignStarted)
    one = started.caused(ev.CampaignCompleted, producer="archive")
    two = started.caused(ev.CampaignCompleted, producer="archive")
    other = started.caused(ev.CampaignCompleted, producer="archive", discriminator=2)
    assert one.event_id == two.event_id != other.event_id
    assert one.causation_id == started.event_id and one.campaign_id == started.campaign_id


def test_topic_registry_covers_every_event_once():
    assert set(TOPICS) == set(EVENT_TYPES)
    names = all_topics()
    assert len(names) == len(set(names)) == len(EVENT_TYPES) + 1 and DEAD_LETTER_TOPIC in names
    for name, cls in EVENT_TYPES.items():
        assert event_type_of_topic(topic_for(cls)) == name
        assert topic_for(sample_event(cls)) == topic_for(name)
    assert set(CONSUMERS) == set(EVENT_TYPES) and all("archive" in c for c in CONSUMERS.values())
    with pytest.raises(KeyError, match="no topic"):
        topic_for("Nope")


def test_unknown_fields_are_kept():
    data = json.loads(codec.encode(sample_event(ev.ResultsReady)))
    data["gpu_model"] = "H100"
    back = codec.decode(json.dumps(data))
    assert back.model_extra == {"gpu_model": "H100"}
    assert json.loads(codec.encode(back))["gpu_model"] == "H100"  # and passed on


def test_newer_schema_version_is_rejected_clearly():
    data = json.loads(codec.encode(sample_event(ev.ScoreAssigned)))
    data["schema_version"] = 99
    with pytest.raises(codec.UnsupportedSchemaVersion, match="newer than this reader"):
        codec.decode(json.dumps(data))


def test_old_payloads_are_upcast_in_order_before_validation(monkeypatch):
    """The codec's upcaster hook: CampaignCompleted pretends to be at v3, where v1 called `reason` `why`
    and v2 added a required-by-convention `note` prefix; a v1 payload reads as a v3 event."""
    monkeypatch.setattr(ev.CampaignCompleted, "SCHEMA_VERSION", 3)
    monkeypatch.setattr(codec, "UPCASTERS", {})
    calls = []

    @codec.upcaster("CampaignCompleted", from_version=1)
    def v1_to_v2(data):
        calls.append(("v1", data["schema_version"]))
        data["reason"] = data.pop("why")
        return data

    @codec.upcaster("CampaignCompleted", from_version=2)
    def v2_to_v3(data):
        calls.append(("v2", data["schema_version"]))
        data["reason"] = "upcast: " + data["reason"]
        return data

    old = json.loads(codec.encode(sample_event(ev.CampaignCompleted)))
    old["why"] = old.pop("reason")
    old["schema_version"] = 1
    back = codec.decode(json.dumps(old))
    assert calls == [("v1", 1), ("v2", 2)]
    assert back.reason.startswith("upcast: ") and back.schema_version == 3 and "why" not in (back.model_extra or {})
    current = json.loads(codec.encode(back))   # a v3 payload is not touched again
    assert codec.decode(json.dumps(current)).reason == back.reason and len(calls) == 2
    with pytest.raises(ValueError, match="already has an upcaster"):
        codec.upcaster("CampaignCompleted", from_version=1)(v1_to_v2)
    with pytest.raises(KeyError, match="no event type"):
        codec.upcaster("NoSuchEvent", from_version=1)


def test_an_upcaster_that_cannot_read_a_payload_gives_a_typed_error(monkeypatch):
    monkeypatch.setattr(ev.CampaignCompleted, "SCHEMA_VERSION", 2)
    monkeypatch.setattr(codec, "UPCASTERS", {("CampaignCompleted", 1): lambda data: data["missing"]})
    old = json.loads(codec.encode(sample_event(ev.CampaignCompleted)))
    old["schema_version"] = 1
    with pytest.raises(codec.InvalidEvent, match="could not be upcast"):
        codec.decode(json.dumps(old))


@pytest.mark.parametrize("raw,error", [
    (b"\xff\xfe", codec.MalformedPayload), (b"[1, 2]", codec.MalformedPayload),
    (b'{"type": "Nope"}', codec.UnknownEventType),
    (b'{"type": "ResultsReady", "campaign_id": "c"}', codec.InvalidEvent),
])
def test_bad_payloads_raise_typed_errors(raw, error):
    with pytest.raises(error):
        codec.decode(raw)


def test_wrong_type_on_a_topic_is_invalid():
    raw = codec.encode(sample_event(ev.ScoreAssigned))
    with pytest.raises(codec.InvalidEvent, match="expected ResultsReady"):
        codec.decode(raw, expected=ev.ResultsReady)


def test_committed_json_schemas_are_fresh():
    for name, schema in json_schemas().items():
        path = DOCS / "schemas" / f"{name}.json"
        assert path.exists(), f"{path} missing: run `archlab schemas export`"
        assert json.loads(path.read_text()) == schema, f"{path} is stale: run `archlab schemas export`"


def test_committed_asyncapi_is_fresh():
    path = DOCS / "asyncapi.json"
    assert path.exists(), "docs/asyncapi.json missing: run `archlab schemas export`"
    doc = asyncapi_document()
    assert json.loads(path.read_text()) == doc, "docs/asyncapi.json is stale: run `archlab schemas export`"
    channels = {c["address"] for c in doc["channels"].values()}
    assert channels == set(all_topics())
