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


# Who reacts to what: the consumer groups of each event type (documentation of the event flow; the
# AsyncAPI document is built from it, and tests/test_consumers.py checks it against every service's
# real wiring). The archive consumes every topic; the engineer reads its work topics without a group;
# "researcher-routing" exists when the researcher routes between several LLM planners.
CONSUMERS: dict[str, tuple[str, ...]] = {
    "CampaignStarted": ("judge-campaigns", "archive"),
    "ParentSampled": ("researcher", "debugger-memory", "archive"),
    "ProposalCreated": ("engineer", "researcher-novelty", "researcher-routing", "debugger-memory", "judge-proposals",
                        "analyst", "archive"),
    "ProposalRejected": ("researcher-routing", "archive"),
    "TrainingStarted": ("engineer", "archive"),
    "TrainingProgress": ("engineer", "archive"),
    "TrainingFailed": ("engineer", "debugger", "archive"),
    "TrainingStopped": ("engineer", "archive"),
    "ResultsReady": ("engineer", "judge", "analyst", "archive"),
    "ScoreAssigned": ("researcher-routing", "analyst", "archive"),
    "InsightsStored": ("analyst", "archive"),
    "CognitionIngested": ("cognition", "archive"),
    "ExperimentAbandoned": ("archive",),
    "ExperimentPromoted": ("archive",),
    "ReplicationAssessed": ("archive",),
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
