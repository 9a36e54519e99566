"""Does a copy phase teach copying when the copied span cannot be predicted otherwise? CPU, tiny models.

Rows of ``--width`` bytes: a span A (16-32 bytes), some essay text, A again, essay text to the end; every
byte a target (the recipe's copy phase). A is either essay text (the recipe's rows: generated English,
predictable without copying) or random letters and digits (copying is the only way to predict it). After
training, the repeat's cross-entropy against the first copy's, on held-out rows with random spans, says
whether the model copies in context.

    python -m benchmarks.zoo.copy_entropy --arch dense,mamba2,linear --steps 400
"""
from __future__ import annotations

import argparse
import random
import string
import time

import torch
import torch.nn.functional as F

from benchmarks.zoo.mqar_sweep import train_recall
from longctx.evals.train import essay_bytes
from longctx.models.zoo import registry
from longctx.models.zoo.trunk import BOS

ALPHABET = (string.ascii_lowercase + string.digits).encode()


def copy_rows(n: int, width: int, spans: str, rng: random.Random, text: bytes) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """``[n, width + 1]`` ids and each row's (first, repeat) span starts (token indices) and length."""
    rows, where = [], []
    for _ in range(n):
        k = rng.randrange(16, 33)
        a, b, c = (rng.randrange(0, len(text) - 2 * width) for _ in range(3))
        span = bytes(rng.choice(ALPHABET) for _ in range(k)) if spans == "random" else text[a:a + k]
        gap = rng.randrange(0, 33)
        row = [BOS, *(span + text[b:b + gap] + span + text[c:c + width])[:width]]
        rows.append(row)
        where.append((1, 1 + k + gap, k))
    return torch.tensor(rows), where


@torch.no_grad()
def first_and_repeat(model, x: torch.Tensor, where: list[tuple[int, int, int]]) -> tuple[float, float]:
    """Mean cross-entropy (nats a byte) on each row's first span and on its repeat, the first 2 bytes of each skipped."""
    ce = F.cross_entropy(model.eval()(x[:, :-1]).float().transpose(1, 2), x[:, 1:], reduction="none")
    first = torch.cat([ce[i, s + 1:s + k - 1] for i, (s, _, k) in enumerate(where)]).mean()
    again = torch.cat([ce[i, r + 1:r + k - 1] for i, (_, r, k) in enumerate(where)]).mean()
    return float(first), float(again)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="dense,mamba2,linear")
    p.add_argument("--spans", default="essay,random")
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    a = p.parse_args()
    torch.set_num_threads(1)
    text = essay_bytes(0)
    test_x, test_where = copy_rows(64, a.width, "random", random.Random("test"), text)
    print("arch      trained on   steps  random-span rows: first / repeat (nats a byte)   seconds")
    for arch in a.arch.split(","):
        for spans in a.spans.split(","):
            rng, start = random.Random(f"train|{spans}"), time.time()

            def batch_at(step: int):
                x, _ = copy_rows(a.batch, a.width, spans, rng, text)
                return x[:, :-1], x[:, 1:]

            model, _ = train_recall(registry.config(arch, "tiny"), batch_at, a.steps, a.lr, "cpu")
            f, r = first_and_repeat(model, test_x, test_where)
            print(f"{arch:9s} {spans:11s} {a.steps:6d}  {f:.2f} / {r:.2f}   {time.time() - start:.0f}", flush=True)


if __name__ == "__main__":
    main()
