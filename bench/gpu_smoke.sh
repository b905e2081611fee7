#!/usr/bin/env bash
# GPU smoke run, one command on a machine with a CUDA GPU: set up (.venv with PyPI's CUDA build of
# torch, chosen by scripts/torch_source.py when nvidia-smi is there), then a short gpu-preset
# pretraining with bf16 on every visible GPU, printing samples/s, MFU and chunk latency.
#   bash bench/gpu_smoke.sh [bench_gpu.py options, e.g. --steps 100 --strategy fsdp]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v nvidia-smi >/dev/null || { echo "error: no nvidia-smi: this needs a machine with an NVIDIA GPU" >&2; exit 1; }
bash scripts/setup.sh
gpus=$(nvidia-smi --list-gpus | wc -l)
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
if [ "$gpus" -gt 1 ]; then
  .venv/bin/torchrun --nproc_per_node "$gpus" bench/bench_gpu.py "$@"
else
  .venv/bin/python bench/bench_gpu.py "$@"
fi
