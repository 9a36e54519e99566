#!/usr/bin/env bash
# The zoo board's evaluation grid: every cell of leaderboards/zoo.json, then the board, its packed per-sample
# file and its plots. Run from the repo root: `bash benchmarks/zoo/grid.sh [cpu|h100|all] [OUT]`.
#
# Reconstructed, not the original script: the grid ran as many `evals run` calls in parallel lanes on a
# 2-core CPU and on H100s, merged with `evals merge SRC --into ... --tag TAG`, and that lane script was never
# committed. The lines below were generated from the packed results themselves
# (leaderboards/zoo.samples.jsonl.gz): one `run` per model, sample count and set of context lengths, covering
# each of the 1241 cells (model, task, ctx, n) exactly once with the seed (0) and sample count it was scored
# with. The device of each line is the device of the matching entry of the models' runs.jsonl (the run log
# that every `evals run` appends; where a lane logged one command for several, the device of a run of that
# model and task). Not reconstructed: the order and grouping of the original calls, the batch sizes (each
# run's manifest records its own), and which cells were rerun after a fix (the
# newest record of a cell is the one kept). Models are the shipped checkpoints (`zoo:ARCH`); some H100 runs
# of ssa and hybrid_ssa named a checkpoint folder on the device instead (`zoo:ARCH@/tmp/ckpt/ARCH`, in their
# manifests), which this script does not reproduce.
set -euo pipefail
WHICH=${1:-all}
OUT=${2:-results/zoo}
EVALS=(python -m longctx.evals)

run() {  # DEVICE MODEL SAMPLES TASKS CTXS: one `evals run`, into a folder per device, merged below
    local device=$1 model=$2 n=$3 tasks=$4 ctxs=$5
    [[ $WHICH == all || $WHICH == "$device" ]] || return 0
    "${EVALS[@]}" run "$tasks" --ctx "$ctxs" -n "$n" -m "$model" --seed 0 -o "$OUT-$device"
}

run cpu zoo:dense 5 mrcr_2needle,mrcr_8needle 4k
run cpu zoo:dense 5 niah_single_1,niah_single_2,niah_single_3 32k
run cpu zoo:dense 10 niah_multikey_1,niah_multiquery,niah_multivalue 4k,8k
run cpu zoo:dense 10 niah_single_1,niah_single_2,niah_single_3 4k,8k,64k,128k
run cpu zoo:dense 20 niah_multikey_1,niah_multiquery,niah_multivalue,niah_single_1,niah_single_2,niah_single_3 1k,2k
run cpu zoo:dsa 5 mrcr_2needle,mrcr_8needle 4k
run cpu zoo:dsa 10 niah_multikey_1,niah_multiquery,niah_multivalue,niah_single_2,niah_single_3 4k,8k
run cpu zoo:dsa 10 niah_single_1 4k,8k,64k,128k
run cpu zoo:dsa 11 decay_depth,decay_multifact 4k
run cpu zoo:dsa 20 niah_multikey_1,niah_multiquery,niah_multivalue,niah_single_1,niah_single_2,niah_single_3 1k,2k
run cpu zoo:dsa 28 decay_distance 4k
run cpu zoo:hybrid 5 mrcr_2needle,mrcr_8needle 4k
run cpu zoo:hybrid_ssa 5 mrcr_2needle,mrcr_8needle 4k
run cpu zoo:hyena 5 mrcr_2needle,mrcr_8needle 4k
run cpu zoo:hyena 11 decay_depth,decay_multifact 1k,4k
run cpu zoo:hyena 20 niah_multikey_1,niah_multiquery,niah_multivalue,niah_single_1,niah_single_2,niah_single_3 1k,2k
run cpu zoo:hyena 28 decay_distance 1k,4k
run cpu zoo:hyper 5 mrcr_2needle,mrcr_8needle 4k
run cpu zoo:hyper 20 niah_multikey_1,niah_multiquery,niah_multivalue,niah_single_1,niah_single_2,niah_single_3 1k,2k
run cpu zoo:linear 5 mrcr_2needle,mrcr_8needle 4k
run cpu zoo:linear 11 decay_depth,decay_multifact 1k,4k
run cpu zoo:linear 20 niah_multikey_1,niah_multiquery,niah_multivalue,niah_single_1,niah_single_2,niah_single_3 1k,2k
run cpu zoo:linear 28 decay_distance 1k,4k
run cpu zoo:mamba1 5 mrcr_2needle,mrcr_8needle 4k
run cpu zoo:mamba1 11 decay_depth,decay_multifact 1k,4k
run cpu zoo:mamba1 28 decay_distance 1k,4k
run cpu zoo:mamba2 5 mrcr_2needle,mrcr_8needle 4k
run cpu zoo:mamba2 11 decay_depth,decay_multifact 1k,4k
run cpu zoo:mamba2 20 niah_multikey_1,niah_multiquery,niah_multivalue,niah_single_1,niah_single_2,niah_single_3 1k,2k
run cpu zoo:mamba2 28 decay_distance 1k,4k
run cpu zoo:performer 5 mrcr_2needle,mrcr_8needle 4k
run cpu zoo:performer 11 decay_depth,decay_multifact 1k,4k
run cpu zoo:performer 28 decay_distance 1k,4k
run cpu zoo:s4 5 mrcr_2needle,mrcr_8needle 4k
run cpu zoo:s4 11 decay_depth,decay_multifact 1k,4k
run cpu zoo:s4 20 niah_multikey_1,niah_multiquery,niah_multivalue,niah_single_1,niah_single_2,niah_single_3 1k,2k
run cpu zoo:s4 28 decay_distance 1k,4k
run cpu zoo:ssa 5 mrcr_2needle,mrcr_8needle 4k
run cpu zoo:ssa 11 decay_depth,decay_multifact 4k
run cpu zoo:ssa 20 niah_multikey_1,niah_multiquery,niah_multivalue,niah_single_1,niah_single_2,niah_single_3 1k,2k
run cpu zoo:ssa 28 decay_distance 4k
run cpu zoo:swa 5 mrcr_2needle,mrcr_8needle 4k
run cpu zoo:swa 11 decay_depth,decay_multifact 1k,4k
run cpu zoo:swa 20 niah_multikey_1,niah_multiquery,niah_multivalue,niah_single_1,niah_single_2,niah_single_3 1k,2k
run cpu zoo:swa 28 decay_distance 1k,4k
run h100 zoo:dense 5 mrcr_2needle,mrcr_8needle 16k,64k,128k
run h100 zoo:dense 5 cwe,fwe,niah_multikey_1,niah_multikey_2,niah_multikey_3,niah_multiquery,niah_multivalue,qa_1,qa_2,vt 32k,128k
run h100 zoo:dense 10 cwe,fwe,niah_multikey_2,niah_multikey_3,qa_1,qa_2,vt 2k,8k
run h100 zoo:dense 11 decay_depth,decay_multifact 1k,4k,16k,64k,128k
run h100 zoo:dense 28 decay_distance 1k,4k,16k,64k,128k
run h100 zoo:dsa 5 mrcr_2needle,mrcr_8needle 16k,64k,128k
run h100 zoo:dsa 5 niah_single_1,niah_single_2,niah_single_3 32k
run h100 zoo:dsa 5 cwe,fwe,niah_multikey_1,niah_multikey_2,niah_multikey_3,niah_multiquery,niah_multivalue,qa_1,qa_2,vt 32k,128k
run h100 zoo:dsa 10 cwe,fwe,niah_multikey_2,niah_multikey_3,qa_1,qa_2,vt 2k,8k
run h100 zoo:dsa 10 niah_single_2,niah_single_3 64k,128k
run h100 zoo:dsa 11 decay_depth,decay_multifact 1k,16k,64k,128k
run h100 zoo:dsa 28 decay_distance 1k,16k,64k,128k
run h100 zoo:hybrid 5 mrcr_2needle,mrcr_8needle 16k,64k,128k
run h100 zoo:hybrid 5 niah_single_1,niah_single_2,niah_single_3 32k
run h100 zoo:hybrid 5 cwe,fwe,niah_multikey_1,niah_multikey_2,niah_multikey_3,niah_multiquery,niah_multivalue,qa_1,qa_2,vt 32k,128k
run h100 zoo:hybrid 10 cwe,fwe,niah_multikey_2,niah_multikey_3,qa_1,qa_2,vt 2k,8k
run h100 zoo:hybrid 10 niah_multikey_1,niah_multiquery,niah_multivalue 4k,8k
run h100 zoo:hybrid 10 niah_single_1,niah_single_2,niah_single_3 4k,8k,64k,128k
run h100 zoo:hybrid 11 decay_depth,decay_multifact 1k,4k,16k,64k,128k
run h100 zoo:hybrid 20 niah_multikey_1,niah_multiquery,niah_multivalue,niah_single_1,niah_single_2,niah_single_3 1k,2k
run h100 zoo:hybrid 28 decay_distance 1k,4k,16k,64k,128k
run h100 zoo:hybrid_ssa 3 niah_single_1,niah_single_2,niah_single_3 256k,512k,1m
run h100 zoo:hybrid_ssa 5 mrcr_2needle,mrcr_8needle 16k,64k,128k
run h100 zoo:hybrid_ssa 5 niah_single_1,niah_single_2,niah_single_3 32k
run h100 zoo:hybrid_ssa 5 cwe,fwe,niah_multikey_1,niah_multikey_2,niah_multikey_3,niah_multiquery,niah_multivalue,qa_1,qa_2,vt 32k,128k
run h100 zoo:hybrid_ssa 10 cwe,fwe,niah_multikey_2,niah_multikey_3,qa_1,qa_2,vt 2k,8k
run h100 zoo:hybrid_ssa 10 niah_multikey_1,niah_multiquery,niah_multivalue 4k,8k
run h100 zoo:hybrid_ssa 10 niah_single_1,niah_single_2,niah_single_3 4k,8k,64k,128k
run h100 zoo:hybrid_ssa 11 decay_depth,decay_multifact 1k,4k,16k,64k,128k
run h100 zoo:hybrid_ssa 17 decay_distance 1m
run h100 zoo:hybrid_ssa 20 niah_multikey_1,niah_multiquery,niah_multivalue,niah_single_1,niah_single_2,niah_single_3 1k,2k
run h100 zoo:hybrid_ssa 28 decay_distance 1k,4k,16k,64k,128k
run h100 zoo:hyena 3 niah_single_1 256k,512k
run h100 zoo:hyena 5 mrcr_2needle,mrcr_8needle 16k,64k,128k
run h100 zoo:hyena 5 niah_single_1,niah_single_2,niah_single_3 32k
run h100 zoo:hyena 5 cwe,fwe,niah_multikey_1,niah_multikey_2,niah_multikey_3,niah_multiquery,niah_multivalue,qa_1,qa_2,vt 32k,128k
run h100 zoo:hyena 10 cwe,fwe,niah_multikey_2,niah_multikey_3,qa_1,qa_2,vt 2k,8k
run h100 zoo:hyena 10 niah_multikey_1,niah_multiquery,niah_multivalue 4k,8k
run h100 zoo:hyena 10 niah_single_1,niah_single_2,niah_single_3 4k,8k,64k,128k
run h100 zoo:hyena 11 decay_depth,decay_multifact 16k,64k,128k
run h100 zoo:hyena 28 decay_distance 16k,64k,128k
run h100 zoo:hyper 3 niah_single_1,niah_single_2 256k
run h100 zoo:hyper 5 mrcr_2needle,mrcr_8needle 16k,64k,128k
run h100 zoo:hyper 5 niah_single_1,niah_single_2,niah_single_3 32k
run h100 zoo:hyper 5 cwe,fwe,niah_multikey_1,niah_multikey_2,niah_multikey_3,niah_multiquery,niah_multivalue,qa_1,qa_2,vt 32k,128k
run h100 zoo:hyper 10 cwe,fwe,niah_multikey_2,niah_multikey_3,qa_1,qa_2,vt 2k,8k
run h100 zoo:hyper 10 niah_multikey_1,niah_multiquery,niah_multivalue 4k,8k
run h100 zoo:hyper 10 niah_single_1,niah_single_2,niah_single_3 4k,8k,64k,128k
run h100 zoo:hyper 11 decay_depth,decay_multifact 1k,4k,16k,64k,128k
run h100 zoo:hyper 28 decay_distance 1k,4k,16k,64k,128k
run h100 zoo:linear 3 niah_single_1,niah_single_2,niah_single_3 256k,512k,1m
run h100 zoo:linear 5 mrcr_2needle,mrcr_8needle 16k,64k,128k
run h100 zoo:linear 5 niah_single_1,niah_single_2,niah_single_3 32k
run h100 zoo:linear 5 cwe,fwe,niah_multikey_1,niah_multikey_2,niah_multikey_3,niah_multiquery,niah_multivalue,qa_1,qa_2,vt 32k,128k
run h100 zoo:linear 10 cwe,fwe,niah_multikey_2,niah_multikey_3,qa_1,qa_2,vt 2k,8k
run h100 zoo:linear 10 niah_multikey_1,niah_multiquery,niah_multivalue 4k,8k
run h100 zoo:linear 10 niah_single_1,niah_single_2,niah_single_3 4k,8k,64k,128k
run h100 zoo:linear 11 decay_depth,decay_multifact 16k,64k,128k
run h100 zoo:linear 28 decay_distance 16k,64k,128k
run h100 zoo:mamba1 3 niah_single_1,niah_single_2,niah_single_3 256k,512k,1m
run h100 zoo:mamba1 5 mrcr_2needle,mrcr_8needle 16k,64k,128k
run h100 zoo:mamba1 5 niah_single_1,niah_single_2,niah_single_3 32k
run h100 zoo:mamba1 5 cwe,fwe,niah_multikey_1,niah_multikey_2,niah_multikey_3,niah_multiquery,niah_multivalue,qa_1,qa_2,vt 32k,128k
run h100 zoo:mamba1 10 cwe,fwe,niah_multikey_2,niah_multikey_3,qa_1,qa_2,vt 2k,8k
run h100 zoo:mamba1 10 niah_multikey_1,niah_multiquery,niah_multivalue 4k,8k
run h100 zoo:mamba1 10 niah_single_1,niah_single_2,niah_single_3 4k,8k,64k,128k
run h100 zoo:mamba1 11 decay_depth,decay_multifact 16k,64k,128k
run h100 zoo:mamba1 20 niah_multikey_1,niah_multiquery,niah_multivalue,niah_single_1,niah_single_2,niah_single_3 1k,2k
run h100 zoo:mamba1 28 decay_distance 16k,64k,128k
run h100 zoo:mamba2 3 niah_single_1,niah_single_2,niah_single_3 256k,512k,1m
run h100 zoo:mamba2 5 mrcr_2needle,mrcr_8needle 16k,64k,128k
run h100 zoo:mamba2 5 niah_single_1,niah_single_2,niah_single_3 32k
run h100 zoo:mamba2 5 cwe,fwe,niah_multikey_1,niah_multikey_2,niah_multikey_3,niah_multiquery,niah_multivalue,qa_1,qa_2,vt 32k,128k
run h100 zoo:mamba2 10 cwe,fwe,niah_multikey_2,niah_multikey_3,qa_1,qa_2,vt 2k,8k
run h100 zoo:mamba2 10 niah_multikey_1,niah_multiquery,niah_multivalue 4k,8k
run h100 zoo:mamba2 10 niah_single_1,niah_single_2,niah_single_3 4k,8k,64k,128k
run h100 zoo:mamba2 11 decay_depth,decay_multifact 16k,64k,128k
run h100 zoo:mamba2 28 decay_distance 16k,64k,128k
run h100 zoo:performer 3 niah_single_1,niah_single_2,niah_single_3 256k,512k,1m
run h100 zoo:performer 5 mrcr_2needle,mrcr_8needle 16k,64k,128k
run h100 zoo:performer 5 niah_single_1,niah_single_2,niah_single_3 32k
run h100 zoo:performer 5 cwe,fwe,niah_multikey_1,niah_multikey_2,niah_multikey_3,niah_multiquery,niah_multivalue,qa_1,qa_2,vt 32k,128k
run h100 zoo:performer 10 cwe,fwe,niah_multikey_2,niah_multikey_3,qa_1,qa_2,vt 2k,8k
run h100 zoo:performer 10 niah_multikey_1,niah_multiquery,niah_multivalue 4k,8k
run h100 zoo:performer 10 niah_single_1,niah_single_2,niah_single_3 4k,8k,64k,128k
run h100 zoo:performer 11 decay_depth,decay_multifact 16k,64k,128k
run h100 zoo:performer 20 niah_multikey_1,niah_multiquery,niah_multivalue,niah_single_1,niah_single_2,niah_single_3 1k,2k
run h100 zoo:performer 28 decay_distance 16k,64k,128k
run h100 zoo:s4 3 niah_single_1,niah_single_2,niah_single_3 256k,512k,1m
run h100 zoo:s4 5 mrcr_2needle,mrcr_8needle 16k,64k,128k
run h100 zoo:s4 5 niah_single_1,niah_single_2,niah_single_3 32k
run h100 zoo:s4 5 cwe,fwe,niah_multikey_1,niah_multikey_2,niah_multikey_3,niah_multiquery,niah_multivalue,qa_1,qa_2,vt 32k,128k
run h100 zoo:s4 10 cwe,fwe,niah_multikey_2,niah_multikey_3,qa_1,qa_2,vt 2k,8k
run h100 zoo:s4 10 niah_multikey_1,niah_multiquery,niah_multivalue 4k,8k
run h100 zoo:s4 10 niah_single_1,niah_single_2,niah_single_3 4k,8k,64k,128k
run h100 zoo:s4 11 decay_depth,decay_multifact 16k,64k,128k
run h100 zoo:s4 28 decay_distance 16k,64k,128k
run h100 zoo:ssa 3 niah_single_1,niah_single_2,niah_single_3 256k,512k,1m
run h100 zoo:ssa 5 mrcr_2needle,mrcr_8needle 16k,64k,128k
run h100 zoo:ssa 5 niah_single_1,niah_single_2,niah_single_3 32k
run h100 zoo:ssa 5 cwe,fwe,niah_multikey_1,niah_multikey_2,niah_multikey_3,niah_multiquery,niah_multivalue,qa_1,qa_2,vt 32k,128k
run h100 zoo:ssa 10 cwe,fwe,niah_multikey_2,niah_multikey_3,qa_1,qa_2,vt 2k,8k
run h100 zoo:ssa 10 niah_multikey_1,niah_multiquery,niah_multivalue 4k,8k
run h100 zoo:ssa 10 niah_single_1,niah_single_2,niah_single_3 4k,8k,64k,128k
run h100 zoo:ssa 11 decay_depth,decay_multifact 1k,16k,64k,128k
run h100 zoo:ssa 28 decay_distance 1k,16k,64k,128k
run h100 zoo:swa 3 niah_single_1 256k,512k,1m
run h100 zoo:swa 5 mrcr_2needle,mrcr_8needle 16k,64k,128k
run h100 zoo:swa 5 niah_single_1,niah_single_2,niah_single_3 32k
run h100 zoo:swa 5 cwe,fwe,niah_multikey_1,niah_multikey_2,niah_multikey_3,niah_multiquery,niah_multivalue,qa_1,qa_2,vt 32k,128k
run h100 zoo:swa 10 cwe,fwe,niah_multikey_2,niah_multikey_3,qa_1,qa_2,vt 2k,8k
run h100 zoo:swa 10 niah_multikey_1,niah_multiquery,niah_multivalue 4k,8k
run h100 zoo:swa 10 niah_single_1,niah_single_2,niah_single_3 4k,8k,64k,128k
run h100 zoo:swa 11 decay_depth,decay_multifact 16k,64k,128k
run h100 zoo:swa 28 decay_distance 16k,64k,128k

for device in cpu h100; do
    if [[ -d $OUT-$device ]]; then "${EVALS[@]}" merge "$OUT-$device" --into "$OUT" --tag "$device"; fi
done
"${EVALS[@]}" leaderboard build --results "$OUT" --name zoo --out leaderboards
"${EVALS[@]}" results pack "$OUT" -o leaderboards/zoo.samples.jsonl.gz
# the pictures of leaderboards/plots (there with a zoo_ prefix): score against length, decay curves, heatmaps
"${EVALS[@]}" plot all --results "$OUT" --out "$OUT-plots" --format png
