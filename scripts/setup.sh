#!/usr/bin/env bash
# Set up the workbench in ./.venv on a fresh Debian/Ubuntu machine with Python 3.11+.
# Idempotent: a second run only checks that everything is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
  echo "error: Python 3.11+ is required (found: $("$PY" --version 2>&1))" >&2; exit 1
fi
# Debian/Ubuntu ship venv and git separately; install them when we can.
need=()
"$PY" -c 'import ensurepip, venv' 2>/dev/null || need+=("python3-venv")
command -v git >/dev/null || need+=("git")
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq "${need[@]}";
  else echo "error: please install: ${need[*]} (sudo apt-get install ${need[*]})" >&2; exit 1; fi
fi

if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
stamp=.venv/.a1-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  # torch first, pinned, so that no other dependency can pull a different build: the CPU build
  # unless there is an NVIDIA GPU or pip has its own source (scripts/torch_source.py says why).
  mapfile -t torch_args < <(.venv/bin/python scripts/torch_source.py .venv/bin/python)
  echo "installing torch==2.13.0 ${torch_args[*]:-from the configured pip source}"
  .venv/bin/python -m pip install -q "torch==2.13.0" "${torch_args[@]}"
  .venv/bin/python -m pip install -q -e ".[dev]"
  touch "$stamp"
fi
# DVC needs a git repository; a source tarball is not one.
[ -d .git ] || git init -q
# notebooks are committed without outputs: the filter strips them on `git add` (.gitattributes)
.venv/bin/nbstripout --install
# ... and without what JupyterLab rewrites on every save, so that opening a notebook leaves git
# status clean: the kernel's language details and view state. (Cell ids are renumbered and keys
# sorted by nbstripout itself; the committed notebooks name the kernel "Python 3 (ipykernel)", as
# ipykernel does.)
git config filter.nbstripout.extrakeys "metadata.language_info.codemirror_mode metadata.language_info.file_extension \
metadata.language_info.mimetype metadata.language_info.nbconvert_exporter metadata.language_info.pygments_lexer \
metadata.language_info.version cell.metadata.jp-MarkdownHeadingCollapsed cell.metadata.jupyter"
echo "workbench ready: .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
