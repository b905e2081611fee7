"""Shared test setup: tests run from the repository root with a quiet, deterministic torch."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.chdir(ROOT)
os.environ.setdefault("TQDM_DISABLE", "1")  # keep CI logs readable


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT
