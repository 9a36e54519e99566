#!/usr/bin/env bash
# The zoo's cells past its training length, on whatever device is here, within a time budget: for each architecture
# in turn, `evals run TASKS --ctx CTXS -n SAMPLES` on zoo:ARCH (zoo:ARCH@SHIP/ARCH if SHIP is set), then everything finished is packed into one file,
# $OUT/long.samples.jsonl.gz (a results folder holds a file per cell, more than a device call brings back). An
# architecture cut off by the budget keeps its finished cells (`evals run` resumes them on the next call).
#
# Usage (repo root): OUT=... SHIP=/tmp/retrain/ship BUDGET=500 ARCHS=dense,mamba2 bash benchmarks/zoo/long_cells.sh
set -u
: "${OUT:?set OUT to the folder that comes back}"
SHIP=${SHIP:-}
BUDGET=${BUDGET:-500}
ARCHS=${ARCHS:-dense,mamba2,hybrid_ssa,hybrid,dsa,mamba1,linear}
TASKS=${TASKS:-niah_single_1,decay_distance}
CTXS=${CTXS:-16k,32k,64k,128k}
SAMPLES=${SAMPLES:-10}
RESULTS=${RESULTS:-/tmp/long_cells}
end=$(( $(date +%s) + BUDGET ))
for arch in ${ARCHS//,/ }; do
  left=$(( end - $(date +%s) - 20 ))   # 20 s kept for the pack
  [ $left -lt 30 ] && { echo "not started: $arch (${left}s left)"; continue; }
  spec="zoo:$arch${SHIP:+@$SHIP/$arch}"
  timeout "$left" python3 -m longctx.evals run "$TASKS" --ctx "$CTXS" -n "$SAMPLES" --model "$spec" \
    --out "$RESULTS" 2>&1 | grep -a "│" | tail -8
done
mkdir -p "$OUT"
python3 -m longctx.evals results pack "$RESULTS" -o "$OUT/long.samples.jsonl.gz"
