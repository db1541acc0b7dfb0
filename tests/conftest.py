"""Shared fixtures: paths to the repository's bundled sample and to the shared real data."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLES = REPO_ROOT / "samples"
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """Folder of the bundled real sample that ships with the repository."""
    return SAMPLES


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Folder of the larger real data set laid beside the clone; tests skip without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared real data not found at {SHARED_DATA}")
    return SHARED_DATA
