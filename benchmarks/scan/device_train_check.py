"""GPU check of the Triton training scan (``selective_scan_train``) in one device call of at most ~150 s.

Run from the repo root: ``PYTHONPATH=$PWD python -m benchmarks.scan.device_train_check $OUT``
(``--cpu-smoke``: tiny sizes on the CPU under ``TRITON_INTERPRET=1``, so the script is known to run).
Parts, each on its own (one failing prints its error and the rest go on), in order of importance, skipped
once ``--budget`` seconds are spent:

1. errors at the zoo's training shape (B 16, 464 channels, N 16, T 1024 and 2048; fp32, and bf16 x/B/C/z):
   y, the final state and every gradient, relative error ``‖out − ref‖ / ‖ref‖`` against
   ``selective_scan_torch`` in float64 (and the float32 ``selective_scan_torch`` against the same reference, for scale);
2. forward and forward + backward ms of the Triton op and of ``selective_scan_torch`` (CUDA events, median after
   warm-up) at that shape, with the zoo's dtypes (x, dt float32; B, C, z bf16) and in fp32;
3. the zoo's mamba1 training step as the trainer takes it (``torch.compile(dynamic=False,
   mode="reduce-overhead")``, ``trainer.train_step``, 5 warm-up steps then 40 timed): batch 16 x 1024, the
   copy phase's 32 x 257 (does it compile now?), and eager 16 x 1024; ``--cpu-smoke`` runs them eagerly;
4. a block-size sweep of the two kernels at T 2048 (each config's gradients checked against the default's).
Writes ``train_check.json`` under OUT after every part; prints a short table last.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import traceback
from pathlib import Path

START = time.time()


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--budget", type=float, default=135.0, help="seconds after which remaining parts are skipped")
    p.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU under TRITON_INTERPRET=1")
    return p.parse_args()


def main() -> None:
    args = _args()
    if args.cpu_smoke:   # before the kernels are imported: triton_scan reads the flag once
        os.environ["TRITON_INTERPRET"] = "1"
    import torch
    import torch.nn.functional as F

    from benchmarks.gpu_check_utils import rel, timed
    from longctx.kernels.scan import selective_scan_torch, selective_scan_train
    from longctx.kernels.scan.triton_train import train_backward, train_forward

    smoke = args.cpu_smoke
    dev = "cpu" if smoke else "cuda"
    Bsz, Dc, N = (1, 6, 16) if smoke else (16, 464, 16)
    lengths = (40, 70) if smoke else (1024, 2048)
    args.out.mkdir(parents=True, exist_ok=True)
    rep: dict = {"device": "cpu (interpreter)" if smoke else torch.cuda.get_device_name(), "torch": torch.__version__,
                 "shape": {"B": Bsz, "D": Dc, "N": N, "T": lengths}, "errors": [], "op_ms": [], "zoo": [],
                 "sweep": [], "failed": []}

    def left() -> float:
        return args.budget - (time.time() - START)

    def save() -> None:
        (args.out / "train_check.json").write_text(json.dumps(rep, indent=1))

    def part(name: str, need_s: float, fn) -> None:
        if left() < need_s:
            print(f"[{time.time() - START:5.1f}s] {name}: skipped ({left():.0f} s left, wants {need_s:.0f})",
                  flush=True)
            rep["failed"].append({"part": name, "error": "skipped: time"})
            return
        print(f"[{time.time() - START:5.1f}s] {name}", flush=True)
        try:
            fn()
        except Exception as err:  # noqa: BLE001  (one part's failure must not lose the others)
            traceback.print_exc()
            rep["failed"].append({"part": name, "error": f"{type(err).__name__}: {str(err)[:300]}"})
        save()
        if not smoke:
            torch.cuda.empty_cache()

    def sync() -> None:
        if not smoke:
            torch.cuda.synchronize()

    def ms(fn) -> float:   # median ms (CUDA events on the GPU), about 0.3 s of calls after one warm-up
        return timed(fn, dev, 0.3)

    def inputs(T: int, mode: str, seed: int = 0) -> list:
        """x, dt, A, B, C, D, z (mode fp32: all float32; bf16: x, B, C, z bf16; zoo: B, C, z bf16)."""
        g = torch.Generator(device=dev).manual_seed(seed)

        def r(*shape):
            return torch.randn(*shape, generator=g, device=dev)
        low = torch.float32 if mode == "fp32" else torch.bfloat16
        xdt = torch.bfloat16 if mode == "bf16" else torch.float32
        return [r(Bsz, Dc, T).to(xdt), F.softplus(r(Bsz, Dc, T) - 3.0),
                -torch.arange(1, N + 1, device=dev, dtype=torch.float32).repeat(Dc, 1),
                r(Bsz, 1, N, T).to(low), r(Bsz, 1, N, T).to(low), torch.ones(Dc, device=dev), r(Bsz, Dc, T).to(low)]

    def fwd_bwd(fn, xs: list, dy, dh, cast=None) -> list:
        leaves = [(t if cast is None else t.to(cast)).detach().requires_grad_() for t in xs]
        y, h = fn(*leaves)
        grads = torch.autograd.grad((y * dy.to(y.dtype)).float().sum() + (h * dh).sum(), leaves)
        return [y.detach(), h.detach(), *grads]

    names = ("y", "h", "dx", "ddt", "dA", "dB", "dC", "dD", "dz")

    def errors() -> None:
        for T in lengths:
            for mode in ("fp32", "bf16"):
                xs = inputs(T, mode, seed=T)
                dy, dh = torch.randn(Bsz, Dc, T, device=dev).to(xs[0].dtype), torch.randn(Bsz, Dc, N, device=dev)
                ref = fwd_bwd(selective_scan_torch, xs, dy, dh, cast=torch.float64)
                tri = fwd_bwd(selective_scan_train, xs, dy, dh)
                tch = fwd_bwd(selective_scan_torch, xs, dy, dh)
                row = {"T": T, "mode": mode, "triton": {k: rel(a, b) for k, a, b in zip(names, tri, ref)},
                       "torch_fp32": {k: rel(a, b) for k, a, b in zip(names, tch, ref)}}
                row["triton_max"], row["torch_max"] = max(row["triton"].values()), max(row["torch_fp32"].values())
                rep["errors"].append(row)
                print(f"  T{T} {mode}: triton max {row['triton_max']:.2e}, torch fp32 max {row['torch_max']:.2e}; "
                      + " ".join(f"{k} {v:.1e}" for k, v in row["triton"].items()), flush=True)
                del ref, tri, tch

    def op_times() -> None:
        for T in lengths:
            for mode in ("zoo", "fp32"):
                xs = inputs(T, mode)
                dy, dh = torch.randn(Bsz, Dc, T, device=dev), torch.zeros(Bsz, Dc, N, device=dev)
                row = {"T": T, "mode": mode}
                for name, fn in (("triton", selective_scan_train), ("torch", selective_scan_torch)):
                    with torch.no_grad():
                        row[f"{name}_fwd_ms"] = ms(lambda fn=fn, xs=xs: fn(*xs))
                    if not smoke:
                        torch.cuda.reset_peak_memory_stats()
                    row[f"{name}_fwdbwd_ms"] = ms(lambda fn=fn, xs=xs, dy=dy, dh=dh: fwd_bwd(fn, xs, dy, dh))
                    if not smoke:
                        row[f"{name}_peak_gb"] = torch.cuda.max_memory_allocated() / 1e9
                rep["op_ms"].append(row)
                print("  " + " ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()),
                      flush=True)

    def zoo_step(batch: int, L: int, mode: str) -> None:
        from longctx.models.zoo import registry
        from longctx.models.zoo.trainer import Recipe, batch_rows, optimizer, train_step

        recipe = Recipe(batch=batch)
        torch.manual_seed(0)
        tokens = torch.randint(0, 256, (8 * batch, L + 1), device=dev, dtype=torch.int16)
        weights = torch.ones(tokens.shape, device=dev, dtype=torch.float16)
        model = registry.build(registry.config("mamba1", "tiny" if smoke else "small")).to(dev)
        fwd = model if mode == "eager" or smoke else torch.compile(model, dynamic=False, mode=mode)
        opt = optimizer(model, recipe)

        def one(i):
            rows = batch_rows(i, recipe, tokens.shape[0], dev)
            return train_step(model, fwd, opt, tokens[rows].long(), weights[rows].float(), None, 1e-3, recipe)
        t0 = time.perf_counter()
        for i in range(5):
            loss = one(i)[0]
        sync()
        warm_s = time.perf_counter() - t0
        steps = 2 if smoke else 40
        t0 = time.perf_counter()
        for i in range(steps):
            loss = one(i)[0]
            if i % 10 == 9:
                float(loss)
        sync()
        row = {"batch": batch, "L": L, "mode": mode, "ms_per_step": 1000 * (time.perf_counter() - t0) / steps,
               "warmup_s": warm_s, "loss": float(loss.detach())}
        if not smoke:
            row["peak_gb"] = torch.cuda.max_memory_allocated() / 1e9
        rep["zoo"].append(row)
        print(f"  {row}", flush=True)

    def sweep() -> None:
        T = lengths[-1]
        xs = inputs(T, "zoo")
        dy = torch.randn(Bsz, Dc, T, device=dev)
        base = None
        # (forward channels, backward channels, tokens per chunk, forward warps, backward warps); default first
        for fbd, bbd, bt, fw, bw in ((4, 2, 64, 4, 2), (4, 4, 64, 4, 4), (4, 2, 64, 4, 4), (4, 4, 64, 4, 8),
                                     (2, 2, 64, 4, 2), (4, 4, 32, 4, 4), (4, 2, 32, 4, 2), (2, 4, 64, 4, 4),
                                     (8, 8, 32, 4, 4), (4, 4, 128, 8, 8)):
            if left() < 8:
                print("  sweep stopped: time", flush=True)
                return
            cfg = {"fwd_bd": fbd, "bwd_bd": bbd, "bt": bt, "fwd_warps": fw, "bwd_warps": bw}

            def fwd(cfg=cfg):
                return train_forward(*xs, None, block_d=cfg["fwd_bd"], block_t=cfg["bt"], num_warps=cfg["fwd_warps"])

            def bwd(hc, cfg=cfg):
                return train_backward(dy, None, *xs, hc, block_d=cfg["bwd_bd"], block_t=cfg["bt"],
                                      num_warps=cfg["bwd_warps"])
            try:
                y, _, hc = fwd()
                grads = bwd(hc)
                base = base or (y, grads)
                err = max(rel(a, b) for a, b in zip((y, *grads[:6]), (base[0], *base[1][:6])))
                row = {**cfg, "err_vs_default": err, "fwd_ms": ms(fwd), "bwd_ms": ms(lambda hc=hc: bwd(hc))}
            except Exception as err:  # noqa: BLE001  (a config that does not build is not a candidate)
                row = {**cfg, "error": f"{type(err).__name__}: {str(err)[:200]}"}
            rep["sweep"].append(row)
            print(f"  {row}", flush=True)

    part("errors", 20, errors)
    part("op times", 15, op_times)
    part("zoo step 16x1024 reduce-overhead", 30, lambda: zoo_step(16, 1024 if not smoke else 64, "reduce-overhead"))
    part("zoo step 32x257 reduce-overhead", 25, lambda: zoo_step(32, 257 if not smoke else 33, "reduce-overhead"))
    part("zoo step 16x1024 eager", 8, lambda: zoo_step(16, 1024 if not smoke else 64, "eager"))
    part("block sweep", 10, sweep)

    print(f"\n== selective_scan_train on {rep['device']} (torch {rep['torch']}), {time.time() - START:.0f} s ==")
    for r in rep["errors"]:
        print(f"error T{r['T']} {r['mode']}: triton max {r['triton_max']:.2e}  torch-fp32 max {r['torch_max']:.2e}")
    for r in rep["op_ms"]:
        print(f"op T{r['T']} {r['mode']}: fwd+bwd triton {r['triton_fwdbwd_ms']:.2f} ms vs torch "
              f"{r['torch_fwdbwd_ms']:.2f} ms; fwd {r['triton_fwd_ms']:.2f} vs {r['torch_fwd_ms']:.2f}")
    for r in rep["zoo"]:
        print(f"zoo mamba1 {r['batch']}x{r['L']} {r['mode']}: {r['ms_per_step']:.1f} ms/step "
              f"(warm-up {r['warmup_s']:.0f} s)")
    best = min((r for r in rep["sweep"] if "error" not in r), key=lambda r: r["fwd_ms"] + r["bwd_ms"], default=None)
    if best:
        print(f"sweep best: {best}")
    for f in rep["failed"]:
        print(f"FAILED {f['part']}: {f['error']}")
    save()


if __name__ == "__main__":
    main()
