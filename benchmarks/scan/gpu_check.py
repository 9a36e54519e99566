"""GPU check of the selective-scan family in one call: correctness at full size, then timings.

Run on the device: ``PYTHONPATH=$PWD python -m benchmarks.scan.gpu_check --out $OUT`` (torch, triton, numpy and
the repo only; about a minute after compilation on an H100). On the CPU, ``--cpu-smoke`` runs the same steps at
tiny sizes under ``TRITON_INTERPRET=1`` so the script is known to run.

1. errors: Triton prefill (fp32, bf16, fp16; D skip, gate, initial state; grouped B/C; N = 64), state
   hand-over, decode steps from the handed-over state, and the PyTorch training path, each as the relative error
   ``‖out − ref‖ / ‖ref‖`` against the float64 recurrence (``reference.py``, run on the device);
2. prefill time (median of ``triton.testing.do_bench``) at B=1, 1024 channels, N=16, bf16, n = 16K..1M,
   effective GB/s of the tensors it must read and write, and the exponent of time against n over 64K..1M;
3. a small sweep of the prefill's block sizes (channels x tokens x warps) at n = 64K;
4. one decode step (the public op with its argument checks, and the bare kernel) at batch 1 and 16;
5. the training path (PyTorch doubling scan, forward + backward) at the zoo's small shape
   (B 16, 464 channels, N 16, T 2048, float32): time and peak memory;
6. one forward + backward of the small zoo models mamba1, mamba2 and dense (batch 16, 2048 tokens, bf16
   autocast as the trainer runs them): time and peak memory, so mamba1's training cost reads against theirs.
Prints one table last and writes ``scan_gpu_check.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from functools import partial
from pathlib import Path


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU under TRITON_INTERPRET=1")
    return p.parse_args()


def main() -> None:
    args = _args()
    if args.cpu_smoke:   # before triton_scan is imported: it reads the flag once
        os.environ["TRITON_INTERPRET"] = "1"
    import torch
    import torch.nn.functional as F

    from longctx.kernels.scan import selective_scan, selective_scan_torch, selective_step
    from longctx.kernels.scan.bench import inputs
    from longctx.kernels.scan.reference import scan_reference
    from longctx.kernels.scan.triton_scan import scan_forward, step_forward

    smoke = args.cpu_smoke
    dev = "cpu" if smoke else "cuda"
    torch.manual_seed(0)
    out: dict = {"device": "cpu (interpreter)" if smoke else torch.cuda.get_device_name(),
                 "torch": torch.__version__, "errors": {}, "prefill": [], "sweep": [], "step": [], "train": {},
                 "zoo": []}

    def sync() -> None:
        if not smoke:
            torch.cuda.synchronize()

    def bench_ms(fn) -> float:
        if smoke:
            fn()
            ts = []
            for _ in range(3):
                t0 = time.perf_counter()
                fn()
                ts.append((time.perf_counter() - t0) * 1000)
            return statistics.median(ts)
        import triton.testing
        return triton.testing.do_bench(fn, warmup=5, rep=40, return_mode="median")

    def bench_with_peak(fn) -> tuple[float, float | None]:
        """Median ms after one warm-up call, and the GB the calls add at their peak (None on the CPU)."""
        fn()
        sync()
        if smoke:
            return bench_ms(fn), None
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        return bench_ms(fn), (torch.cuda.max_memory_allocated() - base) / 1e9

    def make(Bsz, Dc, G, N, T, dtype):
        x, Bm, Cm, z = (torch.randn(*s, device=dev).to(dtype) for s in
                        ((Bsz, Dc, T), (Bsz, G, N, T), (Bsz, G, N, T), (Bsz, Dc, T)))
        dt = F.softplus(torch.randn(Bsz, Dc, T, device=dev) - 3.0)
        A = -torch.rand(Dc, N, device=dev) * 15 - 1
        return x, dt, A, Bm, Cm, torch.randn(Dc, device=dev), z, torch.randn(Bsz, Dc, N, device=dev)

    def rel(a, b) -> float:
        a, b = a.double(), b.double().to(a.device)
        return float((a - b).norm() / b.norm())

    def ref(*t):
        return scan_reference(*(None if v is None else v.double() for v in t))

    # 1. errors against the float64 recurrence
    sd, st = (16, 64) if smoke else (1, 1)     # the smoke run divides channels and tokens
    cases = {
        "fp32 B2 D256 G1 N16 T4133 D,z,h0": ((2, 256 // sd, 1, 16, 4133 // st), torch.float32, True),
        "bf16 B1 D512 G1 N16 T8229 D,z,h0": ((1, 512 // sd, 1, 16, 8229 // st), torch.bfloat16, True),
        "fp16 B2 D192 G2 N16 T3001": ((2, 192 // sd, 2, 16, 3001 // st), torch.float16, False),
        "fp32 B1 D100 G1 N64 T2000": ((1, 100 // sd, 1, 64, 2000 // st), torch.float32, True),
    }
    for name, (shape, dtype, full) in cases.items():
        x, dt, A, Bm, Cm, D, z, h0 = make(*shape, dtype)
        if not full:
            D = z = h0 = None
        y, h = selective_scan(x, dt, A, Bm, Cm, D, z, initial_state=h0, output_final_state=True)
        yr, hr = ref(x, dt, A, Bm, Cm, D, z, h0)
        out["errors"][name] = {"y": rel(y, yr), "state": rel(h, hr)}
    x, dt, A, Bm, Cm, D, z, h0 = make(1, 384 // sd, 1, 16, 8192 // st, torch.bfloat16)
    y, h = selective_scan(x, dt, A, Bm, Cm, D, z, initial_state=h0, output_final_state=True)
    cut = 5003 // st
    y1, h1 = selective_scan(x[..., :cut], dt[..., :cut], A, Bm[..., :cut], Cm[..., :cut], D, z[..., :cut],
                            initial_state=h0, output_final_state=True)
    y2, h2 = selective_scan(x[..., cut:], dt[..., cut:], A, Bm[..., cut:], Cm[..., cut:], D, z[..., cut:],
                            initial_state=h1, output_final_state=True)
    out["errors"]["hand-over bf16 T5003+3189 vs one prefill"] = {"y": rel(torch.cat([y1, y2], -1), y),
                                                                 "state": rel(h2, h)}
    hs, ys, end = h1, [], cut + min(64, x.shape[-1] - cut)
    for t in range(cut, end):
        yt, hs = selective_step(x[..., t], dt[..., t], A, Bm[..., t], Cm[..., t], hs, D, z[..., t])
        ys.append(yt)
    yr, hr = ref(x[..., cut:end], dt[..., cut:end], A, Bm[..., cut:end], Cm[..., cut:end], D, z[..., cut:end], h1)
    out["errors"][f"{end - cut} decode steps bf16 vs recurrence"] = {"y": rel(torch.stack(ys, -1), yr), "state": rel(hs, hr)}
    x, dt, A, Bm, Cm, D, z, h0 = make(2, 256 // sd, 1, 16, 4133 // st, torch.float32)
    y, h = selective_scan_torch(x, dt, A, Bm, Cm, D, z, h0)
    yr, hr = ref(x, dt, A, Bm, Cm, D, z, h0)
    out["errors"]["training path (PyTorch) fp32 T4133"] = {"y": rel(y, yr), "state": rel(h, hr)}
    print(json.dumps(out["errors"], indent=1), flush=True)

    # 2. prefill timings
    channels, ns = (1024, [16384, 65536, 262144, 1048576]) if not smoke else (4, [32, 64, 128])
    for n in ns:
        a = inputs(n, dev, torch.bfloat16, 1, channels)
        ms, gb = bench_with_peak(partial(selective_scan, a["x"], a["dt"], a["A"], a["B"], a["C"], a["D"], a["z"]))
        moved = n * channels * (2 + 4 + 2 + 2) + 2 * n * 16 * 2   # x, dt (fp32), z read, y written; B, C
        out["prefill"].append({"n": n, "ms": ms, "GB_per_s": moved / ms / 1e6, "peak_gb": gb})
        print(f"prefill n={n}: {ms:.3f} ms", flush=True)
        del a
    pts = [(math.log(r["n"]), math.log(r["ms"])) for r in out["prefill"] if r["n"] >= ns[1]]
    mx, my = (sum(p[i] for p in pts) / len(pts) for i in (0, 1))
    out["exponent"] = sum((px - mx) * (py - my) for px, py in pts) / sum((px - mx) ** 2 for px, _ in pts)

    # 3. block-size sweep at 64K
    n = ns[1]
    a = inputs(n, dev, torch.bfloat16, 1, channels)
    args_ = [a[k].contiguous() for k in ("x", "dt", "A", "B", "C", "D", "z")]
    for bd, bt, warps in ([(4, 64, 4), (2, 64, 4), (8, 32, 4), (4, 32, 2), (8, 64, 8), (16, 16, 4), (4, 128, 8)]
                          if not smoke else [(4, 64, 4), (2, 16, 1)]):
        ms = bench_ms(partial(scan_forward, *args_, None, False, block_d=bd, block_t=bt, num_warps=warps))
        out["sweep"].append({"block_d": bd, "block_t": bt, "warps": warps, "n": n, "ms": ms})
        print(f"sweep BD={bd} BT={bt} warps={warps}: {ms:.3f} ms", flush=True)
    del a, args_

    # 4. one decode step
    for Bsz in (1, 16):
        x, dt, A, Bm, Cm, D, z, h0 = make(Bsz, channels, 1, 16, 1, torch.bfloat16)
        st = [t[..., 0].contiguous() for t in (x, dt, Bm, Cm, z)]
        op = bench_ms(partial(selective_step, st[0], st[1], A, st[2], st[3], h0, D, st[4]))
        bare = bench_ms(partial(step_forward, st[0], st[1], A, st[2], st[3], D, st[4], h0))
        out["step"].append({"batch": Bsz, "op_ms": op, "kernel_ms": bare})

    # 5. the training path at the zoo's small shape
    Bsz, Dc, T = (16, 464, 2048) if not smoke else (2, 8, 100)
    x, dt, A, Bm, Cm, D, z, _ = make(Bsz, Dc, 1, 16, T, torch.float32)
    leaves = [t.requires_grad_() for t in (x, dt, A, Bm, Cm, D, z)]

    def train_step():
        y, _ = selective_scan_torch(*leaves)
        y.sum().backward()

    train_ms, train_gb = bench_with_peak(train_step)
    out["train"] = {"shape": [Bsz, Dc, 16, T], "fwd_bwd_ms": train_ms, "peak_gb": train_gb}

    # 6. the zoo's small models, one training step's forward + backward each
    from longctx.models.zoo import registry

    zb, zt = (16, 2048) if not smoke else (1, 64)
    for arch in ("mamba1", "mamba2", "dense"):
        model = registry.build(registry.config(arch, "small" if not smoke else "tiny")).to(dev)
        ids = torch.randint(0, 256, (zb, zt + 1), device=dev)

        def zoo_step(model=model, ids=ids):
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=not smoke):
                logits = model(ids[:, :-1])
            F.cross_entropy(logits.float().flatten(0, 1), ids[:, 1:].flatten()).backward()

        ms, gb = bench_with_peak(zoo_step)
        out["zoo"].append({"arch": arch, "batch": zb, "tokens": zt, "fwd_bwd_ms": ms, "peak_gb": gb})
        print(f"zoo {arch}: {ms:.1f} ms", flush=True)
        del model, ids

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scan_gpu_check.json").write_text(json.dumps(out, indent=1))
    print(f"\n== selective scan on {out['device']}")
    for name, e in out["errors"].items():
        print(f"  rel err {name:44s} y {e['y']:.2e}  state {e['state']:.2e}")
    for r in out["prefill"]:
        peak = "-" if r["peak_gb"] is None else f"{r['peak_gb']:.2f} GB beyond the inputs"
        print(f"  prefill n={r['n']:>8d} {r['ms']:10.3f} ms {r['GB_per_s']:8.1f} GB/s, peak {peak}")
    print(f"  exponent (n >= {ns[1]}): {out['exponent']:.3f}")
    best = min(out["sweep"], key=lambda r: r["ms"])
    print(f"  sweep at n={n}: " + ", ".join(f"{r['block_d']}x{r['block_t']}w{r['warps']} {r['ms']:.2f}"
                                            for r in out["sweep"]) + f"  (best {best['ms']:.2f} ms)")
    for r in out["step"]:
        print(f"  decode step batch {r['batch']:>2d}: op {r['op_ms']:.4f} ms, bare kernel {r['kernel_ms']:.4f} ms")
    t = out["train"]
    peak = "-" if t["peak_gb"] is None else f"{t['peak_gb']:.2f} GB"
    print(f"  training path fwd+bwd {t['shape']}: {t['fwd_bwd_ms']:.1f} ms, peak {peak}")
    for r in out["zoo"]:
        peak = "-" if r["peak_gb"] is None else f"{r['peak_gb']:.2f} GB"
        print(f"  zoo {r['arch']:7s} fwd+bwd batch {r['batch']} x {r['tokens']}: {r['fwd_bwd_ms']:.1f} ms, peak {peak}")


if __name__ == "__main__":
    main()
