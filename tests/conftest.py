"""Shared test fixtures: where the real data mirror is."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA_ROOT = Path(os.environ.get("TRAJZOO_DATA_ROOT", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_root() -> Path:
    if not DATA_ROOT.is_dir():
        pytest.fail(f"real data mirror not found at {DATA_ROOT} (set TRAJZOO_DATA_ROOT)")
    return DATA_ROOT


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO
