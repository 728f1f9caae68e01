"""The environment of a CLI or stack the tests start as a user would: none of this shell's ARCHLAB_ settings
(and whatever else `drop` names), except the test's own machine cache (tests/conftest.py), so no test reads or
fills the user's ~/.cache/archlab or reuses another test's baseline."""
import os


def clean_env(drop: str | tuple[str, ...] = "ARCHLAB_") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["ARCHLAB_CACHE_DIR"] = os.environ["ARCHLAB_CACHE_DIR"]
    return env
