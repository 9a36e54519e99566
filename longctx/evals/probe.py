"""``evals probe``: the operator-level retrieval probe behind the trilemma plot.

Random queries, keys and values; for each trial one key is replaced by ``strength * q[t]`` (a needle
aligned with query t, at token distance d behind it), so that full attention gives it a score of about
``strength * sqrt(D)`` against random keys. A trial succeeds when the kernel's output at t points at the
needle's value: cosine(out[t], v[t - d]) > 0.5, i.e. the needle holds most of the softmax weight.
Each head of each call carries its own needles, ``--trials`` per head. For DSA the lightning indexer
reads the first 64 dims of every query head and of the mean key (weights 1), so a needle reaches it too.
Run: ``evals probe --n 4k-1m --kernels flash_dense,ssa --out p.json``.

With ``--model hf:PATH,attn=METHOD:...`` it instead reports, per context length and layer, the relative
error ``||o_method - o_dense|| / ||o_dense||`` of that model's attention output on a prefill of
seeded random token ids (see ``models.attn_swap.layer_errors``):
``evals probe --model hf:./llama,attn=ssa:topk=8 --n 1k,4k``.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from rich.console import Console
from rich.table import Table

from longctx.evals.ctx import fmt_ctx
from longctx.evals.errors import EvalError


def _dsa(q, k, v):
    from longctx.kernels.dsa import dsa_attention

    di = min(64, q.shape[-1])
    w = torch.ones(q.shape[0], q.shape[2], q.shape[1], device=q.device, dtype=q.dtype)
    return dsa_attention(q, k, v, q[..., :di], k.mean(1)[..., :di], w, topk=min(2048, q.shape[2]))


def _kernels() -> dict[str, Callable]:
    from longctx.kernels.flash import flash_attention
    from longctx.kernels.hyper import hyper_attention
    from longctx.kernels.performer import favor_attention, orthogonal_features
    from longctx.kernels.ssa import ssa_attention

    def ssa(q, k, v):
        T = q.shape[2]
        return ssa_attention(q, k, v, 64, topk=max(1, min(16, T // 256)))

    return {
        "flash_dense": lambda q, k, v: flash_attention(q, k, v),
        "flash_window": lambda q, k, v: flash_attention(q, k, v, window=4096),
        "dsa": _dsa,
        "ssa": ssa,
        "hyper": lambda q, k, v: hyper_attention(q, k, v, 128, min(1024, max(1, q.shape[2] // 2))),
        "performer": lambda q, k, v: favor_attention(
            q, k, v, orthogonal_features(min(256, 2 * q.shape[-1]), q.shape[-1], device=q.device))[0],
    }


QUADRATIC = {"flash_dense", "dsa"}  # for predicting the time at the next n


@dataclass
class ProbeRow:
    kernel: str
    n: int
    distance: int
    accuracy: float
    trials: int


def distances(n: int) -> list[int]:
    """0, 1, 4, 16, ... (powers of 4) and n - 1: token gaps between a query and its needle."""
    out, d = [0], 1
    while d < n:
        out.append(d)
        d *= 4
    return sorted(set(out + [n - 1]))


def plant(n: int, d: int, trials: int, B: int, H: int, H_kv: int, D: int, dtype, device, strength: float,
          gen: torch.Generator):
    """Random q/k/v with ``trials`` needles per query head at distance d -> (q, k, v, query positions [H, trials])."""
    q, k, v = (torch.randn(B, h, n, D, generator=gen, device=device).to(dtype) for h in (H, H_kv, H_kv))
    group = H // H_kv
    span = n - d
    trials = min(trials, span // max(1, group))
    pos = torch.stack([d + torch.randperm(span, generator=gen, device=device)[: trials * group] for _ in range(H_kv)])
    tq = pos.view(H_kv, group, trials).reshape(H, trials)
    for h in range(H):
        hk = h // group
        k[:, hk, tq[h] - d] = (strength * q[:, h, tq[h]].float()).to(dtype)
    return q, k, v, tq, group


def probe_one(fn: Callable, n: int, d: int, trials: int, B: int, H: int, H_kv: int, D: int, dtype, device,
              strength: float, gen: torch.Generator) -> tuple[float, int]:
    q, k, v, tq, group = plant(n, d, trials, B, H, H_kv, D, dtype, device, strength, gen)
    out = fn(q, k, v).float()
    hits = total = 0
    for h in range(H):
        o = out[:, h, tq[h]]
        needle = v[:, h // group, tq[h] - d].float()
        cos = torch.nn.functional.cosine_similarity(o, needle, dim=-1)
        hits += int((cos > 0.5).sum())
        total += cos.numel()
    return hits / max(total, 1), total


def run_probe(kernels: list[str], ns: list[int], trials: int, B: int, H: int, H_kv: int, D: int, dtype,
              device: str, strength: float, seed: int, max_seconds: float,
              log: Callable[[str], None] = lambda s: None) -> dict:
    fns = _kernels()
    rows: list[ProbeRow] = []
    gen = torch.Generator(device=device).manual_seed(seed)
    for name in kernels:
        last: tuple[int, float] | None = None
        for n in ns:
            ds = distances(n)
            growth = 2.0 if name in QUADRATIC else 1.2
            if last and last[1] * (n / last[0]) ** growth * len(ds) > max_seconds:
                log(f"{name} n={fmt_ctx(n)}: skipped, predicted over {max_seconds:g} s")
                continue
            t0 = time.perf_counter()
            for i, d in enumerate(ds):
                if i == 1:  # time from the second distance on, so compilation is not counted
                    if device == "cuda":
                        torch.cuda.synchronize()
                    t0 = time.perf_counter()
                acc, total = probe_one(fns[name], n, d, trials, B, H, H_kv, D, dtype, device, strength, gen)
                rows.append(ProbeRow(name, n, d, acc, total))
            if device == "cuda":
                torch.cuda.synchronize()
            last = (n, (time.perf_counter() - t0) / max(1, len(ds) - 1))
            log(f"{name} n={fmt_ctx(n)}: min accuracy {min(r.accuracy for r in rows[-len(ds):]):.3f}")
    dev_name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    return {"kind": "probe", "device": dev_name, "strength": strength, "results": [asdict(r) for r in rows]}


def print_table(result: dict, console: Console) -> None:
    table = Table(title=f"probe on {result['device']} (needle strength {result['strength']})")
    for col in ("kernel", "n", "distance", "accuracy", "trials"):
        table.add_column(col, justify="left" if col == "kernel" else "right")
    for r in result["results"]:
        table.add_row(r["kernel"], fmt_ctx(r["n"]), str(r["distance"]), f"{r['accuracy']:.3f}", str(r["trials"]))
    console.print(table)


def model_errors(spec: str, ns: list[int], seed: int) -> dict:
    """Per context length, the per-layer attention-output relative error of ``hf:PATH,attn=...`` vs dense."""
    from longctx.models.attn_swap import layer_errors
    from longctx.models.errors import ModelError
    from longctx.models.hf import HFModel, parse_options
    from longctx.models.spec import parse_spec

    parsed = parse_spec(spec)
    if parsed.scheme != "hf" or "attn" not in parsed.options:
        raise EvalError(f"--model {spec!r}: the probe takes hf:PATH,attn=METHOD[:key=value...]")
    opts = parse_options(parsed)
    hf = HFModel.from_spec(parsed)
    try:
        errors = {}
        gen = torch.Generator().manual_seed(seed)
        for n in ns:
            if n > hf.max_context:
                raise ModelError(f"--n {n} is over max_context={hf.max_context} of {spec}")
            ids = torch.randint(0, len(hf.tokenizer), (1, n), generator=gen).to(hf.device)
            errors[str(n)] = layer_errors(hf.model, opts.attn, ids)
    finally:
        hf.close()
    return {"model": spec, "metric": "relative error of the attention output vs dense, per layer", "errors": errors}
