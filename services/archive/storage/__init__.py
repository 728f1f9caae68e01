"""Storage backends of the archive's read model: `open_store(settings)` picks one from settings."""
from __future__ import annotations

from pathlib import Path

from services.archive.storage.base import Record, Store  # noqa: F401
from services.archive.storage.sqlite import SQLiteStore  # noqa: F401
from services.common.settings import Settings

DB_FILE = "archive.sqlite"


def sqlite_path(settings: Settings) -> Path:
    return Path(settings.data_dir) / DB_FILE


def open_store(settings: Settings, *, read_only: bool = False) -> Store:
    """SQLite under data_dir (default), or Cassandra when ARCHLAB_STORAGE=cassandra."""
    if settings.storage == "cassandra":
        from services.archive.storage.cassandra import CassandraStore

        if not settings.cassandra_hosts:
            raise ValueError("ARCHLAB_STORAGE=cassandra needs ARCHLAB_CASSANDRA_HOSTS (comma-separated)")
        hosts, port = [], 9042
        for entry in (h.strip() for h in settings.cassandra_hosts.split(",")):
            if entry:
                host, _, p = entry.partition(":")   # "host" or "host:port" (one port for the cluster)
                hosts.append(host)
                port = int(p) if p else port
        return CassandraStore(hosts, settings.cassandra_keyspace, settings.cassandra_consistency, port=port,
                              read_only=read_only)
    if settings.storage != "sqlite":
        raise ValueError(f"unknown storage {settings.storage!r} (sqlite | cassandra)")
    return SQLiteStore(sqlite_path(settings), read_only=read_only)
