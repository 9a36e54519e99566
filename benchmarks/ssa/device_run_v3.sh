#!/usr/bin/env bash
# SSA v3 on the device in one call (see benchmarks/ssa/device_run_v3.py): check, bench, probe; JSON under $1 or $OUT.
# Needs typer/rich (imported by evals): installed from the wheels in .whl when present, as benchmarks/gpu_check.sh does.
# Usage (repo root, on the device): bash benchmarks/ssa/device_run_v3.sh [OUT_DIR]
set -u
OUT=${1:-${OUT:-/tmp/gpu_out}}
mkdir -p "$OUT"
if ls .whl/typer-*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .whl/typer-*.whl .whl/click-*.whl .whl/rich-*.whl .whl/shellingham-*.whl .whl/markdown_it_py-*.whl \
    .whl/mdurl-*.whl .whl/pygments-*.whl || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TRITON_INTERPRET=0
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
timeout 230 python -m benchmarks.ssa.device_run_v3 "$OUT" 2>&1 | tee "$OUT/log.txt" | tail -40
