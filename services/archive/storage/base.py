"""The archive's storage interface: the read model's tables, whatever holds them.

Records are plain dicts. The projection decides their content; a backend only stores them and
answers the queries the lab asks (an experiment by id, a campaign's experiments in time order,
the children of a parent, the top of a campaign's elite pool). Two backends implement it:
SQLite (embedded default) and Cassandra (at scale). `tests/archive/test_storage_contract.py`
holds both to the same behaviour.

Units of work: writes may be buffered until `commit()` (the SQLite backend batches them, which
is what makes a replay fast); `transaction()` commits on exit.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import contextmanager
from typing import Any, Iterator

Record = dict[str, Any]

# The tables `dump()` returns, in a fixed order (the digest and the export read them).
TABLES = ("experiments", "attempts", "scores", "campaigns", "cognitions", "pool", "processed")


class Store(ABC):
    read_only: bool = False

    # ---------------------------------------------------------------- event bookkeeping
    @abstractmethod
    def is_processed(self, event_id: str) -> bool: ...

    @abstractmethod
    def mark_processed(self, event_id: str, event_type: str, occurred_at: str, *,
                       local_payload: str | None = None) -> None:
        """Remember an applied event. `local_payload`: the archive applied its own output before
        publishing it (the scheduler's decisions); kept as pending until it is read back from the log."""

    @abstractmethod
    def pending_local(self) -> list[str]:
        """Payloads (JSON) of own events applied locally and not yet seen in the log."""

    @abstractmethod
    def confirm(self, event_id: str) -> None:
        """An own event came back from the log: no longer pending."""

    # ---------------------------------------------------------------- experiments
    @abstractmethod
    def get_experiment(self, experiment_id: str) -> Record | None: ...

    @abstractmethod
    def put_experiment(self, doc: Record) -> None:
        """Insert or replace. Indexed keys: experiment_id, campaign_id, parent_id, created_at,
        name, role, status, fitness; the whole dict is stored."""

    @abstractmethod
    def experiments(self, campaign_id: str | None = None) -> list[Record]:
        """A campaign's experiments (or all) ordered by (created_at, experiment_id)."""

    @abstractmethod
    def children(self, parent_id: str) -> list[Record]:
        """Experiments whose parent_id is `parent_id`, ordered by experiment_id."""

    # ---------------------------------------------------------------- attempts and scores (keyed by event_id)
    @abstractmethod
    def put_attempt(self, rec: Record) -> None:
        """rec has event_id, experiment_id, occurred_at, kind (proposal | rejected | failure)."""

    @abstractmethod
    def attempts(self, experiment_id: str) -> list[Record]:
        """Ordered by (occurred_at, event_id)."""

    @abstractmethod
    def put_score(self, rec: Record) -> None:
        """rec has event_id, experiment_id, campaign_id, scheme, fitness, occurred_at."""

    @abstractmethod
    def scores(self, experiment_id: str) -> list[Record]:
        """Ordered by (occurred_at, event_id)."""

    # ---------------------------------------------------------------- campaigns and cognitions
    @abstractmethod
    def get_campaign(self, campaign_id: str) -> Record | None: ...

    @abstractmethod
    def put_campaign(self, doc: Record) -> None: ...

    @abstractmethod
    def campaigns(self) -> list[Record]:
        """Ordered by campaign_id."""

    @abstractmethod
    def get_cognition(self, cognition_id: str) -> Record | None: ...

    @abstractmethod
    def put_cognition(self, doc: Record) -> None: ...

    # ---------------------------------------------------------------- the elite pool index
    @abstractmethod
    def set_pool_entry(self, campaign_id: str, scheme: str, experiment_id: str, fitness: float | None) -> None:
        """The latest fitness of an experiment under (campaign, scheme); None removes it."""

    @abstractmethod
    def top_by_fitness(self, campaign_id: str, scheme: str, limit: int) -> list[tuple[str, float]]:
        """(experiment_id, fitness), best first; ties broken by experiment_id."""

    # ---------------------------------------------------------------- whole read model
    @abstractmethod
    def dump(self) -> dict[str, list[Record]]:
        """Every table as rows (see TABLES), for the digest and the export. May be slow."""

    @abstractmethod
    def commit(self) -> None: ...

    def rollback(self) -> None:
        """Drop uncommitted writes where the backend can (SQLite); Cassandra writes at once, and
        every projection write is an idempotent upsert, so re-applying the event repairs it."""

    @abstractmethod
    def close(self) -> None: ...

    @contextmanager
    def transaction(self) -> Iterator["Store"]:
        try:
            yield self
        except BaseException:
            self.rollback()
            raise
        self.commit()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
