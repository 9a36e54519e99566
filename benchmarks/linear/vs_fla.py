"""The public delta-rule ops at their shipped defaults against flash-linear-attention's chunk kernels.

Run on a CUDA machine with fla-core on the path and ``TRITON_CACHE_DIR`` set (the compile workers fill it):
``PYTHONUNBUFFERED=1 python -m benchmarks.linear.vs_fla --out $OUT``.

For each recurrence with an fla equivalent (gated delta rule: ``chunk_gated_delta_rule``; KDA: ``chunk_kda``;
scalar-gated linear attention: ``chunk_simple_gla``; per-channel GLA: ``chunk_gla``; ``--recurrences``) and
each n, one set of inputs from ``kernels/linear/bench.py`` (B=1, H=8, D=128, bf16; fla gets a copy in its
``[B, T, H, D]`` layout); then ours, fla, ours, fla: each figure is the minimum of two medians of 10 calls.
Our ops run as a user calls them: ``gated_delta_rule(q, k, v, g, beta)`` or ``gated_linear_attention(q, k, v, g)``,
shipped ``TUNING``, validation on.
Two clocks per call, CUDA events around it:
  ``flush``: L2 cleared before each call, calls not synchronised (``triton.testing.do_bench``'s method);
  ``sync``:  the device synchronised before and after each call: one call from an idle GPU, host work included.
Also, at ``--profile-n``: each launch of our plan timed alone, the op with ``validate=False``, both ops' kernels
from PyTorch's profiler; ``--sweep``: other launch shapes (bare launches); checks against the chunked PyTorch
form in float32. Writes ``vs_fla_<gpu>.json`` under --out and prints a table last.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import triton
from triton.errors import TritonError

from benchmarks.gpu_check_utils import exponent, kernel_ms, rel
from longctx.kernels.linear import bench as lin_bench
from longctx.kernels.linear import triton_chunk as tc
from longctx.kernels.linear.chunked_torch import chunked_linear_attention
from longctx.kernels.linear.ops import gated_delta_rule, gated_linear_attention

B, H, D = 1, 8, 128
NS = [4096 * 2 ** i for i in range(9)]
RECURRENCES = {"gated_delta": ("scalar", True), "kda": ("channel", True),   # name -> (gate kind, delta rule)
               "simple_gla": ("scalar", False), "gla": ("channel", False)}
REPS, ROUNDS = 10, 2
WITH_FLA = True
FIT_LO = 65536   # the exponent is fitted from this n up (below it both libraries are bound by host work)
CHECKS = ((4133, 4, True), (65536, H, False))   # (n, heads, initial state) of the float32 checks
ALIKE_N = 8192
DEVICE = "cuda"
_FLUSH = None


def _fla_op(name: str):
    if name == "gated_delta":
        from fla.ops.gated_delta_rule import chunk_gated_delta_rule
        return chunk_gated_delta_rule
    if name == "simple_gla":
        from fla.ops.simple_gla import chunk_simple_gla
        return chunk_simple_gla
    if name == "gla":
        from fla.ops.gla import chunk_gla
        return chunk_gla
    from fla.ops.kda import chunk_kda
    return chunk_kda


def _fla_layout(x: dict) -> dict:
    """fla's ``[B, T, H, D]`` copy of our ``[B, H, T, D]`` inputs (absent ones stay None)."""
    return {k: None if v is None else v.transpose(1, 2).contiguous() for k, v in x.items()}


def _float32(x: dict) -> list:
    """q, k, v, g, beta in float32, for the chunked PyTorch form (absent ones stay None)."""
    return [None if x[k] is None else x[k].float() for k in ("q", "k", "v", "g", "beta")]


def _inputs(name: str, n: int, dev) -> tuple[dict, dict]:
    """(ours, fla's copy): q, k, v, g, beta."""
    x = lin_bench.inputs(n, dev, torch.bfloat16, B, H, H, D, *RECURRENCES[name])
    return x, _fla_layout(x)


def _calls(name: str, x: dict, xf: dict) -> tuple:
    delta = RECURRENCES[name][1]

    def ours(**kw):
        if delta:
            return gated_delta_rule(x["q"], x["k"], x["v"], x["g"], x["beta"], **kw)[0]
        return gated_linear_attention(x["q"], x["k"], x["v"], x["g"], **kw)[0]

    if not WITH_FLA:
        return ours, None
    op = _fla_op(name)

    def fla():
        return op(xf["q"], xf["k"], xf["v"], xf["g"], *([xf["beta"]] if delta else []))[0]
    return ours, fla


def _key(name: str) -> tuple[int, bool]:
    """The ``TUNING`` key of a recurrence."""
    gate, delta = RECURRENCES[name]
    return (1 if gate == "scalar" else 2, delta)


def _median_ms(fn, clock: str, reps: int = REPS) -> float:
    """Median over reps calls of fn, ms, by ``clock`` (see the module docstring)."""
    ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
    torch.cuda.synchronize()
    for start, end in ev:
        if clock == "flush":
            _FLUSH.zero_()
        else:
            torch.cuda.synchronize()
        start.record()
        fn()
        end.record()
        if clock == "sync":
            torch.cuda.synchronize()
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) for s, e in ev)


def _interleaved(fns: dict, clocks=("flush", "sync")) -> dict:
    """{name: {clock: min over ROUNDS of the median of REPS}}, the calls interleaved name by name."""
    got = {name: {c: [] for c in clocks} for name in fns}
    for _ in range(ROUNDS):
        for clock in clocks:
            for name, fn in fns.items():
                fn()
                got[name][clock].append(_median_ms(fn, clock))
    return {name: {c: round(min(v), 4) for c, v in d.items()} for name, d in got.items()}


def _rounded(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def _plan_args(x: dict) -> tuple:
    return x["q"], x["k"], x["v"], x["g"], x["beta"], D ** -0.5, None, 64


def _sweep_tunings(name: str) -> list[tc.Tuning]:
    """The shipped entry first, then one change at a time."""
    base = tc.TUNING[_key(name)]
    r = dataclasses.replace
    other_warps = 8 if base.prep_warps == 4 else 4
    prep = []
    if RECURRENCES[name][1]:   # the delta preparation's candidates
        prep = [r(base, prep_warps=other_warps), r(base, prep_lowp=not base.prep_lowp),
                r(base, prep_warps=other_warps, prep_lowp=not base.prep_lowp)]
    return [base, *prep, r(base, state_bv=16, state_stages=2), r(base, state_bv=64, state_stages=2),
            r(base, state_warps=8, state_stages=2), r(base, out_bv=64)]


def _launch_ms(launches) -> dict:
    return {launch.name: round(min(_median_ms(launch, "flush") for _ in range(ROUNDS)), 4) for launch in launches}


def _profile(name: str, n: int, dev, sweep: bool) -> dict:
    x, xf = _inputs(name, n, dev)
    ours, fla = _calls(name, x, xf)
    rec = {"n": n, "shipped": list(dataclasses.astuple(tc.TUNING[_key(name)]))}
    rec["launch_ms"] = _launch_ms(tc.plan_forward(*_plan_args(x))[0])
    rec["bare_ms"] = round(sum(rec["launch_ms"].values()), 4)
    fns = {"validate": ours, "no_validate": lambda: ours(validate=False)}
    rec["op_ms"] = _interleaved({**fns, "fla": fla} if fla else fns)
    rec["ours_kernels_ms"] = kernel_ms(ours)
    if fla:
        rec["fla_kernels_ms"] = kernel_ms(fla)
    if sweep:   # each candidate's time, and its output's error against the chunked PyTorch form in float32
        rec["sweep"] = []
        o_ref = chunked_linear_attention(*_float32(x), D ** -0.5, None, 64)[0]
        for cand in _sweep_tunings(name):
            launches, o, _ = tc.plan_forward(*_plan_args(x), tuning=cand)
            try:
                ms = min(_median_ms(lambda ls=launches: [launch() for launch in ls], "flush") for _ in range(ROUNDS))
                err = rel(o, o_ref)   # before launches run alone: _state rewrites u in place
                rec["sweep"].append({"tuning": list(dataclasses.astuple(cand)), "ms": round(ms, 4),
                                     "launch_ms": _launch_ms(launches), "rel_o": err})
            except TritonError as e:  # a shape that does not build (shared memory) is not a candidate
                rec["sweep"].append({"tuning": list(dataclasses.astuple(cand)), "error": f"{type(e).__name__}: {e}"[:200]})
    return rec


def _checks(names: list[str], dev) -> dict:
    """Our public op against the chunked PyTorch form in float32 (output, final state), and against fla."""
    res = {}
    for name in names:
        gate, delta = RECURRENCES[name]
        for n, heads, init in CHECKS:
            x = lin_bench.inputs(n, dev, torch.bfloat16, B, heads, heads, D, gate, delta)
            s0 = torch.randn(B, heads, D, D, device=dev) if init else None
            kw = {"initial_state": s0, "output_final_state": True}
            o, s = (gated_delta_rule(x["q"], x["k"], x["v"], x["g"], x["beta"], **kw) if delta
                    else gated_linear_attention(x["q"], x["k"], x["v"], x["g"], **kw))
            o_ref, s_ref = chunked_linear_attention(*_float32(x), D ** -0.5, s0, 64)
            row = {"rel_o": rel(o, o_ref), "rel_state": rel(s, s_ref)}
            if not init and WITH_FLA:
                row["rel_o_vs_fla"] = rel(o, _calls(name, x, _fla_layout(x))[1]().transpose(1, 2))
            res[f"{name}_n{n}_H{heads}{'_init' if init else ''}"] = row
    x = lin_bench.inputs(CHECKS[0][0], dev, torch.bfloat16, B, CHECKS[0][1], CHECKS[0][1], D, None, True)
    o, s = gated_delta_rule(x["q"], x["k"], x["v"], None, x["beta"], output_final_state=True)
    o_ref, s_ref = chunked_linear_attention(*(x[k].float() for k in ("q", "k", "v")), None, x["beta"].float(),
                                            D ** -0.5, None, 64)
    res[f"deltanet_n{CHECKS[0][0]}"] = {"rel_o": rel(o, o_ref), "rel_state": rel(s, s_ref)}
    # alike keys (normalised positive vectors), weak decay, beta near 1: where a power series in the solve fails
    n, gen = ALIKE_N, torch.Generator(device=dev).manual_seed(3)
    q = torch.randn(B, H, n, D, device=dev, generator=gen)
    k = F.normalize(torch.randn(B, H, n, D, device=dev, generator=gen).abs(), dim=-1)
    v = torch.randn(B, H, n, D, device=dev, generator=gen)
    g, beta = torch.full((B, H, n), -0.01, device=dev), torch.full((B, H, n), 0.9, device=dev)
    o_ref, s_ref = chunked_linear_attention(q, k, v, g, beta, D ** -0.5, None, 64)
    for dtype in (torch.bfloat16, torch.float32):
        try:
            o, s = gated_delta_rule(q.to(dtype), k.to(dtype), v.to(dtype), g, beta.to(dtype), output_final_state=True)
            res[f"alike_keys_{str(dtype)[6:]}"] = {"rel_o": rel(o, o_ref), "rel_state": rel(s, s_ref)}
        except ValueError as e:
            res[f"alike_keys_{str(dtype)[6:]}"] = {"error": str(e)[:200]}
    return res


def _compile_worker(names: list[str], index: int, sweep: bool) -> None:
    """Fill Triton's disk cache: worker i < len(names) runs fla's op of the i-th recurrence once (its
    autotuner builds every config), the last worker builds our launches (public ops and sweep shapes)."""
    dev = torch.device(DEVICE)
    with torch.inference_mode():
        if index < len(names):
            x, xf = _inputs(names[index], 4096, dev)
            _calls(names[index], x, xf)[1]()
        else:
            for name in names:
                x, xf = _inputs(name, 4096, dev)
                _calls(name, x, xf)[0]()
                for cand in _sweep_tunings(name) if sweep else [None]:
                    for launch in tc.plan_forward(*_plan_args(x), tuning=cand)[0]:
                        try:
                            launch.compile()
                        except TritonError as e:  # reported again where the sweep times it
                            print("compile failed:", launch.name, type(e).__name__, str(e)[:200], flush=True)
        torch.cuda.synchronize()


def _precompile(names: list[str], sweep: bool, timeout: float) -> float:
    t0 = time.time()
    env = {**os.environ, "FLA_CACHE_RESULTS": "0"}   # configs timed beside other workers are not kept
    cmd = [sys.executable, "-m", "benchmarks.linear.vs_fla", "--out", ".", "--compile-worker"]
    procs = [subprocess.Popen([*cmd, str(i), *(["--sweep"] if sweep else []), "--recurrences", ",".join(names)],
                              env=env) for i in range(len(names) + 1)]
    for proc in procs:
        try:
            proc.wait(timeout=max(1.0, timeout - (time.time() - t0)))
        except subprocess.TimeoutExpired:  # what is not built now is built on first use
            proc.kill()
    return round(time.time() - t0, 1)


def main() -> None:
    global _FLUSH, WITH_FLA
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--ns", default=",".join(map(str, NS)), help="sequence lengths, comma-separated")
    ap.add_argument("--profile-n", type=int, default=65536, help="0: no per-launch profile")
    ap.add_argument("--sweep", action="store_true", help="time other launch shapes at --profile-n")
    ap.add_argument("--no-checks", action="store_true")
    ap.add_argument("--no-precompile", action="store_true")
    ap.add_argument("--precompile-s", type=float, default=150.0, help="limit of the compile workers")
    ap.add_argument("--compile-worker", type=int, help="internal: fill Triton's cache and exit")
    ap.add_argument("--tag", default="", help="suffix of the JSON file name")
    ap.add_argument("--no-fla", action="store_true", help="our ops alone (no ratios)")
    ap.add_argument("--recurrences", default=",".join(RECURRENCES), help="comma-separated, of " + ", ".join(RECURRENCES))
    args = ap.parse_args()
    WITH_FLA = not args.no_fla
    names = args.recurrences.split(",")
    unknown = [r for r in names if r not in RECURRENCES]
    if unknown:
        ap.error(f"unknown --recurrences {unknown}; known: {', '.join(RECURRENCES)}")
    if args.compile_worker is not None:
        _compile_worker(names, args.compile_worker, args.sweep)
        return
    dev = torch.device(DEVICE)
    gpu = torch.cuda.get_device_name()
    res = {"device": gpu, "torch": torch.__version__, "triton": triton.__version__, "shape": {"B": B, "H": H, "D": D},
           "dtype": "bfloat16", "method": "min of 2 medians of 10, interleaved ours/fla; clocks flush and sync",
           "tuning": {str(k): list(dataclasses.astuple(v)) for k, v in tc.TUNING.items()}}
    try:
        import fla
        res["fla"] = getattr(fla, "__version__", "?") if WITH_FLA else "not run (--no-fla)"
    except ImportError:
        if WITH_FLA:
            sys.exit("vs_fla: flash-linear-attention (fla-core) is not importable; --no-fla times ours alone")
    t0 = time.time()
    if not args.no_precompile:
        res["precompile_s"] = _precompile(names, args.sweep, args.precompile_s)
        print("precompile", res["precompile_s"], "s", flush=True)
    _FLUSH = torch.empty(256 * 2 ** 20, dtype=torch.int8, device=dev)
    out = args.out / f"vs_fla_{'h100' if 'H100' in gpu else 'h200' if 'H200' in gpu else 'gpu'}{args.tag}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    with torch.inference_mode():   # the JSON is rewritten after each step: a run cut short keeps what it measured
        if not args.no_checks:
            res["checks"] = _checks(names, dev)
            print("checks", json.dumps(res["checks"]), flush=True)
            out.write_text(json.dumps(res, indent=1))
        if args.profile_n:
            res["profile"] = {}
            for name in names:
                res["profile"][name] = _profile(name, args.profile_n, dev, args.sweep)
                print(name, json.dumps(res["profile"][name]), flush=True)
                out.write_text(json.dumps(res, indent=1))
        res["grid"] = []
        for n in map(int, args.ns.split(",")):
            for name in names:
                torch.cuda.empty_cache()
                x, xf = _inputs(name, n, dev)
                ours, fla_fn = _calls(name, x, xf)
                got = _interleaved({"ours": ours, "fla": fla_fn} if fla_fn else {"ours": ours})
                row = {"recurrence": name, "n": n, "ours": got["ours"]}
                if fla_fn:
                    row["fla"] = got["fla"]
                    row["ratio"] = {c: round(got["ours"][c] / got["fla"][c], 3) for c in got["ours"]}
                res["grid"].append(row)
                print(json.dumps(row), f"{time.time() - t0:.0f} s", flush=True)
                out.write_text(json.dumps(res, indent=1))
                del x, xf, ours, fla_fn
    res["exponent_64k_up"] = {}
    for name in names:
        rows = [r for r in res["grid"] if r["recurrence"] == name]
        for who in ("ours", "fla") if WITH_FLA else ("ours",):
            for clock in ("flush", "sync"):
                res["exponent_64k_up"][f"{name}_{who}_{clock}"] = _rounded(exponent(
                    [(r["n"], r[who][clock]) for r in rows if r["n"] >= FIT_LO]))
    out.write_text(json.dumps(res, indent=1))
    print(f"\n{gpu}; ms, min of 2 medians of 10; ratio = ours / fla")
    print(f"{'recurrence':12s} {'n':>8s} {'ours flush':>10s} {'fla flush':>10s} {'ratio':>6s} "
          f"{'ours sync':>10s} {'fla sync':>10s} {'ratio':>6s}")
    for r in res["grid"]:
        f, q = r.get("fla", {"flush": math.nan, "sync": math.nan}), r.get("ratio", {"flush": math.nan, "sync": math.nan})
        print(f"{r['recurrence']:12s} {r['n']:8d} {r['ours']['flush']:10.3f} {f['flush']:10.3f} "
              f"{q['flush']:6.3f} {r['ours']['sync']:10.3f} {f['sync']:10.3f} {q['sync']:6.3f}")
    print("exponents 64K..:", res["exponent_64k_up"])


if __name__ == "__main__":
    main()
