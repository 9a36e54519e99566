#!/usr/bin/env bash
# The zoo's recipe from scratch, the same for all thirteen architectures, on one GPU in time-limited calls: run the
# same command again (same WORK, on the same machine) until it prints "all 13 shipped".
#
# Phase A, one needle: 6000 steps of 512-byte rows with one needle in RULER's niah_single_1 wording, batch 32
#   (needle_forms.py --needles 1), from scratch; each finished run is saved in 8 bits to WORK/init/ARCH.
# Phase B, RULER rows and length: 2000 steps of adapt.py's length phase from WORK/init (1024-byte rows, batch 16,
#   PoSE over 1M positions; 10% random-span copy rows, the rest RULER rows of the seven needle tasks below), shipped
#   in 8 bits to WORK/ship/ARCH and scored on niah_single_1/2/3 and decay_distance at 1K-8K (10 samples a cell).
# Every architecture trains both phases at one rate: RATES (its best of the one-needle sweep), else 1e-3.
#
# Phase-A checkpoints given as INIT_FROM (a folder of ARCH/ folders) are copied into WORK/init and not trained
# again. Architectures whose phase A is done when a call starts train phase B at once in one group ("early");
# the others train phase A, then phase B in a second group ("late"); each group resumes from its own work folder.
# What comes back under $OUT: a/init-N.tar (the late group's phase-A checkpoints and needle_forms.json), early/ and
# late/ (adapt.py's checkpoints-N.tar and run.tar). STEPS_A, STEPS_B, ROWS, SAMPLES, CTXS and COMPILE= (off) make a
# CPU smoke run.
#
# Usage (repo root, on the device): OUT=... BUDGET=560 WORK=/tmp/retrain bash benchmarks/zoo/retrain.sh [INIT_FROM]
set -u
: "${OUT:?set OUT to the folder that comes back}"
BUDGET=${BUDGET:-560}
WORK=${WORK:-/tmp/retrain}
RATES=${RATES:-mamba1=3e-3,s4=3e-3,hyena=3e-3}
ARCHS=${ARCHS:-dense,swa,linear,mamba2,hybrid,hybrid_ssa,dsa,ssa,hyper,mamba1,performer,s4,hyena}
STEPS_A=${STEPS_A:-6000}
BATCH_A=${BATCH_A:-32}
STEPS_B=${STEPS_B:-2000}
EVAL_S=${EVAL_S:-150}
ROWS=${ROWS:-16384}
SAMPLES=${SAMPLES:-10}
CTXS=${CTXS:-1024,2048,4096,8192}
COMPILE=${COMPILE---compile}   # COMPILE= (empty) for a CPU smoke run
TASKS=niah_single_1,niah_single_2,niah_single_3,decay_distance,niah_multivalue,niah_multikey_1,niah_multiquery
end=$(( $(date +%s) + BUDGET ))
mkdir -p "$WORK/init" "$WORK/ship" "$OUT/a"
[ -n "${1:-}" ] && cp -rn "$1"/. "$WORK/init/"

rate() { local r; r=$(tr , '\n' <<<"$RATES" | sed -n "s/^$1=//p"); echo "${r:-1e-3}"; }
shipped() { [ -f "$WORK/done/$1" ]; }   # trained, shipped and scored (SAMPLES=0: shipped unscored, to score elsewhere)

if [ ! -f "$WORK/early.txt" ]; then   # the groups are fixed by the first call
  for arch in ${ARCHS//,/ }; do [ -f "$WORK/init/$arch/card.json" ] && echo "$arch"; done >"$WORK/early.txt"
fi

phase_b() {   # phase_b GROUP ARCH... : adapt.py for those not yet shipped and scored, until the call's end
  local group=$1; shift
  local todo=() lrs=() arch
  for arch in "$@"; do shipped "$arch" || { todo+=("$arch"); lrs+=("$arch=$(rate "$arch")"); }; done
  [ ${#todo[@]} -eq 0 ] && return 0
  local left=$(( end - $(date +%s) ))
  [ $left -lt $(( EVAL_S + 120 )) ] && { echo "phase B $group: ${left}s left, not started"; return 0; }
  local IFS=,
  python3 -m benchmarks.zoo.adapt --jobs ${#todo[@]} --arch "${todo[*]}" --init "$WORK/init" \
    --ship "$WORK/ship" --steps "$STEPS_B" --lr 1e-3 --lr-for "${lrs[*]}" --warmup 50 --rows "$ROWS" --tasks "$TASKS" \
    --lm-fraction 0.1 --copy-fraction 1.0 --copy-spans random --drill-fraction 0 --samples "$SAMPLES" --ctxs "$CTXS" --long-ctx 0 \
    --out "$OUT/$group" --work "$WORK/b-$group" --budget-s "$left" --eval-s "$EVAL_S" $COMPILE
  python3 - "$WORK/b-$group/adapt.json" "$WORK/done" "$SAMPLES" <<'PY'
import json, pathlib, sys
done = pathlib.Path(sys.argv[2])
done.mkdir(exist_ok=True)
for r in json.loads(pathlib.Path(sys.argv[1]).read_text())["reports"] if pathlib.Path(sys.argv[1]).is_file() else []:
    if r.get("shipped") and ("eval_s" in r or sys.argv[3] == "0") and not r.get("error"):
        (done / r["arch"]).touch()
PY
}

early=$(tr '\n' ' ' <"$WORK/early.txt")
late=()
for arch in ${ARCHS//,/ }; do grep -qx "$arch" "$WORK/early.txt" || late+=("$arch"); done
echo "early: $early; late: ${late[*]:-none}"

phase_b early $early > "$WORK/early-$(date +%s).log" 2>&1 &
pid_early=$!

if [ ${#late[@]} -gt 0 ]; then
  runs=()
  for arch in "${late[@]}"; do [ -f "$WORK/init/$arch/card.json" ] || runs+=("$arch:ruler:$(rate "$arch"):0"); done
  if [ ${#runs[@]} -gt 0 ]; then
    (IFS=,; python3 -m benchmarks.zoo.needle_forms --needles 1 --forms ruler --arch "" --extra "${runs[*]}" \
      --steps "$STEPS_A" --width 512 --batch "$BATCH_A" --probe-every 1000 $COMPILE --jobs ${#runs[@]} \
      --state "$WORK/state-a" --stop-at $(( end - 15 )) --ship "$WORK/init" --out "$WORK/a" | tail -20)
    for i in 0 1; do   # the phase-A checkpoints (3 a tar, under the device's 16 MB a file) and the run's table
      group=("${late[@]:$((3 * i)):3}")
      [ ${#group[@]} -gt 0 ] && tar -cf "$OUT/a/init-$i.tar" -C "$WORK" a/needle_forms.json \
        $(for arch in "${group[@]}"; do [ -f "$WORK/init/$arch/card.json" ] && echo "init/$arch"; done)
    done
  fi
  phase_b late "${late[@]}"
fi
wait $pid_early
cat "$WORK"/early-*.log | grep -v "^\s*$" | tail -40

n=0 total=0
for arch in ${ARCHS//,/ }; do
  total=$((total + 1))
  group=late; grep -qx "$arch" "$WORK/early.txt" && group=early
  shipped "$arch" && n=$((n + 1)) || echo "not yet: $arch (group $group)"
done
[ $n -eq $total ] && echo "all $total shipped" || echo "$n of $total shipped and scored"
