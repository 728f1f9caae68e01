"""Fixtures for the zoo and fla-shim tests: the shim on sys.path, and programs exec'd as modules."""
from __future__ import annotations

import sys
import types

import pytest

from lab.fla_shim import SHIM_DIR


def _drop_fla_modules() -> None:
    for name in [m for m in sys.modules if m == "fla" or m.startswith("fla.")]:
        del sys.modules[name]


@pytest.fixture
def shim():
    """Put the pure-PyTorch fla stand-in first on sys.path for one test, and take it away afterwards."""
    _drop_fla_modules()
    sys.path.insert(0, str(SHIM_DIR))
    try:
        yield SHIM_DIR
    finally:
        sys.path.remove(str(SHIM_DIR))
        _drop_fla_modules()


@pytest.fixture
def exec_program(shim):
    """exec_program(source, name) -> a fresh module holding what the program defines."""
    def run(source: str, name: str = "program") -> types.ModuleType:
        module = types.ModuleType(f"archlab_program_{name}")
        exec(compile(source, f"<program {name}>", "exec"), module.__dict__)
        return module
    return run
