"""The topic registry: the only place topic names are written. One topic per event type."""
from __future__ import annotations

import re
from dataclasses import dataclass

from schemas.events import EVENT_TYPES, Event

PREFIX = "archlab."
DEAD_LETTER_TOPIC = PREFIX + "dead-letter"
DEFAULT_PARTITIONS = 12


def _kebab(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


@dataclass(frozen=True)
class TopicSpec:
    name: str
    event_type: str | None  # None for the dead-letter topic


# Who reacts to what (documentation of the event flow; the AsyncAPI document is built from it and a
# test checks it against each service's wiring). The archive consumes every topic.
CONSUMERS: dict[str, tuple[str, ...]] = {
    "CampaignStarted": ("judge", "archive"),
    "ParentSampled": ("researcher", "debugger-memory", "archive"),
    "ProposalCreated": ("engineer", "researcher-novelty", "debugger-memory", "judge", "analyst", "archive"),
    "ProposalRejected": ("archive",),
    "TrainingStarted": ("engineer", "archive"),
    "TrainingProgress": ("engineer", "archive"),
    "TrainingFailed": ("engineer", "debugger", "archive"),
    "ResultsReady": ("engineer", "judge", "analyst", "archive"),
    "ScoreAssigned": ("analyst", "archive"),
    "InsightsStored": ("archive",),
    "CognitionIngested": ("cognition", "archive"),
    "ExperimentAbandoned": ("archive",),
    "ExperimentImported": ("archive",),
    "CampaignCompleted": ("archive",),
}

TOPICS: dict[str, TopicSpec] = {t: TopicSpec(PREFIX + _kebab(t), t) for t in EVENT_TYPES}


def topic_for(event: type[Event] | Event | str) -> str:
    """Topic name of an event class, instance or type name."""
    if isinstance(event, str):
        type_name = event
    elif isinstance(event, Event):
        type_name = event.type
    else:
        type_name = event.__name__
    try:
        return TOPICS[type_name].name
    except KeyError:
        raise KeyError(f"no topic for event type {type_name!r}; known: {sorted(TOPICS)}") from None


def all_topics() -> list[str]:
    """Every topic the lab uses, the dead-letter topic included."""
    return [spec.name for spec in TOPICS.values()] + [DEAD_LETTER_TOPIC]


def event_type_of_topic(topic: str) -> str | None:
    for spec in TOPICS.values():
        if spec.name == topic:
            return spec.event_type
    return None
