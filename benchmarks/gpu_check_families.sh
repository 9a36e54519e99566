#!/usr/bin/env bash
# One device call for the families whose checks are a module of their own (benchmarks/<family>/gpu_check.py):
# full-size errors against the float64 reference, timings at 16K-1M and the fitted exponent, JSON under $OUT/<family>;
# then the zoo's GPU inference-path tests for the architectures built on them.
# Usage (repo root, on the device): bash benchmarks/gpu_check_families.sh [scan longconv performer ...]
set -u
OUT=${OUT:-/tmp/gpu_out}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=$PWD:/tmp/site PYTHONUNBUFFERED=1 TRITON_INTERPRET=0
for fam in ${*:-scan longconv performer}; do
  mkdir -p "$OUT/$fam"
  start=$(date +%s)
  timeout ${FAMILY_TIMEOUT:-110} python -m benchmarks.$fam.gpu_check --out "$OUT/$fam" > "$OUT/$fam/log.txt" 2>&1
  echo "== $fam: exit $? in $(( $(date +%s) - start )) s"; tail -${TAIL:-14} "$OUT/$fam/log.txt"
done
timeout ${ZOO_TIMEOUT:-90} python3 -m pytest -p no:cacheprovider -q tests/test_zoo.py \
  -k "gpu and (mamba1 or s4 or hyena or performer)" 2>&1 | tail -4
