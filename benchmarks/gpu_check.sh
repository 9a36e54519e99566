#!/usr/bin/env bash
# One device call: kernel tests at full size without the interpreter, then `evals bench` and `evals probe`
# at the issue's shape (B=1, H=8, D=128, bf16, n up to 1M), JSON and logs under $OUT.
# Needs the wheels in .whl (typer, rich, pytest and their deps; see benchmarks/README.md).
# Usage (repo root, on the device): bash benchmarks/gpu_check.sh [tests|bench|probe ...]
set -u
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  .whl/typer-*.whl .whl/click-*.whl .whl/rich-*.whl .whl/shellingham-*.whl .whl/markdown_it_py-*.whl \
  .whl/mdurl-*.whl .whl/pygments-*.whl .whl/pytest-*.whl .whl/pluggy-*.whl .whl/iniconfig-*.whl \
  .whl/pytest_timeout-*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TRITON_INTERPRET=0
STAGES=${*:-tests bench probe}
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$OUT/gpu.txt"
for stage in $STAGES; do
  start=$(date +%s)
  case $stage in
    tests) timeout 170 python3 -m pytest -p no:cacheprovider -q \
             ${TEST_FILES:-tests/test_kernels_flash.py tests/test_kernels_sparse.py} 2>&1 | tee "$OUT/tests.log" | tail -25 ;;
    bench) timeout 210 python3 - "$OUT" <<'PY' 2>&1 | tee "$OUT/bench.log" | grep -v "^│\|^┃\|^┏\|^┡\|^└"
# typer on the device wants pydantic, which is not there: call the command's functions directly
import json, os, sys, torch
from rich.console import Console
from longctx.evals.bench import print_table, run_bench
from longctx.evals.ctx import parse_ctx
names = os.environ.get("BENCH_KERNELS", "flash_dense,sdpa_flash,sdpa_cudnn,ssa,ssa_select,hyper,dsa,flash_window,flash_decode")
H_kv = int(os.environ.get("BENCH_HKV", "8"))
res = run_bench(names.split(","), parse_ctx(os.environ.get("BENCH_N", "16k-1m")), 1, 8, H_kv, 128, torch.bfloat16, "cuda",
                float(os.environ.get("BENCH_MAX_S", "8")), log=print)
open(os.path.join(sys.argv[1], os.environ.get("BENCH_FILE", "bench.json")), "w").write(json.dumps(res, indent=1))
print_table(res, Console(width=160))
PY
      ;;
    probe) timeout 100 python3 - "$OUT" <<'PY' 2>&1 | tee "$OUT/probe.log" | tail -20
import json, os, sys, torch
from longctx.evals.ctx import parse_ctx
from longctx.evals.probe import run_probe
names = os.environ.get("PROBE_KERNELS", "ssa,hyper,flash_window,flash_dense,dsa")
res = run_probe(names.split(","), parse_ctx(os.environ.get("PROBE_N", "16k,128k,1m")), 16, 1, 8, 8, 128, torch.bfloat16,
                "cuda", float(os.environ.get("PROBE_STRENGTH", "2")), 0, 40.0, log=print)
open(os.path.join(sys.argv[1], os.environ.get("PROBE_FILE", "probe.json")), "w").write(json.dumps(res, indent=1))
PY
      ;;
  esac
  echo "== stage $stage: $(( $(date +%s) - start )) s"
done
python3 - "$OUT" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
if (out / "bench.json").exists():
    b = json.loads((out / "bench.json").read_text())
    for r in b["results"]:
        print(f"{r['kernel']:14s} {r['n']:>8d} {r['ms']:10.3f} ms {r['tflops'] or 0:7.1f} TF/s "
              f"mem {r['peak_mem_gb'] or 0:6.2f} GB  xflash {r['ratio_vs_sdpa_flash'] or 0:7.2f}  xcudnn {r['ratio_vs_cudnn'] or 0:7.2f}")
    print({k: (round(v["exponent"], 3), v["fit_range"]) for k, v in b["exponents"].items()})
if (out / "probe.json").exists():
    p = json.loads((out / "probe.json").read_text())
    by = {}
    for r in p["results"]:
        by.setdefault((r["kernel"], r["n"]), []).append(r["accuracy"])
    for (k, n), accs in by.items():
        print(f"probe {k:14s} n={n:>8d} min acc {min(accs):.3f} mean {sum(accs)/len(accs):.3f}")
PY
