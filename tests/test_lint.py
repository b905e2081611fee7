"""The code is lint-clean under the project's own ruff configuration (pyproject.toml: pycodestyle,
pyflakes, import order, 120 columns), so CI checks it with the tests."""

import subprocess
import sys
from pathlib import Path

from conftest import ROOT

PATHS = ["a1lib", "tests", "bench", "scripts"]


def test_ruff_finds_nothing():
    ruff = Path(sys.executable).parent / "ruff"  # a dev dependency: scripts/setup.sh installs it in the venv
    assert ruff.exists(), f"{ruff}: not installed; run `bash scripts/setup.sh`"
    run = subprocess.run([str(ruff), "check", "--output-format", "concise", *PATHS], cwd=ROOT, capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
