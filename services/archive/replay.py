"""Rebuild the read model from the log: the database is a projection, so this is the proof.

`replay_events(events, store)` is the pure domain part (batched commits; no publishing, no LLM,
no GPU). `read_log_events(bootstrap)` reads every topic from offset 0 outside any consumer group.
`interleave(events, seed)` shuffles the cross-topic order the way a real consumer may see it: the
order of one experiment's events on one topic (one partition) is kept, everything else is free.
"""
from __future__ import annotations

import gc
import random
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Iterable

from schemas import codec
from schemas import events as ev
from schemas.topics import topic_for
from services.archive.projection import apply
from services.archive.storage.base import Store


@dataclass
class ReplayStats:
    events: int = 0
    applied: int = 0
    duplicates: int = 0
    seconds: float = 0.0
    undecodable: int = 0
    by_type: dict[str, int] = field(default_factory=dict)

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("inf")


def replay_events(events: Iterable[ev.Event], store: Store, *, batch: int = 100_000) -> ReplayStats:
    """Apply every event to `store`, committing every `batch` events.

    A replay writes a fresh file (a crash just starts it again), so batches are large: a commit
    re-encodes every experiment touched since the last one, and in a shuffled order that is nearly all.
    """
    stats = ReplayStats()
    t0 = time.perf_counter()
    pending = 0
    # The projection builds acyclic dicts only; the cyclic GC would rescan the whole (large) heap
    # every few thousand allocations, which halves the rate when the log is held in memory.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for event in events:
            stats.events += 1
            stats.by_type[event.type] = stats.by_type.get(event.type, 0) + 1
            if apply(store, event):
                stats.applied += 1
            else:
                stats.duplicates += 1
            pending += 1
            if pending >= batch:
                store.commit()
                pending = 0
        store.commit()
    finally:
        if gc_was_enabled:
            gc.enable()
    stats.seconds = time.perf_counter() - t0
    return stats


def interleave(events: list[ev.Event], seed: int) -> list[ev.Event]:
    """A random merge of the per-(topic, experiment) sequences: a legal consumption order."""
    queues: OrderedDict[tuple[str, str], list[ev.Event]] = OrderedDict()
    for e in events:
        queues.setdefault((topic_for(e), e.experiment_id), []).append(e)
    rng = random.Random(seed)
    heads = {k: 0 for k in queues}
    live = list(queues)
    out: list[ev.Event] = []
    while live:
        i = rng.randrange(len(live))
        key = live[i]
        out.append(queues[key][heads[key]])
        heads[key] += 1
        if heads[key] == len(queues[key]):
            live[i] = live[-1]
            live.pop()
    return out


async def read_log_events(bootstrap: str) -> tuple[list[ev.Event], int]:
    """Every event of every topic from offset 0 (no consumer group): (events, undecodable count)."""
    from schemas.topics import TOPICS
    from services.common.log_reader import read_log

    events: list[ev.Event] = []
    bad = 0
    async for rec in read_log(bootstrap, [spec.name for spec in TOPICS.values()], from_beginning=True):
        try:
            events.append(codec.decode(rec.value))
        except codec.EventDecodeError:
            bad += 1
    return events, bad
