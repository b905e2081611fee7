#!/usr/bin/env bash
# The main job: set up, bring up data/ (from a DVC remote if one is configured, else regenerate it
# bit-for-bit and check it against data.dvc), then run the DVC pipeline.
#   bash scripts/run.sh          # the preset selected in params.yaml (cpu by default), in this checkout
#   bash scripts/run.sh ci       # another preset: in its own workspace, workspaces/ci/ (git-ignored),
#                                # a copy of the tracked files; nothing tracked here is touched
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${A1_SKIP_SETUP:-}" ]; then  # tests run this script with the venv already on PATH
  bash scripts/setup.sh
  export PATH="$PWD/.venv/bin:$PATH"
fi

default=$(python -c 'import yaml; print(yaml.safe_load(open("params.yaml"))["preset"])')
preset=${1:-$default}
if [ "$preset" != "$default" ]; then
  ws="workspaces/$preset"
  echo "preset $preset: running in $ws/ (a copy of the tracked files; this checkout stays as it is)"
  mkdir -p "$ws"
  # the code and params of this checkout; the workspace keeps its own lock and data hash
  git ls-files -z | while IFS= read -r -d '' f; do
    case "$f" in dvc.lock|data.dvc) [ -e "$ws/$f" ] && continue ;; esac
    mkdir -p "$ws/$(dirname "$f")" && cp -p "$f" "$ws/$f"
  done
  cd "$ws"
  [ -d .git ] || git init -q
  python - "$preset" <<'PY'
import re, sys
p = "params.yaml"; s = open(p).read()
open(p, "w").write(re.sub(r"^preset: *\S+", f"preset: {sys.argv[1]}", s, count=1, flags=re.M))
PY
  if [ ! -f data.dvc.preset ] || [ "$(cat data.dvc.preset)" != "$preset" ] || ! dvc status -q data.dvc 2>/dev/null; then
    a1 data generate
    dvc add -q data
    echo "$preset" > data.dvc.preset
    echo "data/: generated for preset $preset"
  fi
  dvc repro
  echo "results of preset $preset: $PWD"
  exit 0
fi

if [ -n "$(dvc remote list)" ] && dvc pull -q data.dvc; then
  echo "data/: pulled from the DVC remote"
elif [ -d data ] && dvc status -q data.dvc 2>/dev/null; then
  echo "data/: present and up to date"
else
  a1 data generate
  cp data.dvc /tmp/a1-data.dvc.expected
  dvc add -q data
  if ! cmp -s data.dvc /tmp/a1-data.dvc.expected; then
    echo "error: regenerated data/ differs from data.dvc (different package versions?)." >&2
    echo "       git diff data.dvc shows the new hash; see README 'Reproducibility'." >&2
    exit 1
  fi
  echo "data/: regenerated; hash matches data.dvc"
fi

if [ -f dvc.yaml ]; then dvc repro; fi
