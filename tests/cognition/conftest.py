import os
from pathlib import Path

import pytest

from services.common.embeddings import Embedder

REPO_ROOT = Path(__file__).resolve().parents[2]


def reference_corpus() -> Path:
    shared = Path(os.environ.get("ARCHLAB_SHARED_DIR", REPO_ROOT / ".." / "shared"))
    return shared / "reference" / "asi-arch" / "cognition"


@pytest.fixture(scope="session")
def embedder():
    return Embedder.from_settings(None)


@pytest.fixture
def corpus_dir():
    path = reference_corpus()
    if not path.is_dir():
        pytest.skip(f"the ASI-Arch cognition corpus is not at {path} (set ARCHLAB_SHARED_DIR)")
    return path
