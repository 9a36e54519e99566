"""Does ssa's router choose the needle's block? For each checkpoint, on held-out one-needle rows (``needle_forms``'s
ruler form), the share of rows in which each layer's and head's router puts the block holding the needle's first digit
among the blocks the answer's first position attends to, beside the answer digits the model gets right
(teacher-forced, as ``needle_forms`` scores). Rows whose needle lies in the answer's own block (the local window's)
are left out. Chance is about ``top_blocks`` over the completed blocks (8 of 13-15 at 1024 bytes).
INIT is a folder of ``retrain.sh``'s phase-A checkpoints (its ``a/init-N.tar``):

    python -m benchmarks.zoo.route_hits INIT/ssa longctx/models/checkpoints/ssa --width 1024 \
        --out benchmarks/zoo/route_hits_cpu.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from benchmarks.zoo.needle_forms import needle_batch
from benchmarks.zoo.needle_length import distances
from benchmarks.zoo.needle_reads import right_digits
from longctx.models.zoo import checkpoint
from longctx.models.zoo.ssa import ContentRoutedAttention
from longctx.tasks.mqar import IGNORE


def chosen_blocks(model, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The logits ``[B, T, V]`` for ``x [B, T]`` and each routed layer's chosen blocks, ``[B, H, T, top_blocks]`` (-1
    where not a real choice), from one forward pass."""
    seen, route = [], ContentRoutedAttention.route

    def recording(self, rq, means, q_pos):
        idx, real = route(self, rq, means, q_pos)
        seen.append(idx.masked_fill(~real, -1))
        return idx, real

    ContentRoutedAttention.route = recording
    try:
        with torch.no_grad():
            logits = model(x)
    finally:
        ContentRoutedAttention.route = route
    return logits, seen


def score(path: Path, width: int, rows: int) -> dict:
    model, card = checkpoint.load(path)
    model.eval()
    block = int(card["config"]["mixer"].get("block", 64))
    hits, used, right, digits = None, 0, 0, 0
    for i in range(0, rows, 16):
        x, y = needle_batch("ruler", min(16, rows - i), width, f"length|{width}|{i}", split="eval", n_needles=1)
        logits, layers = chosen_blocks(model, x)
        hits = hits if hits is not None else torch.zeros(len(layers), layers[0].shape[1])
        for r, d in enumerate(distances(x, y)):
            answer = int((y[r] != IGNORE).nonzero()[0])
            needle = (answer - d) // block
            if needle >= answer // block:
                continue
            used += 1
            hits += torch.stack([(idx[r, :, answer] == needle).any(-1).float() for idx in layers])
        for k, n in right_digits(logits.argmax(-1), y):
            right, digits = right + k, digits + n
    return {"checkpoint": str(path), "width": width, "rows": used, "digits_right": round(right / digits, 4),
            "needle_block_chosen": [[round(float(v) / max(used, 1), 3) for v in layer] for layer in hits]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoints", nargs="+", type=Path, help="ssa checkpoint folders (card.json, model.safetensors)")
    p.add_argument("--width", type=int, default=1024, help="row length in bytes")
    p.add_argument("--rows", type=int, default=64)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    for c in a.checkpoints:
        if not (c / "card.json").is_file():
            print(f"route_hits: {c} has no card.json", file=sys.stderr)
            sys.exit(2)
    torch.set_num_threads(1)
    results = [score(c, a.width, a.rows) for c in a.checkpoints]
    for r in results:
        print(f"{r['checkpoint']}: {r['rows']} rows, digits right {100 * r['digits_right']:.1f}%")
        for layer, shares in enumerate(r["needle_block_chosen"]):
            print(f"  layer {layer}: needle block chosen " + " ".join(f"{100 * s:5.1f}" for s in shares))
    if a.out:
        a.out.write_text(json.dumps({"command": " ".join(sys.argv), "device": "cpu", "results": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
