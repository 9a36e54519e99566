"""One GPU call for the recurrent families (linear attention, Mamba-2 SSD): launch-shape sweep, checks, timings.

Run on the device (flash-linear-attention's wheel on PYTHONPATH where available, ``TRITON_CACHE_DIR`` set):
``PYTHONUNBUFFERED=1 python -m benchmarks.linear.device_run --out $OUT --no-tests``. Steps, each guarded by
``--budget-s``:
1. (unless ``--no-tests``) the kernel tests, compiled, including the full-size ``gpu`` cases;
2. every launch-shape candidate and flash-linear-attention's ops compiled into Triton's disk cache by parallel
   worker processes (``--compile-worker``), so the steps below load them;
3. at 64K (B=1, H=8, D=128, bf16): each variant's ``_state`` candidates, then its ``_output`` candidates, timed as
   the bare launches; the best per variant goes into ``triton_chunk.TUNING`` for the rest of the run, with the
   time of each launch of it (``--short``: only the TUNING entry and ``SHORT``'s alternatives);
4. correctness of the chosen shapes against the chunked PyTorch form in float32 on the GPU: at 64K, and at
   T = 4133, H = 4 with an initial state (output and final state);
5. the public ops at 64K, flash-linear-attention's chunk kernels on the same recurrences (unless ``--no-fla``)
   with the relative difference of outputs and a profiler breakdown of both, and the gated ops with
   ``validate=False``;
6. the public ops at n = 4K..1M, exponent fitted over 64K..1M, and SDPA flash (causal) up to 128K.
Writes ``recurrent_<gpu>.json`` (the ``evals bench`` format) and ``recurrent_<gpu>_extra.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import triton.testing

from benchmarks.gpu_check_utils import kernel_ms
from longctx.kernels.linear import bench as lin_bench
from longctx.kernels.linear import triton_chunk as tc
from longctx.kernels.linear.chunked_torch import chunked_linear_attention
from longctx.kernels.ssd import bench as ssd_bench

SHAPE = {"B": 1, "H": 8, "H_kv": 8, "D": 128}
NS = [4096 * 2 ** i for i in range(9)]
FIT_LO = 65536
N_TUNE = 65536
VARIANTS = {  # name -> (gate, delta); "ssd" runs GATE 1 with Mamba-2's extras
    "linear_attn": (None, False), "gla_scalar": ("scalar", False), "gla_channel": ("channel", False),
    "gated_delta": ("scalar", True), "kda": ("channel", True), "ssd": ("scalar", False),
}
FLA = {"gla_scalar": "fla_simple_gla", "gated_delta": "fla_gated_delta", "gla_channel": "fla_gla", "kda": "fla_kda"}
T_ = tc.Tuning
STATE_PLAIN = [T_(64, 64, 4, 3, 64, 8, 2), T_(64, 64, 8, 2, 64, 8, 2), T_(32, 64, 4, 3, 64, 8, 2),
               T_(64, 32, 4, 3, 64, 8, 2), T_(32, 32, 4, 2, 64, 8, 2), T_(32, 32, 2, 3, 64, 8, 2),
               T_(32, 32, 4, 3, 64, 8, 2), T_(128, 32, 8, 2, 64, 8, 2)]
# 4-warp _delta_prep throughout (0.35-0.43 ms faster than 8 in runs 2-4), one 8-warp entry kept for comparison
STATE_DELTA = [T_(128, 32, 8, 2, 64, 8, 2, 4), T_(128, 16, 8, 2, 64, 8, 2, 4), T_(128, 32, 8, 3, 64, 8, 2, 4),
               T_(128, 16, 4, 2, 64, 8, 2, 4), T_(128, 64, 8, 2, 64, 8, 2, 4), T_(128, 32, 8, 2, 64, 8, 2),
               T_(128, 32, 4, 3, 64, 8, 2, 4), T_(128, 64, 4, 2, 64, 8, 2, 4)]
OUTPUT = [(64, 8, 2), (128, 8, 2), (64, 4, 2), (128, 4, 2), (32, 4, 2)]
SHORT = {  # --short: alternatives timed beside the TUNING entry ((GATE, DELTA) -> candidates)
    (2, False): [T_(64, 32, 4, 3, 128, 4, 2)],
    (1, True): [T_(128, 32, 4, 3, 128, 4, 2, 8), T_(128, 16, 4, 2, 128, 4, 2, 4)],
    (2, True): [T_(128, 32, 4, 3, 128, 4, 2, 8), T_(128, 16, 4, 2, 128, 4, 2, 4), T_(128, 16, 8, 2, 128, 4, 2, 4)],
}


def _gate_key(name: str) -> tuple[int, bool]:
    gate, delta = VARIANTS[name]
    return {None: 0, "scalar": 1, "channel": 2}[gate], delta


def _inputs(name: str, n: int, H: int, dev, init: bool) -> tuple[tuple, dict]:
    """plan_forward's arguments for one variant: (positional, Mamba-2 extras)."""
    D = SHAPE["D"]
    s0 = torch.randn(1, H, D, D, device=dev) if init else None
    if name == "ssd":
        x = ssd_bench.ssd_inputs(n, dev, torch.bfloat16, 1, H, H, D)
        return (x["C"], x["B"], x["x"], x["dt"], None, 1.0, s0, 64), {"g_scale": x["A"], "v_scale": x["dt"],
                                                                       "skip": x["D"]}
    gate, delta = VARIANTS[name]
    x = lin_bench.inputs(n, dev, torch.bfloat16, 1, H, H, D, gate, delta)
    if name == "linear_attn":
        x["q"], x["k"] = F.elu(x["q"]) + 1, F.elu(x["k"]) + 1
    return (x["q"], x["k"], x["v"], x["g"], x["beta"], D ** -0.5, s0, 64), {}


def _reference(args: tuple, extras: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The chunked PyTorch form in float32 of the same problem: (o, final state)."""
    q, k, v, g, beta, scale, s0, C = args
    if extras:
        dt = extras["v_scale"]
        o, s = chunked_linear_attention(q.float(), k.float(), v.float() * dt[..., None],
                                        dt * extras["g_scale"][:, None], None, scale, s0, C)
        return o + extras["skip"][:, None, None] * v.float(), s
    f = [None if x is None else x.float() for x in (q, k, v, g, beta)]
    return chunked_linear_attention(*f, scale, s0, C)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


def _time(fn, rep: int = 60) -> tuple[float, float]:
    """(median ms, peak GB allocated during one call)."""
    fn()
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    peak = (torch.cuda.max_memory_allocated() - base) / 1e9
    return triton.testing.do_bench(fn, warmup=5, rep=rep, return_mode="median"), peak


def _fit(rows: list[dict]) -> dict:
    pts = [(math.log(r["n"]), math.log(r["ms"])) for r in rows if r["n"] >= FIT_LO]
    if len(pts) < 2:
        return {}
    mx, my = sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts)
    slope = sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)
    return {"exponent": round(slope, 4), "fit_range": [min(r["n"] for r in rows if r["n"] >= FIT_LO),
                                                      max(r["n"] for r in rows)]}


def _tests(out: Path, extra: dict, timeout: float) -> None:
    r = subprocess.run([sys.executable, "-m", "pytest", "tests/test_kernels_linear.py", "tests/test_kernels_ssd.py",
                        "-q", "-p", "no:cacheprovider", "--timeout", "60"], capture_output=True, text=True,
                       timeout=timeout)
    (out / "pytest.log").write_text(r.stdout + r.stderr)
    extra["pytest"] = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr[-500:]
    print(r.stdout[-3000:], flush=True)


def _candidates(name: str, state: tc.Tuning | None, short: bool = False) -> list[tc.Tuning]:
    """_state candidates (state is None), else _output candidates around the chosen _state shape; with short,
    the TUNING entry and its SHORT alternatives, and no _output candidates."""
    if short:
        return [] if state else [tc.TUNING[_gate_key(name)]] + SHORT.get(_gate_key(name), [])
    if state is None:
        return STATE_DELTA if VARIANTS[name][1] else STATE_PLAIN
    return [T_(state.state_bk, state.state_bv, state.state_warps, state.state_stages, bv, w, st, state.prep_warps)
            for bv, w, st in OUTPUT]


def _short_autotune(warmup: int, rep: int) -> None:
    """Triton's autotuner (flash-linear-attention's kernels use it) times each config for 25 + 100 ms by
    default; these calls pass no warm-up or repeat, so they take the shorter ones given here."""
    full = triton.testing.do_bench

    def bench(fn, warmup_ms=warmup, rep_ms=rep, *rest, **kw):
        return full(fn, kw.pop("warmup", warmup_ms), kw.pop("rep", rep_ms), *rest, **kw)

    triton.testing.do_bench = bench


def _compile_worker(index: int, workers: int, short: bool, fla: bool) -> None:
    """One of ``workers`` processes filling Triton's disk cache: the first ones run one of flash-linear-attention's
    ops each (its autotuning compiles every config; timings here are thrown away), the others share the
    candidate launches."""
    _short_autotune(1, 1)
    dev = torch.device("cuda")
    jobs = {}
    for name in VARIANTS:
        sweep = "gla_scalar" if name == "ssd" else name
        cands = _candidates(sweep, None, short) + _candidates(sweep, _candidates(sweep, None, short)[0], short)
        # T = 4096 specialises as every benchmark length (T % 16 == 0); 4133 with a state as the check
        for n, H, init in ((4096, SHAPE["H"], False), (4133, 4, True)):
            args, extras = _inputs(name, n, H, dev, init)
            for cand in cands:
                for launch in tc.plan_forward(*args, **extras, tuning=cand)[0]:
                    jobs[(name, n, launch.name, tuple(sorted(launch.kwargs.items())))] = launch
    fla = [name for name in FLA.values() if name in lin_bench.CASES] if fla else []
    if index < len(fla):
        lin_bench.CASES[fla[index]](4096, dev, torch.bfloat16, 1, 8, 8, 128)[0]()
        torch.cuda.synchronize()
        return
    for launch in list(jobs.values())[index - len(fla)::workers - len(fla)]:
        try:
            launch.compile()
        except Exception as e:  # the sweep skips a candidate that does not build
            print("compile failed:", launch.name, launch.kwargs, type(e).__name__, str(e)[:200], flush=True)


def _precompile(workers: int, timeout: float, flags: list[str]) -> float:
    """Run ``workers`` compile processes at once (with the run's flags); returns the seconds they took."""
    t0 = time.time()
    env = {**os.environ, "FLA_CACHE_RESULTS": "0"}
    procs = [subprocess.Popen([sys.executable, "-m", "benchmarks.linear.device_run", "--out", ".", "--compile-worker",
                               f"{i}/{workers}", *flags], env=env) for i in range(workers)]
    for proc in procs:
        try:
            proc.wait(timeout=max(1.0, timeout - (time.time() - t0)))
        except subprocess.TimeoutExpired:  # compiling on demand instead costs time, not correctness
            proc.kill()
    return time.time() - t0


def _sweep(name: str, args: tuple, extras: dict, record: dict, left, short: bool) -> tc.Tuning:
    """Time each candidate's bare launches at 64K; returns the fastest shape."""
    best, best_ms, rows = tc.TUNING[_gate_key(name)], float("inf"), []
    for stage in ("state", "output"):
        for cand in _candidates(name, None if stage == "state" else best, short):
            if left() < 40:
                break
            launches = tc.plan_forward(*args, **extras, tuning=cand)[0]
            try:
                ms = triton.testing.do_bench(lambda ls=launches: [launch() for launch in ls], warmup=3, rep=25,
                                             return_mode="median")
            except Exception as e:  # e.g. more shared memory than the chip has: not a candidate
                rows.append({"tuning": list(cand.__dict__.values()), "error": f"{type(e).__name__}: {e}"[:200]})
                continue
            rows.append({"tuning": list(cand.__dict__.values()), "ms": ms})
            if ms < best_ms:
                best, best_ms = cand, ms
    launches = tc.plan_forward(*args, **extras, tuning=best)[0]
    record[name] = {"candidates": rows, "best": list(best.__dict__.values()), "best_ms": best_ms,
                    "launch_ms": {launch.name: triton.testing.do_bench(launch, warmup=3, rep=20,
                                                                       return_mode="median") for launch in launches}}
    print(f"{name:12s} best {tuple(best.__dict__.values())} {best_ms:.3f} ms; launches "
          + " ".join(f"{k} {v:.3f}" for k, v in record[name]["launch_ms"].items())
          + "; candidates " + " ".join(f"{r.get('ms', float('nan')):.3f}" for r in rows), flush=True)
    return best


def _check(name: str, dev, n: int, H: int, init: bool) -> dict:
    args, extras = _inputs(name, n, H, dev, init)
    o, s, _ = tc.chunk_forward(*args, **extras)
    o_ref, s_ref = _reference(args, extras)
    return {"n": n, "H": H, "init": init, "rel_o": _rel(o, o_ref), "rel_state": _rel(s, s_ref)}


def _fla(extra: dict, out: dict, left) -> None:
    extra["fla"] = {}
    for ours, fname in FLA.items():
        if fname not in lin_bench.CASES:
            extra["fla"]["error"] = "fla is not importable"
            return
        if left() < 30:
            extra["fla"][fname] = "skipped: time budget"
            continue
        try:
            torch.manual_seed(0)
            fn, flops = lin_bench.CASES[fname](N_TUNE, torch.device("cuda"), torch.bfloat16, 1, 8, 8, 128)
            ms, peak = _time(fn)
            torch.manual_seed(0)
            mine, _ = lin_bench.CASES[ours](N_TUNE, torch.device("cuda"), torch.bfloat16, 1, 8, 8, 128)
            diff = _rel(mine()[0], fn()[0].transpose(1, 2))
            our_ms = next(r["ms"] for r in out["results"] if r["kernel"] == ours and r["n"] == N_TUNE)
            extra["fla"][fname] = {"ms": ms, "ours_ms": our_ms, "ours_over_fla": our_ms / ms, "rel_diff": diff,
                                   "kernels_ms": kernel_ms(fn), "ours_kernels_ms": kernel_ms(mine)}
            out["results"].append({"kernel": fname, "n": N_TUNE, "ms": ms, "tflops": flops / ms / 1e9,
                                   "peak_mem_gb": peak, "ratio_vs_sdpa_flash": None, "ratio_vs_cudnn": None})
            print(fname, {k: v for k, v in extra["fla"][fname].items() if not k.endswith("kernels_ms")}, flush=True)
            rec = extra["fla"][fname]
            print("   fla kernels:", rec["kernels_ms"], "\n   ours:", rec["ours_kernels_ms"], flush=True)
        except Exception as e:  # a failing foreign package is reported, not fatal
            extra["fla"][fname] = f"error: {type(e).__name__}: {e}"[:400]
            print(fname, extra["fla"][fname], flush=True)


def _no_validate(left) -> dict:
    """The public gated ops at 64K with ``validate=False`` (no range check, no device sync), ms."""
    from longctx.kernels.linear.ops import gated_delta_rule, gated_linear_attention
    from longctx.kernels.ssd.ops import ssd_chunk_scan

    dev, D, res = torch.device("cuda"), SHAPE["D"], {}
    for name, (gate, delta) in VARIANTS.items():
        if gate is None or left() < 20:
            continue
        if name == "ssd":
            x = ssd_bench.ssd_inputs(N_TUNE, dev, torch.bfloat16, 1, SHAPE["H"], SHAPE["H_kv"], D)
            res[name] = _time(lambda x=x: ssd_chunk_scan(x["x"], x["dt"], x["A"], x["B"], x["C"], x["D"],
                                                         validate=False))[0]
            continue
        x = lin_bench.inputs(N_TUNE, dev, torch.bfloat16, 1, SHAPE["H"], SHAPE["H_kv"], D, gate, delta)
        if delta:
            res[name] = _time(lambda x=x: gated_delta_rule(x["q"], x["k"], x["v"], x["g"], x["beta"],
                                                           validate=False))[0]
        else:
            res[name] = _time(lambda x=x: gated_linear_attention(x["q"], x["k"], x["v"], x["g"], validate=False))[0]
    return res


def _grid(cases: dict, out: dict, ns: list[int], left) -> None:
    dev = torch.device("cuda")
    for cname, case in cases.items():
        for n in ns:
            if left() < 25:
                return
            try:
                fn, flops = case(n, dev, torch.bfloat16, SHAPE["B"], SHAPE["H"], SHAPE["H_kv"], SHAPE["D"])
                ms, peak = _time(fn)
                del fn
            except torch.cuda.OutOfMemoryError:
                break
            out["results"].append({"kernel": cname, "n": n, "ms": ms, "tflops": flops / ms / 1e9, "peak_mem_gb": peak,
                                   "ratio_vs_sdpa_flash": None, "ratio_vs_cudnn": None})
            torch.cuda.empty_cache()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--budget-s", type=float, default=240.0)
    ap.add_argument("--no-tests", action="store_true", help="skip the compiled test run (64 s on an H100)")
    ap.add_argument("--workers", type=int, default=14, help="parallel compile processes")
    ap.add_argument("--short", action="store_true", help="time only the TUNING shapes and SHORT's alternatives")
    ap.add_argument("--no-fla", action="store_true", help="skip flash-linear-attention (its compile takes ~100 s)")
    ap.add_argument("--compile-worker", help="internal: I/N, fill the compile cache and exit")
    args = ap.parse_args()
    if args.compile_worker:
        _compile_worker(*map(int, args.compile_worker.split("/")), args.short, not args.no_fla)
        return
    t0 = time.time()
    def left() -> float:
        return args.budget_s - (time.time() - t0)

    dev = torch.device("cuda")
    name = torch.cuda.get_device_name()
    tag = "h100" if "H100" in name else "h200" if "H200" in name else "gpu"
    extra: dict = {"device": name, "torch": torch.__version__, "triton": triton.__version__,
                   "pytest": "not run (--no-tests)", "sweep": {}, "checks": {}}
    out = {"kind": "bench", "device": name, "dtype": "bfloat16", "shape": SHAPE, "results": [], "exponents": {}}

    def save() -> None:
        (args.out / f"recurrent_{tag}.json").write_text(json.dumps(out, indent=1))
        (args.out / f"recurrent_{tag}_extra.json").write_text(json.dumps(extra, indent=1))

    _short_autotune(5, 20)
    if not args.no_tests:
        _tests(args.out, extra, max(30, min(110, left() - 150)))
    torch.manual_seed(0)
    flags = ["--short"] * args.short + ["--no-fla"] * args.no_fla
    extra["precompile_s"] = _precompile(args.workers, min(120.0, left() / 2), flags)
    print(f"precompiled in {extra['precompile_s']:.0f} s", flush=True)
    inputs = {v: _inputs(v, N_TUNE, SHAPE["H"], dev, False) for v in VARIANTS if v != "ssd"}
    for v, (a, ex) in inputs.items():  # SSD is GATE 1 too: it runs with gla_scalar's shapes
        if left() > 40:
            tc.TUNING[_gate_key(v)] = _sweep(v, a, ex, extra["sweep"], left, args.short)
    extra["tuning"] = {f"{g}{'d' if d else ''}": list(t.__dict__.values()) for (g, d), t in tc.TUNING.items()}
    del inputs
    save()
    for v in VARIANTS:
        if left() > 40:
            extra["checks"][v] = [_check(v, dev, N_TUNE, SHAPE["H"], False), _check(v, dev, 4133, 4, True)]
            print(v, "check", extra["checks"][v], flush=True)
    save()
    cases = {k: c for k, c in {**lin_bench.CASES, **ssd_bench.CASES}.items() if not k.startswith("fla_")}
    _grid(cases, out, [N_TUNE], left)
    save()
    extra["fla"] = {}
    if not args.no_fla:
        _fla(extra, out, left)
    extra["no_validate_ms"] = _no_validate(left)
    print("public ops at 64K with validate=False:", extra["no_validate_ms"], flush=True)
    save()
    _grid(cases, out, [n for n in NS if n != N_TUNE], left)
    sdpa = {}
    for n in NS[:6]:
        if left() < 15:
            break
        q, k, v = (torch.randn(1, 8, n, 128, device=dev, dtype=torch.bfloat16) for _ in range(3))
        with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.FLASH_ATTENTION):
            ms, peak = _time(lambda q=q, k=k, v=v: F.scaled_dot_product_attention(q, k, v, is_causal=True), rep=30)
        sdpa[n] = ms
        out["results"].append({"kernel": "sdpa_flash", "n": n, "ms": ms, "tflops": 2 * n * n * 128 * 8 / ms / 1e9,
                               "peak_mem_gb": peak, "ratio_vs_sdpa_flash": 1.0, "ratio_vs_cudnn": None})
        del q, k, v
    for row in out["results"]:
        if row["kernel"] != "sdpa_flash" and row["n"] in sdpa:
            row["ratio_vs_sdpa_flash"] = row["ms"] / sdpa[row["n"]]
    out["results"].sort(key=lambda r: (r["kernel"], r["n"]))
    for cname in cases:
        fit = _fit([r for r in out["results"] if r["kernel"] == cname])
        if fit:
            out["exponents"][cname] = fit
    save()

    print("\nkernel           n=4K      64K      1M   exponent(64K..1M)  ours/fla@64K")
    for cname in cases:
        ms = {r["n"]: r["ms"] for r in out["results"] if r["kernel"] == cname}
        f = extra["fla"].get(FLA.get(cname, ""), {})
        print(f"{cname:14s} {ms.get(4096, float('nan')):8.3f} {ms.get(N_TUNE, float('nan')):8.3f} "
              f"{ms.get(1 << 20, float('nan')):8.2f}   {out['exponents'].get(cname, {}).get('exponent')}"
              f"   {f.get('ours_over_fla', '-') if isinstance(f, dict) else f}")
    for fname, val in extra["fla"].items():
        print(fname, val if isinstance(val, str) else f"fla {val['ms']:.3f} ms, ours/fla {val['ours_over_fla']:.2f}, "
              f"rel diff {val['rel_diff']:.2e}")
    print("pytest:", extra["pytest"], f"elapsed {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
