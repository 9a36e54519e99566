"""Three measurements behind models/checkpoints/README.md's "Why eight score 0", on the CPU:

- ``floor``: the answer loss of a model that knows the answer's format but not the needle's value
  (ln 9 + 6 ln 10 per 7-digit number, 30 ln 16 + ln 4 per uuid, 0 for every other answer byte), averaged
  over the answer tokens of the task phase's data mix (``evals.train.build_data`` with make.py's mix);
- ``copy``: each shipped checkpoint's cross-entropy on a 64-byte span (essay text, or with ``--spans random``
  random letters and digits, ln 36 = 3.58 nats a byte to a model that knows only the alphabet) and on its
  repeat 100 bytes later: a model that learned to copy in context predicts the repeat far better than the
  first copy;
- ``reach``: where the answer's training signal lands. On niah_single_1 rows at 1K (RULER's prompt, eval split), the
  gradient of the answer bytes' loss with respect to each input byte's embedding: the share of its norm on the
  needle's value bytes (a model that can learn to copy the value must send some of its gradient there) and on
  bytes more than 256 back, for each shipped checkpoint or (``--fresh``) a new model of the registry's config.

    python -m benchmarks.zoo.recall_diagnosis floor --rows 280
    python -m benchmarks.zoo.recall_diagnosis copy --arch dense,mamba2,linear,swa [--spans random]
    python -m benchmarks.zoo.recall_diagnosis reach --arch dense,mamba2 --rows 16 [--fresh]
"""
from __future__ import annotations

import argparse
import math
import random
import re

import torch
import torch.nn.functional as F

NUMBER, UUID = math.log(9) + 6 * math.log(10), 30 * math.log(16) + math.log(4)
TASKS = "niah_single_1,niah_single_2,niah_single_3,niah_multikey_1,niah_multikey_2,niah_multiquery,niah_multivalue"


def format_floor(ids: list[int], weights: list[float]) -> tuple[float, int]:
    """(nats a format-only model pays on the row's answer tokens, how many answer tokens)."""
    text = bytes(i if i < 256 else 10 for i in ids).decode("latin1")
    nats, n, i = 0.0, 0, 0
    while i < len(ids):
        if weights[i] <= 1:
            i += 1
            continue
        j = i
        while j < len(ids) and weights[j] > 1:
            j += 1
        for m in re.finditer(r"[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}|\d{7}", text[i:j]):
            nats += NUMBER if len(m.group()) == 7 else UUID
        n, i = n + j - i, j
    return nats, n


def floor(rows: int) -> None:
    from rich.console import Console

    from longctx.evals.train import build_data

    data = build_data(TASKS.split(","), 1024, rows, 0, 20.0, 0.4, Console(stderr=True), 1.0, 0.25)
    per_row = [format_floor(data.tokens[r].tolist(), data.weights[r].tolist()) for r in range(data.tokens.shape[0])]
    total, n = sum(p[0] for p in per_row), sum(p[1] for p in per_row)
    rng, batches = random.Random(0), []
    for _ in range(200):
        b = rng.sample(per_row, 16)
        if sum(p[1] for p in b):
            batches.append(sum(p[0] for p in b) / sum(p[1] for p in b))
    batches.sort()
    print(f"{len(per_row)} rows, {n} answer tokens: floor {total / n:.3f} nats a token; 16-row batches: median "
          f"{batches[len(batches) // 2]:.3f}, 10-90% {batches[len(batches) // 10]:.3f}-{batches[9 * len(batches) // 10]:.3f}")


def copy_probe_rows(spans: str, n: int = 16, seed: int = 5) -> tuple[torch.Tensor, slice, slice]:
    """``[n, 365]`` ids: BOS, a 64-byte span (essay text or random letters and digits), 100 essay bytes, the
    span again, 200 essay bytes; and the logit positions that predict the first span and its repeat, each
    span's first 8 bytes left out (logits at t predict t + 1: the spans are bytes 1-64 and 165-228)."""
    from longctx.evals.train import essay_bytes
    from longctx.evals.train_copy import ALPHABET
    from longctx.models.zoo.trunk import BOS

    text, rng, rows = essay_bytes(0), random.Random(seed), []
    for _ in range(n):
        a, b, c = (rng.randrange(0, len(text) - 600) for _ in range(3))
        span = text[a:a + 64] if spans == "essay" else bytes(rng.choice(ALPHABET) for _ in range(64))
        rows.append([BOS, *(span + text[b:b + 100] + span + text[c:c + 200])[:364]])
    return torch.tensor(rows), slice(8, 63), slice(172, 227)


@torch.no_grad()
def copy_losses(model: torch.nn.Module, rows: torch.Tensor, first: slice, repeat: slice) -> tuple[float, float]:
    """Mean cross-entropy (nats a byte) of ``model`` at the logit positions ``first`` (a span's first copy) and
    ``repeat`` (its repeat) of ``rows``: a model that copies in context predicts the repeat far better."""
    x = rows.to(next(model.parameters()).device)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=x.is_cuda):
        logits = model.eval()(x[:, :-1])
    ce = F.cross_entropy(logits.float().transpose(1, 2), x[:, 1:], reduction="none")
    return float(ce[:, first].mean()), float(ce[:, repeat].mean())


def copy(archs: list[str], spans: str) -> None:
    from longctx.models.zoo import checkpoint
    from longctx.models.zoo.model import CHECKPOINTS

    probe = copy_probe_rows(spans)
    for arch in archs:
        model, _ = checkpoint.load(CHECKPOINTS / arch, "cpu")
        first, repeat = copy_losses(model, *probe)
        print(f"{arch:10s} first span {first:.2f}  repeat {repeat:.2f} nats a byte", flush=True)


def reach_rows(n: int, ctx: int = 1024) -> list[tuple[torch.Tensor, slice, slice]]:
    """``n`` niah_single_1 rows at ``ctx`` as the zoo trains on them: (``ids [T]``, the logit positions that
    predict the answer bytes, the input positions of the needle's value)."""
    from longctx.evals.train import OVERHEAD, sample_row
    from longctx.tasks.cache import generate_samples
    from longctx.tasks.tokenizers import ByteTokenizer

    rows = []
    for s in generate_samples("niah_single_1", ctx, n, 0, ByteTokenizer(), split="eval", overhead=OVERHEAD):
        ids, weights = sample_row(s, 20.0)
        first = weights.index(20.0)
        at = bytes(i if i < 256 else 0 for i in ids[:first]).rfind(s.answers[0].encode())
        rows.append((torch.tensor(ids), slice(first - 1, len(ids) - 1), slice(at, at + len(s.answers[0]))))
    return rows


def gradient_by_position(model: torch.nn.Module, ids: torch.Tensor, scored: slice) -> torch.Tensor:
    """``[T]``: the norm of d(mean cross-entropy at the logit positions ``scored``) / d(each input embedding)."""
    seen = {}

    def keep(module: torch.nn.Module, inputs: tuple, out: torch.Tensor) -> None:
        out.retain_grad()
        seen["x"] = out

    hook = model.embed.register_forward_hook(keep)
    try:
        logits = model.train()(ids[None, :-1])[0]
    finally:
        hook.remove()
    F.cross_entropy(logits[scored], ids[1:][scored]).backward()
    model.zero_grad(set_to_none=True)
    return seen["x"].grad[0].norm(dim=-1)


def reach(archs: list[str], n: int, fresh: bool) -> None:
    from longctx.models.zoo import checkpoint, registry
    from longctx.models.zoo.model import CHECKPOINTS

    rows = reach_rows(n)
    print(f"{'fresh' if fresh else 'shipped'} weights, {n} niah_single_1 rows at 1K: share of the answer loss's input gradient")
    for arch in archs:
        torch.manual_seed(0)
        model = registry.build(registry.config(arch, "small")) if fresh else checkpoint.load(CHECKPOINTS / arch, "cpu")[0]
        needle = far = 0.0
        for ids, scored, value in rows:
            g = gradient_by_position(model, ids, scored)[:scored.start + 1]   # the prompt up to the first answer byte
            needle += float(g[value].sum() / g.sum()) / n
            far += float(g[:scored.start + 1 - 256].sum() / g.sum()) / n
        uniform = sum(r[2].stop - r[2].start for r in rows) / sum(r[1].start + 1 for r in rows)
        print(f"{arch:10s} on the needle's value {100 * needle:6.2f}% ({needle / uniform:5.1f}x uniform)   "
              f"more than 256 bytes back {100 * far:5.1f}%", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["floor", "copy", "reach"])
    p.add_argument("--rows", type=int, default=280)
    p.add_argument("--arch", default="dense,mamba2,linear,swa")
    p.add_argument("--spans", default="essay", choices=["essay", "random"], help="copy: what the repeated span is")
    p.add_argument("--fresh", action="store_true", help="reach: new models of the registry's configs, not the shipped weights")
    a = p.parse_args()
    torch.set_num_threads(1)
    if a.what == "floor":
        floor(a.rows)
    elif a.what == "copy":
        copy(a.arch.split(","), a.spans)
    else:
        reach(a.arch.split(","), a.rows, a.fresh)


if __name__ == "__main__":
    main()
