"""Does a model read the needle, even where it answers no row exactly? Per-digit accuracy of ``needle_forms`` models on
held-out one-needle rows as they are, and with the needle's digits replaced in the prompt (the answer kept).

A model that reads the needle loses its digits when they are replaced and falls to chance (about 10%); one that
predicts the answer from what the answer's own earlier digits say keeps its accuracy. Accuracy is split by the
needle's distance from the answer, so a windowed mixer shows whether it reads needles inside its window better.
Teacher-forced as ``needle_forms`` scores (each answer digit the argmax after the right digits before it):

    python -m benchmarks.zoo.needle_reads /tmp/st1/swa-ruler-0.001-0.pt /tmp/st1/dense-ruler-0.001-0.pt --rows 100 \
        --out benchmarks/zoo/needle_reads_cpu.json
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import torch

from benchmarks.zoo.needle_forms import needle_batch
from benchmarks.zoo.needle_length import distances, load
from longctx.models.zoo import registry
from longctx.tasks.mqar import IGNORE

DIGITS = range(48, 58)   # the byte ids of '0'-'9'


def replace_needle(x: torch.Tensor, y: torch.Tensor, rng: random.Random) -> torch.Tensor:
    """``x [B, T]`` with every digit of each row's needle value changed to another digit (``y``'s answer kept)."""
    out = x.clone()
    for r, d in enumerate(distances(x, y)):
        at = int((y[r] != IGNORE).nonzero()[0]) - d
        n = sum(1 for t in y[r].tolist() if t in DIGITS)
        for j in range(at, at + n):
            out[r, j] = 48 + (int(x[r, j]) - 48 + rng.randrange(1, 10)) % 10
    return out


def right_digits(pred: torch.Tensor, y: torch.Tensor) -> list[tuple[int, int]]:
    """``(right digits, answer digits)`` of each row of predictions ``pred [B, T]`` against the targets ``y [B, T]``."""
    digit = (y >= DIGITS.start) & (y < DIGITS.stop)
    return list(zip(((pred == y) & digit).sum(-1).tolist(), digit.sum(-1).tolist()))


@torch.no_grad()
def digit_hits(model, x: torch.Tensor, y: torch.Tensor) -> list[tuple[int, int]]:
    """``(right digits, answer digits)`` of each row: the argmax at every answer digit of ``y``."""
    return right_digits(model.eval()(x.to(next(model.parameters()).device)).argmax(-1).cpu(), y)


def score(model, width: int, rows: int, seed: int = 0) -> list[dict]:
    """One record a held-out row: the needle's distance and the digits right as is and with the needle replaced."""
    rng, out = random.Random(seed), []
    for i in range(0, rows, 25):
        x, y = needle_batch("ruler", min(25, rows - i), width, f"length|{width}|{i}", split="eval", n_needles=1)
        kept, swapped = digit_hits(model, x, y), digit_hits(model, replace_needle(x, y, rng), y)
        out += [{"distance": d, "digits": n, "right": k, "right_replaced": s}
                for d, (k, n), (s, _) in zip(distances(x, y), kept, swapped)]
    return out


def summary(rows: list[dict], width: int, parts: int = 4) -> dict:
    """Digit accuracy as is and with the needle replaced, overall and in ``parts`` spans of distance."""
    def acc(cell):
        n = sum(r["digits"] for r in cell) or 1
        return {"rows": len(cell), "digits": round(sum(r["right"] for r in cell) / n, 3),
                "digits_replaced": round(sum(r["right_replaced"] for r in cell) / n, 3),
                "exact": round(sum(r["right"] == r["digits"] for r in cell) / max(len(cell), 1), 3)}
    spans = {f"{i * width // parts}-{(i + 1) * width // parts}": acc([r for r in rows if r["distance"] * parts // width == i])
             for i in range(parts)}
    return {"all": acc(rows), "by_distance": {k: v for k, v in spans.items() if v["rows"]}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", type=Path, help="needle_forms state files (ARCH-FORM-LR-WARM.pt)")
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--rows", type=int, default=100)
    p.add_argument("--size", default="small", choices=list(registry.SIZES), help="the models' registry size")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    results = []
    print(f"{'model':26}{'digits':>8}{'replaced':>10}{'exact':>7}   digits by distance (rows)")
    for path in a.models:
        model = load(path, a.size, a.device)
        rows = score(model, a.width, a.rows)
        s = summary(rows, a.width)
        results.append({"model": path.stem, **s, "rows": rows})
        print(f"{path.stem:26}{100 * s['all']['digits']:8.1f}{100 * s['all']['digits_replaced']:10.1f}"
              f"{100 * s['all']['exact']:7.1f}   " + "  ".join(f"{k}: {100 * v['digits']:.0f} ({v['rows']})"
                                                         for k, v in s["by_distance"].items()), flush=True)
    a.out.write_text(json.dumps({"command": " ".join(sys.argv), "width": a.width, "results": results}, indent=1))


if __name__ == "__main__":
    main()
