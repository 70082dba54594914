#!/usr/bin/env bash
# The scorer benchmark on a GPU machine (CUDA provider, fp16 variants), in under 5 minutes.
# Needs this repo's environment there (`make venv`: onnxruntime-gpu[cuda,cudnn] brings the
# CUDA libraries ORT loads) and a CUDA device; writes docs/bench/scorer-gpu.{md,json}.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
export HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
# Exports on the GPU machine gate the fp16 variants there (CPU hosts cannot check them).
STREAMRANK_MODELS_DIR=${STREAMRANK_MODELS_DIR:-/tmp/streamrank-gpu-models} \
timeout 290 "$BIN/streamrank" bench scorer --device cuda --backends torch,fp32,fp16 \
  --batches 1,8,32 --budget 3s --load 4s --out docs/bench/scorer-gpu
