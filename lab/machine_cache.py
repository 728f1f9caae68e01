"""Where this machine keeps what it measured or trained once for every data directory on it.

The concurrency plan (services/engineer/concurrency.py) and a campaign's reused baseline
(services/engineer/baseline_cache.py) depend on the machine, torch and the profile, not on the data
directory: a second `make run` in a fresh folder reuses them instead of paying again (issue 23).

    ARCHLAB_CACHE_DIR, else $XDG_CACHE_HOME/archlab, else ~/.cache/archlab

The compose deployment sets it inside the data volume (infra/docker-compose.yml): a container's home
directory does not persist. No sandbox child sees it (lab/confine.py hides it like the data directory).
"""
from __future__ import annotations

import os
from pathlib import Path

CACHE_DIR_VAR = "ARCHLAB_CACHE_DIR"


def machine_cache_dir() -> Path:
    if os.environ.get(CACHE_DIR_VAR):
        return Path(os.environ[CACHE_DIR_VAR])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "archlab"
