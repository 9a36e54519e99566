"""``evals probe``: the operator-level retrieval probe behind the trilemma card.

Random queries, keys and values, N(0, 1) per channel. A needle is one key replaced by ``strength * q[t]``, at
token distance d behind its query t: its score is ``q.k / sqrt(D) = strength * |q|^2 / sqrt(D)``, about
``strength * sqrt(D)`` (22.6 at strength 2, D = 128), against N(0, 1) for the random keys; the needle key keeps
the norm this construction gives it (``strength * |q|``, no rescaling). Each call plants ``--trials`` needles
per query head at every distance, each in its own query block (blocks of 64 queries), so a kernel that routes
per query block cannot hide a miss behind another needle of the same block. A needle is found when it holds
at least half of the output: ``out[t] . v / |v|^2 >= 0.5`` for its value v (the random values add only noise of
about ``sqrt(e / (n D))`` to that coefficient). ``recall_cos`` in the JSON counts the looser rule
``cosine(out[t], v) > 0.9``, which random values let dense attention pass with a few percent of the weight.

``--strength`` sweeps needle strengths (``1,1.25,1.5,2`` or ``1-2:0.25``); per length n the probe reports the
reference: the weakest strength at which dense attention (``flash_dense``) finds >= 0.99 of the needles at
every distance, and the trilemma card scores every kernel at that strength. For DSA the lightning indexer
reads the first 64 dims of every query head and of the mean key (weights 1), so a needle reaches it too.
Run: ``evals probe --n 128k,1m --kernels flash_dense,ssa --strength 1-2:0.25 --out p.json``.

With ``--model hf:PATH,attn=METHOD:...`` it instead reports, per context length and layer, the relative
error ``||o_method - o_dense|| / ||o_dense||`` of that model's attention output on a prefill of
seeded random token ids (see ``models.attn_swap.layer_errors``):
``evals probe --model hf:./llama,attn=ssa:topk=8 --n 1k,4k``.
"""
from __future__ import annotations

import math
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
QUERY_BLOCK = 64  # one needle per block of this many queries
REFERENCE_RECALL = 0.99  # dense must find this share of needles at every distance


@dataclass
class ProbeRow:
    kernel: str
    n: int
    strength: float
    distance: int
    accuracy: float  # recall: share of needles holding >= half of the output
    recall_cos: float  # share with cosine(output, needle value) > 0.9
    trials: int


def distances(n: int) -> list[int]:
    """0, 1, 4, 16, ... (powers of 4) and n - 1: token gaps between a query and its needle."""
    out, d = [0], 1
    while d < n:
        out.append(d)
        d *= 4
    return sorted(set(out + [n - 1]))


def parse_strengths(text: str) -> list[float]:
    """``'1,1.25,1.5,2'`` or ``'1-2:0.25'`` (start-end:step, both ends included) -> sorted positive strengths."""
    out: set[float] = set()
    try:
        for part in text.split(","):
            if "-" in part:
                span, _, step = part.partition(":")
                lo, hi = (float(x) for x in span.split("-"))
                step_v = float(step) if step else 0.25
                if not step_v > 0 or lo > hi:
                    raise ValueError
                out.update(round(lo + i * step_v, 6) for i in range(int((hi - lo) / step_v + 1e-9) + 1))
            else:
                out.add(float(part))
    except ValueError:
        raise EvalError(f"bad --strength {text!r}: write numbers like 1,1.25,1.5,2 or a range like 1-2:0.25") from None
    if not out or not all(math.isfinite(s) and s > 0 for s in out):
        raise EvalError(f"bad --strength {text!r}: every strength must be a positive number")
    return sorted(out)


def place(n: int, ds: list[int], trials: int, group: int, gen: torch.Generator) -> list[tuple[int, list[int], list[int]]]:
    """Needle positions for one key head: per distance (largest first), ``trials * group`` query positions t,
    each in a query block no other needle of this key head uses, and distinct key positions t - d
    -> [(d, t list, query head in the group list)]."""
    nqb = -(-n // QUERY_BLOCK)
    used_blocks: set[int] = set()
    used_keys: set[int] = set()
    out = []
    for d in sorted(ds, reverse=True):
        first = d // QUERY_BLOCK
        ts: list[int] = []
        for c in (first + torch.randperm(nqb - first, generator=gen)).tolist():
            if len(ts) == trials * group:
                break
            lo, hi = max(c * QUERY_BLOCK, d), min((c + 1) * QUERY_BLOCK, n)
            if c in used_blocks or lo >= hi:
                continue
            t = lo + int(torch.randint(0, hi - lo, (1,), generator=gen))
            if t - d in used_keys:
                continue
            used_blocks.add(c)
            used_keys.add(t - d)
            ts.append(t)
        ts = ts[: len(ts) // group * group]
        out.append((d, ts, [i % group for i in range(len(ts))]))
    return out


def plant(n: int, ds: list[int], trials: int, B: int, H: int, H_kv: int, D: int, dtype, device, strength: float,
          gen: torch.Generator):
    """Random q/k/v [B, heads, n, D] with needles at every distance in ds
    -> (q, k, v, needles: list of (query head, d, query positions tensor))."""
    q, k, v = (torch.randn(B, h, n, D, generator=gen, device=device).to(dtype) for h in (H, H_kv, H_kv))
    group = H // H_kv
    needles = []
    for hk in range(H_kv):
        for d, ts, heads in place(n, ds, trials, group, torch.Generator().manual_seed(int(torch.randint(
                0, 2**62, (1,), generator=gen, device=device)))):
            for g in range(group):
                tq = torch.tensor([t for t, hh in zip(ts, heads) if hh == g], device=device, dtype=torch.long)
                h = hk * group + g
                k[:, hk, tq - d] = (strength * q[:, h, tq].float()).to(dtype)
                needles.append((h, d, tq))
    return q, k, v, needles


def probe_one(fn: Callable, n: int, ds: list[int], trials: int, B: int, H: int, H_kv: int, D: int, dtype, device,
              strength: float, gen: torch.Generator) -> dict[int, tuple[int, int, int]]:
    """One kernel call with needles at every distance -> {d: (found, found by cosine, needles)}."""
    q, k, v, needles = plant(n, ds, trials, B, H, H_kv, D, dtype, device, strength, gen)
    out = fn(q, k, v).float()
    group = H // H_kv
    tally = {d: [0, 0, 0] for d in ds}
    for h, d, tq in needles:
        o = out[:, h, tq]
        needle = v[:, h // group, tq - d].float()
        weight = (o * needle).sum(-1) / needle.square().sum(-1)
        cos = torch.nn.functional.cosine_similarity(o, needle, dim=-1)
        t = tally[d]
        t[0] += int((weight >= 0.5).sum())
        t[1] += int((cos > 0.9).sum())
        t[2] += weight.numel()
    return {d: tuple(t) for d, t in tally.items()}


def reference_strengths(rows: list[ProbeRow]) -> dict[str, float | None]:
    """Per n (as a string key): the weakest strength at which flash_dense finds >= 0.99 at every distance."""
    out: dict[str, float | None] = {}
    dense = [r for r in rows if r.kernel == "flash_dense"]
    for n in sorted({r.n for r in dense}):
        ok = [s for s in sorted({r.strength for r in dense if r.n == n})
              if all(r.accuracy >= REFERENCE_RECALL for r in dense if r.n == n and r.strength == s)]
        out[str(n)] = ok[0] if ok else None
    return out


def run_probe(kernels: list[str], ns: list[int], trials: int, B: int, H: int, H_kv: int, D: int, dtype,
              device: str, strengths: list[float], seed: int, max_seconds: float,
              log: Callable[[str], None] = lambda s: None, dists: Callable[[int], list[int]] = distances,
              fns: dict[str, Callable] | None = None) -> dict:
    """Every kernel x n x strength: one call, needles at every distance in ``dists(n)`` -> the probe JSON."""
    fns = fns or _kernels()
    rows: list[ProbeRow] = []
    gen = torch.Generator(device=device).manual_seed(seed)
    for name in kernels:
        last: tuple[int, float] | None = None
        for n in ns:
            ds = [d for d in dists(n) if 0 <= d < n]
            growth = 2.0 if name in QUADRATIC else 1.2
            if last and last[1] * (n / last[0]) ** growth * len(strengths) > max_seconds:
                log(f"{name} n={fmt_ctx(n)}: skipped, predicted over {max_seconds:g} s")
                continue
            fn = fns[name]
            warm = min(n, 4096)  # compile outside the timing, at a length that costs little
            fn(*plant(warm, [0], 1, B, H, H_kv, D, dtype, device, 1.0, gen)[:3])
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for s in strengths:
                for d, (hits, hits_cos, total) in sorted(
                        probe_one(fn, n, ds, trials, B, H, H_kv, D, dtype, device, s, gen).items()):
                    if total:  # a distance with no free query block at this n has no row
                        rows.append(ProbeRow(name, n, s, d, hits / total, hits_cos / total, total))
            if device == "cuda":
                torch.cuda.synchronize()
            last = (n, (time.perf_counter() - t0) / len(strengths))
            mins = {s: min(r.accuracy for r in rows if r.kernel == name and r.n == n and r.strength == s) for s in strengths}
            log(f"{name} n={fmt_ctx(n)}: min recall per strength " + ", ".join(f"{s:g}: {a:.3f}" for s, a in mins.items()))
    dev_name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    return {"kind": "probe", "device": dev_name, "strengths": strengths,
            "hit_rule": "out[t] . v / |v|^2 >= 0.5 (the needle holds at least half of the output)",
            "reference": reference_strengths(rows), "results": [asdict(r) for r in rows]}


def print_table(result: dict, console: Console) -> None:
    """Per kernel, n and distance: recall at each strength; then dense's reference strength per n."""
    strengths = result["strengths"]
    table = Table(title=f"probe on {result['device']}: recall per needle strength (logit = strength * sqrt(D))")
    for col in ("kernel", "n", "distance", *(f"s={s:g}" for s in strengths), "trials"):
        table.add_column(col, justify="left" if col == "kernel" else "right")
    cells: dict[tuple[str, int, int], dict[float, dict]] = {}
    for r in result["results"]:
        cells.setdefault((r["kernel"], r["n"], r["distance"]), {})[r["strength"]] = r
    for (kernel, n, d), by_s in cells.items():
        table.add_row(kernel, fmt_ctx(n), str(d), *(f"{by_s[s]['accuracy']:.3f}" if s in by_s else "" for s in strengths),
                      str(min(r["trials"] for r in by_s.values())))
    console.print(table)
    for n, s in result["reference"].items():
        console.print(f"n={fmt_ctx(int(n))}: dense finds >= {REFERENCE_RECALL} at every distance from strength "
                      + (f"{s:g}" if s is not None else f"(none of {', '.join(f'{x:g}' for x in strengths)})"))


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
