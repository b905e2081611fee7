"""Shared test setup: tests run from the repository root with a quiet, deterministic torch."""

import contextlib
import logging
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.chdir(ROOT)
os.environ.setdefault("TQDM_DISABLE", "1")  # keep CI logs readable


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def quick_policy(tmp_path_factory) -> Path:
    """A tiny trained ci A1Policy directory (a1lib.workflows.quick_policy), built once per test session.

    One torch thread for the build: on a busy 2-core machine that is several times faster."""
    from a1lib.workflows.quick_policy import build_quick_policy

    return build_quick_policy(tmp_path_factory.mktemp("quick_policy") / "policy", seed=0, threads=1)


@pytest.fixture(scope="session")
def quick_artifacts(tmp_path_factory):
    """Tiny sim + lab datasets, tokenizers and latent caches of one task (a1lib.workflows.quick_policy), built
    once per test session, in the pipeline's layout."""
    from a1lib.workflows.quick_policy import build_quick_artifacts

    return build_quick_artifacts(tmp_path_factory.mktemp("quick_artifacts"), tasks=("PlaceFlower",),
                                 episodes_per_task=2, sources=("sim", "lab"))


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a test module (restored after). With torch's default two threads a
    loaded 2-core machine makes small-model inference ~50x slower (oversubscription): a property
    of the machine, not of the code under test."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@contextlib.contextmanager
def log_records(logger_name: str):
    """Collects the records the named logger emits inside the block (whatever the logging config)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
