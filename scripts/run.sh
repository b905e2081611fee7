#!/usr/bin/env bash
# The main job: set up, bring up data/ (from a DVC remote if one is configured, else regenerate it
# and check it against data.dvc: bit-for-bit, or a warning that says what differs), then run the DVC pipeline.
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
  expected=$(mktemp)
  cp data.dvc "$expected"
  dvc add -q data
  if cmp -s data.dvc "$expected"; then
    echo "data/: regenerated; hash matches data.dvc"
  else
    # Not a dead end: this machine's data are as good, just not the same bytes. Say so and go on.
    python - "$expected" data.dvc <<'PY' >&2
import sys, yaml
(a,), (b,) = (yaml.safe_load(open(p))["outs"] for p in sys.argv[1:])
print("warning: the regenerated data/ differ from the committed data.dvc:")
for name, o in (("committed", a), ("this machine", b)):
    print(f"  {name:<13} md5 {o['md5']}  {o['nfiles']} files  {o['size']:,} bytes")
print("""  The generator computes the same bits on every x86-64 CPU tested (AVX2 and AVX-512; README
  'Reproducibility'); another OS, CPU architecture or build of numpy / Pillow / zlib can still change
  some bytes. Going on with this machine's data (data.dvc now holds its hash: `git diff data.dvc`):
  the pipeline's results will reproduce within run-to-run spread, not to the byte.""")
PY
  fi
  rm -f "$expected"
fi

if [ -f dvc.yaml ]; then dvc repro; fi
