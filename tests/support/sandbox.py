"""The real OS sandbox, or why not: CI must have it (a failure), elsewhere a test without it is skipped."""
import os

import pytest

from lab import confine


def require_bwrap() -> None:
    ok, why = confine.available()
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(f"bubblewrap is required in CI: {why}")
        pytest.skip(f"no OS sandbox here: {why}")
