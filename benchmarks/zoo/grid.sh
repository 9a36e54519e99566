#!/usr/bin/env bash
# The zoo board's evaluation grid: every cell of leaderboards/zoo.json, then the board, its packed per-sample
# file and its plots. Run from the repo root: `bash benchmarks/zoo/grid.sh [OUT]`.
#
# The board's cells came from two places: the thirteen architectures' single needles and decay probe at
# 1K-8K (10 samples a cell) were scored on one H100 right after the retrain (benchmarks/zoo/retrain.sh), by
# benchmarks/zoo/adapt.py's workers (`run_eval`, what `evals run` runs) as zoo:ARCH@/tmp/retrain/ship/ARCH, and
# written as zoo:ARCH by benchmarks/zoo/as_shipped.py once the shipped files were checked to be those, byte for byte;
# decay_depth at 1K and 4K (11 samples) ran on the 2-core CPU; `evals merge` joined the two. The loop below runs the
# same cells with `evals run` on whatever device is here. The board keeps length, the decay_distance curve, the
# trilemma card and the decay_depth heatmaps of the models that score, named zoo_*.png.
set -euo pipefail
OUT=${1:-results/zoo}
ARCHS=(dense swa linear mamba2 hybrid hybrid_ssa dsa ssa hyper mamba1 performer s4 hyena)
for arch in "${ARCHS[@]}"; do
  python -m longctx.evals run niah_single_1,niah_single_2,niah_single_3,decay_distance --ctx 1k,2k,4k,8k -n 10 \
    -m "zoo:$arch" --seed 0 -o "$OUT"
  python -m longctx.evals run decay_depth --ctx 1k,4k -n 11 -m "zoo:$arch" --seed 0 -o "$OUT"
done
python -m longctx.evals results pack "$OUT" -o leaderboards/zoo.samples.jsonl.gz
python -m longctx.evals leaderboard build --results leaderboards/zoo.samples.jsonl.gz --name zoo
python -m longctx.evals plot all --results leaderboards/zoo.samples.jsonl.gz --out leaderboards/plots --format png
