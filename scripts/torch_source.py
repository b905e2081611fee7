"""Which torch build `scripts/setup.sh` installs: the CPU build unless there is an NVIDIA GPU.

On PyPI, `torch==X` for Linux x86-64 is the CUDA build, which pulls several GB of nvidia-* wheels a
laptop without a GPU never uses. PyTorch publishes the CPU build on its own index
(https://download.pytorch.org/whl/cpu). Rules, in order:

1. ``A1_TORCH_INDEX`` set: that index (``pypi`` = PyPI's default build).
2. pip already configured with its own source (``PIP_INDEX_URL``/``PIP_FIND_LINKS``/
   ``PIP_EXTRA_INDEX_URL`` or index-url / find-links / extra-index-url in pip's config): trust it
   (a lab mirror or a local wheel house, like CI's).
3. an NVIDIA GPU (``nvidia-smi`` on PATH): PyPI's default (CUDA) build.
4. otherwise: the CPU index.

Prints the extra pip arguments, one per line (none = pip's defaults). Stdlib only: it runs before
the virtual environment has anything in it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PIP_SOURCE_KEYS = ("index-url", "find-links", "extra-index-url")


def pip_has_own_source(env: dict[str, str], pip_config: str) -> bool:
    """``pip_config`` = the output of ``pip config list`` (lines like ``global.find-links='/x'``)."""
    if any(env.get(k) for k in ("PIP_INDEX_URL", "PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL")):
        return True
    return any(line.split("=", 1)[0].rsplit(".", 1)[-1] in PIP_SOURCE_KEYS
               for line in pip_config.splitlines() if "=" in line)


def torch_pip_args(env: dict[str, str], pip_config: str, has_nvidia_gpu: bool) -> list[str]:
    forced = env.get("A1_TORCH_INDEX")
    if forced:
        return [] if forced == "pypi" else ["--index-url", forced]
    if pip_has_own_source(env, pip_config) or has_nvidia_gpu:
        return []
    return ["--index-url", CPU_INDEX]


def main() -> int:
    python = sys.argv[1] if len(sys.argv) > 1 else sys.executable
    try:
        config = subprocess.run([python, "-m", "pip", "config", "list"], capture_output=True, text=True,
                                timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        config = ""
    for arg in torch_pip_args(dict(os.environ), config, shutil.which("nvidia-smi") is not None):
        print(arg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
