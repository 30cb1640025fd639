"""Shared test fixtures. ../shared/data holds real metadata and clips; tests that need it skip without it."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SOUNDBENCH_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> Path:
    """The real dataset metadata and clips of the workplace (../shared/data); skips the test when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real metadata not available ({SHARED_DATA} is absent)")
    return SHARED_DATA
