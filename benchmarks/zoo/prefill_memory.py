"""Peak memory and time of one zoo prefill at long context: do the sub-quadratic models fit 1M tokens?

Runs each architecture's inference path (``Trunk.step`` with no state, as ``greedy`` does, in pieces
of ``--chunk`` tokens) on random bytes of length n, under bf16 autocast, and records the peak memory
the device allocated and the wall time, after a warm-up prefill of two pieces, so compilation is not
timed. Weights come from ``--checkpoints/ARCH`` when that folder holds one, else a fresh model of the
shipped size (memory and time do not depend on the weights).

    python -m benchmarks.zoo.prefill_memory --arch linear,mamba2,ssa --n 131072,1048576 --out prefill_memory.json
    python -m benchmarks.zoo.prefill_memory --cpu-smoke       # tiny sizes on the CPU, to know the script runs
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from longctx.models.errors import ModelError
from longctx.models.zoo import checkpoint, registry
from longctx.models.zoo.generate import PREFILL_CHUNK
from longctx.models.zoo.model import CHECKPOINTS

SUB_QUADRATIC = ("swa", "linear", "mamba2", "hybrid_ssa", "ssa", "hyper", "mamba1", "performer", "s4", "hyena")


def load(arch: str, size: str, folder: Path | None, device: str) -> tuple[torch.nn.Module, str]:
    """The checkpoint in ``folder/arch`` if there is one, else a fresh model; and which it was."""
    if folder is not None and (folder / arch / checkpoint.CARD).is_file():
        return checkpoint.load(folder / arch, device)[0], str(folder / arch)
    return registry.build(registry.config(arch, size)).to(device), "random init"


@torch.no_grad()
def prefill(model: torch.nn.Module, n: int, chunk: int, device: str) -> dict[str, float | None]:
    """Seconds and peak GB of one prefill of ``n`` random bytes (peak is None on the CPU)."""
    ids = torch.randint(0, 256, (1, n), device=device)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
        states = None
        for a in range(0, n, chunk):
            _, states = model.step(ids[:, a:a + chunk], states)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = round(torch.cuda.max_memory_allocated() / 1e9, 3) if device == "cuda" else None
    return {"seconds": round(seconds, 3), "peak_gb": peak}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default=",".join(SUB_QUADRATIC))
    p.add_argument("--n", default="131072,262144,524288,1048576", help="prompt lengths in bytes, comma-separated")
    p.add_argument("--size", default="small")
    p.add_argument("--checkpoints", type=Path, default=CHECKPOINTS)
    p.add_argument("--chunk", type=int, default=None, help="prefill piece (default: what generation uses)")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--cpu-smoke", action="store_true", help="tiny fresh models on the CPU")
    a = p.parse_args()
    device = "cpu" if a.cpu_smoke or not torch.cuda.is_available() else "cuda"
    size, ns = ("tiny", [256, 512]) if a.cpu_smoke else (a.size, [int(x) for x in a.n.split(",")])
    chunk = a.chunk or (128 if a.cpu_smoke else PREFILL_CHUNK[device])
    hw = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    rows = []
    for arch in a.arch.split(","):
        try:
            model, source = load(arch, size, None if a.cpu_smoke else a.checkpoints, device)
        except ModelError as e:
            raise SystemExit(f"error: {e}") from None
        model.eval()
        try:   # compile the kernels of a first and a continuing piece outside the timed runs
            prefill(model, min(2 * chunk, ns[0]), chunk, device)
        except (RuntimeError, ValueError, torch.cuda.OutOfMemoryError):
            pass   # the timed runs below record the error
        for n in ns:
            try:
                rec = prefill(model, n, chunk, device)
            except torch.cuda.OutOfMemoryError:
                rec = {"seconds": None, "peak_gb": "out of memory"}
                torch.cuda.empty_cache()
            except (RuntimeError, ValueError) as e:   # a failing architecture must not hide the others' rows
                rec = {"seconds": None, "peak_gb": None, "error": f"{type(e).__name__}: {e}"}
            rows.append({"arch": arch, "n": n, "weights": source, **rec})
            print(json.dumps(rows[-1]), flush=True)
            if a.out is not None:   # after every row: a run cut short keeps what it measured
                a.out.write_text(json.dumps({"hardware": hw, "chunk": chunk, "rows": rows}, indent=2) + "\n")
        del model
    print(f"{'arch':<10} {'n':>8} {'seconds':>9} {'peak GB':>9}  ({hw}, prefill pieces of {chunk})")
    for r in rows:
        print(f"{r['arch']:<10} {r['n']:>8} {r['seconds'] if r['seconds'] is not None else '-':>9} {r['peak_gb'] or ('error' if 'error' in r else '-'):>9}")


if __name__ == "__main__":
    main()
