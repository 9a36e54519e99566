"""Does a needle learned at 512 bytes hold at longer rows? Exact answers of ``needle_forms`` models against the row's
length and the needle's distance from the question.

Each model is a ``needle_forms`` run's state file (``--state DIR``, ``ARCH-FORM-LR-WARM.pt``) or a bare state dict of
its weights. Held-out rows (eval split, RULER's question) with one needle, or ``--needles`` of them with one asked,
are scored at each ``--widths`` as ``needle_forms`` scores them (every answer byte the argmax), and each row keeps
the distance in bytes from the asked needle's value to the answer. Writes ``OUT`` (JSON) and prints exact answers by
width, then at the widest rows by quarter of distance:

    python -m benchmarks.zoo.needle_length /tmp/st1/mamba2-ruler-0.001-0.pt /tmp/st1/dense-ruler-0.001-0.pt \
        --widths 512,1024,2048 --rows 100 --out benchmarks/zoo/needle_length_cpu.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from benchmarks.zoo.mqar_sweep import predictions
from benchmarks.zoo.needle_forms import needle_batch, rows_right
from longctx.models.zoo import registry
from longctx.tasks.mqar import IGNORE


def load(path: Path, size: str, device: str):
    """The model of a state file named ``ARCH-...``: its ``size`` config with the saved weights, float32."""
    saved = torch.load(path, map_location="cpu")
    weights = saved.get("model", saved)
    model = registry.build(registry.config(path.name.split("-")[0], size))
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in weights.items()})
    return model.to(device)


def distances(x: torch.Tensor, y: torch.Tensor) -> list[int]:
    """For each row of ``x [B, T]``: bytes from the needle's value to the first answer position of ``y [B, T]``."""
    out = []
    for ids, targets in zip(x.tolist(), y.tolist()):
        first = next(i for i, t in enumerate(targets) if t != IGNORE)
        value = bytes(t for t in targets[first + 1:] if 47 < t < 58)    # the answer's digits
        text = bytes(b if b < 256 else 0 for b in ids[:first])
        out.append(first - text.index(value))
    return out


def by_distance(rows: list[tuple[int, bool]], width: int, parts: int = 4) -> list[tuple[float, int]]:
    """``(share right, rows)`` in each of ``parts`` equal spans of distance from 0 to ``width``."""
    cells = [[ok for d, ok in rows if d * parts // width == i] for i in range(parts)]
    return [(sum(c) / max(len(c), 1), len(c)) for c in cells]


def score(model, width: int, rows: int, device: str, needles: int = 1) -> list[tuple[int, bool]]:
    """``(distance to the asked needle, right)`` for ``rows`` held-out rows of ``width`` bytes, ``needles`` a row."""
    batches = [needle_batch("ruler", min(25, rows - i), width, f"length|{width}|{i}", split="eval", n_needles=needles)
               for i in range(0, rows, 25)]
    out = []
    for (x, _), (pred, y) in zip(batches, predictions(model, batches, device)):
        out += list(zip(distances(x, y), rows_right(pred, y).tolist()))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", type=Path, help="needle_forms state files (ARCH-FORM-LR-WARM.pt)")
    p.add_argument("--widths", default="512,1024,2048")
    p.add_argument("--rows", type=int, default=100, help="rows scored at each width")
    p.add_argument("--needles", type=int, default=1,
                   help="needles a row, one asked (2: can a model that learned one needle tell two apart?)")
    p.add_argument("--size", default="small", choices=list(registry.SIZES), help="the models' registry size")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    widths = [int(w) for w in a.widths.split(",")]
    results = []
    for path in a.models:
        start, model = time.time(), load(path, a.size, a.device)
        cells = {w: score(model, w, a.rows, a.device, a.needles) for w in widths}
        results.append({"model": path.stem, "by_width": {w: sum(r for _, r in c) / len(c) for w, c in cells.items()},
                        "rows": cells, "seconds": round(time.time() - start, 1)})
        print(path.stem.ljust(26) + "".join(f"{w}: {100 * results[-1]['by_width'][w]:5.1f}  " for w in widths),
              flush=True)
    a.out.write_text(json.dumps({"command": " ".join(sys.argv), "widths": widths, "needles": a.needles,
                                 "results": results}, indent=1))
    print("\nat each model's widest rows: exact (%) by the needle's distance from the answer, in quarters of the width")
    for r in results:
        width = max(r["rows"])
        cells = by_distance(r["rows"][width], width)
        print(r["model"].ljust(26) + f"{width}: " + "  ".join(f"{100 * e:3.0f} ({n})" for e, n in cells))


if __name__ == "__main__":
    main()
