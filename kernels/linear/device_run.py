"""One GPU session for the recurrent families (linear attention, Mamba-2 SSD): tests at full size, then timings.

Run on the device (with the flash-linear-attention wheel installed on PYTHONPATH where available):
``PYTHONUNBUFFERED=1 python -m kernels.linear.device_run --out $OUT``. Steps, each guarded by a time budget:
1. the kernel tests, compiled (no interpreter), including the full-size ``gpu`` cases;
2. every case of ``kernels/linear/bench.py`` and ``kernels/ssd/bench.py`` at n = 4K..1M (B=1, H=8, D=128,
   bf16), median of ``triton.testing.do_bench``, peak memory, exponent fitted over 64K..1M;
3. SDPA flash (causal) up to 128K for the ratio column;
4. flash-linear-attention's chunk kernels at 64K on the same recurrences, with the relative difference of
   their outputs from ours.
Writes ``recurrent_<gpu>.json`` (the ``evals bench`` format) and ``recurrent_extra.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import triton.testing

from kernels.linear import bench as lin_bench
from kernels.ssd import bench as ssd_bench

SHAPE = {"B": 1, "H": 8, "H_kv": 8, "D": 128}
NS = [4096 * 2 ** i for i in range(9)]
FIT_LO = 65536


def _time(fn) -> tuple[float, float]:
    """(median ms, peak GB allocated during one call)."""
    fn()
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    peak = (torch.cuda.max_memory_allocated() - base) / 1e9
    return triton.testing.do_bench(fn, warmup=10, rep=60, return_mode="median"), peak


def _fit(rows: list[dict]) -> dict:
    pts = [(math.log(r["n"]), math.log(r["ms"])) for r in rows if r["n"] >= FIT_LO]
    if len(pts) < 2:
        return {}
    mx, my = sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts)
    slope = sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)
    return {"exponent": round(slope, 4), "fit_range": [min(r["n"] for r in rows if r["n"] >= FIT_LO),
                                                      max(r["n"] for r in rows)]}


def _tests(out: Path, extra: dict, timeout: float) -> None:
    print("== tests", flush=True)
    r = subprocess.run([sys.executable, "-m", "pytest", "tests/test_kernels_linear.py", "tests/test_kernels_ssd.py",
                        "-q", "-p", "no:cacheprovider", "--timeout", "60"], capture_output=True, text=True,
                       timeout=timeout)
    (out / "pytest.log").write_text(r.stdout + r.stderr)
    extra["pytest"] = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr[-500:]
    print(r.stdout[-3000:], flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--budget-s", type=float, default=240.0)
    ap.add_argument("--no-tests", action="store_true", help="timings only (the tests took 64 s on an H100)")
    args = ap.parse_args()
    t0 = time.time()
    left = lambda: args.budget_s - (time.time() - t0)  # noqa: E731
    dev = torch.device("cuda")
    name = torch.cuda.get_device_name()
    tag = "h100" if "H100" in name else "h200" if "H200" in name else "gpu"
    extra: dict = {"device": name, "torch": torch.__version__, "triton": triton.__version__}
    out = {"kind": "bench", "device": name, "dtype": "bfloat16", "shape": SHAPE, "results": [], "exponents": {}}

    def save() -> None:
        (args.out / f"recurrent_{tag}.json").write_text(json.dumps(out, indent=1))
        (args.out / "recurrent_extra.json").write_text(json.dumps(extra, indent=1))

    extra["pytest"] = "not run (--no-tests)"
    if not args.no_tests:
        _tests(args.out, extra, max(30, min(110, left() - 120)))
    save()

    cases = {k: v for k, v in {**lin_bench.CASES, **ssd_bench.CASES}.items() if not k.startswith("fla_")}
    for cname, case in cases.items():
        rows = []
        for n in NS:
            if left() < 60:
                break
            try:
                fn, flops = case(n, dev, torch.bfloat16, SHAPE["B"], SHAPE["H"], SHAPE["H_kv"], SHAPE["D"])
                ms, peak = _time(fn)
                del fn
            except torch.cuda.OutOfMemoryError:
                break
            rows.append({"kernel": cname, "n": n, "ms": ms, "tflops": flops / ms / 1e9, "peak_mem_gb": peak,
                         "ratio_vs_sdpa_flash": None, "ratio_vs_cudnn": None})
            torch.cuda.empty_cache()
        out["results"] += rows
        if _fit(rows):
            out["exponents"][cname] = _fit(rows)
        print(cname, " ".join(f"{r['n'] // 1024}K:{r['ms']:.3f}" for r in rows), out["exponents"].get(cname), flush=True)
        save()

    sdpa = {}
    for n in NS[:6]:
        if left() < 50:
            break
        q, k, v = (torch.randn(1, 8, n, 128, device=dev, dtype=torch.bfloat16) for _ in range(3))
        with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.FLASH_ATTENTION):
            ms, peak = _time(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True))
        sdpa[n] = ms
        out["results"].append({"kernel": "sdpa_flash", "n": n, "ms": ms, "tflops": 2 * n * n * 128 * 8 / ms / 1e9,
                               "peak_mem_gb": peak, "ratio_vs_sdpa_flash": 1.0, "ratio_vs_cudnn": None})
        del q, k, v
    for row in out["results"]:
        if row["kernel"] != "sdpa_flash" and row["n"] in sdpa:
            row["ratio_vs_sdpa_flash"] = row["ms"] / sdpa[row["n"]]
    print("sdpa_flash", {k // 1024: round(v, 3) for k, v in sdpa.items()}, flush=True)
    save()

    extra["fla"] = {}
    ours_name = {"fla_simple_gla": "gla_scalar", "fla_gated_delta": "gated_delta", "fla_gla": "gla_channel",
                 "fla_kda": "kda"}
    for fname in ("fla_simple_gla", "fla_gated_delta", "fla_gla", "fla_kda"):
        if fname not in lin_bench.CASES:
            extra["fla"]["error"] = "fla is not importable"
            break
        if left() < 25:
            extra["fla"][fname] = "skipped: time budget"
            continue
        try:
            torch.manual_seed(0)
            fn, flops = lin_bench.CASES[fname](65536, dev, torch.bfloat16, 1, 8, 8, 128)
            ms, peak = _time(fn)
            torch.manual_seed(0)
            mine, _ = lin_bench.CASES[ours_name[fname]](65536, dev, torch.bfloat16, 1, 8, 8, 128)
            a, b = fn()[0].float().transpose(1, 2), mine()[0].float()
            diff = float((a - b).norm() / b.norm())
            our_ms = next(r["ms"] for r in out["results"] if r["kernel"] == ours_name[fname] and r["n"] == 65536)
            extra["fla"][fname] = {"ms": ms, "ours_ms": our_ms, "ours_over_fla": our_ms / ms, "rel_diff": diff}
            out["results"].append({"kernel": fname, "n": 65536, "ms": ms, "tflops": flops / ms / 1e9,
                                   "peak_mem_gb": peak, "ratio_vs_sdpa_flash": ms / sdpa[65536] if 65536 in sdpa
                                   else None, "ratio_vs_cudnn": None})
            print(fname, extra["fla"][fname], flush=True)
        except Exception as e:  # a failing foreign package is reported, not fatal
            extra["fla"][fname] = f"error: {type(e).__name__}: {e}"[:400]
            print(fname, extra["fla"][fname], flush=True)
        save()

    print("\nkernel           n=4K      64K      1M   exponent(64K..1M)")
    for cname in cases:
        ms = {r["n"]: r["ms"] for r in out["results"] if r["kernel"] == cname}
        print(f"{cname:14s} {ms.get(4096, float('nan')):8.3f} {ms.get(65536, float('nan')):8.3f} "
              f"{ms.get(1 << 20, float('nan')):8.2f}   {out['exponents'].get(cname, {}).get('exponent')}")
    for fname, v in extra["fla"].items():
        print(fname, v if isinstance(v, str) else f"fla {v['ms']:.3f} ms, ours/fla {v['ours_over_fla']:.2f}, "
              f"rel diff {v['rel_diff']:.2e}")
    print("pytest:", extra["pytest"], f"elapsed {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
