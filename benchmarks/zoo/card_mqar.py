"""Put each architecture's MQAR evidence on its checkpoint card: the best accuracy ``mqar_sweep`` measured for it, dense
attention's under the same setup, and every run (rate, seed, knobs) behind each: at these budgets leaving MQAR's
plateau is a draw, so the card says how many draws there were. A zoo model that scores at chance on the board then says
on its card whether its mixer recalls at all when trained to the end on the simplest recall task.

Every run read must share one setup (sequence, pairs, vocabulary, depth, width, steps, batch): the cards compare
architectures, so a run of another setup is refused (exit 2). The card gets ``mqar``; ``evals run`` records it in
the run's manifest and ``evals leaderboard build`` on the board:

    python -m benchmarks.zoo.card_mqar benchmarks/zoo/mqar_cpu.json --ship longctx/models/checkpoints
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from longctx.models.zoo.checkpoint import CARD
from longctx.models.zoo.model import CHECKPOINTS

SETUP = ("seq_len", "pairs", "vocab", "n_layers", "d_model", "steps", "batch")


def read_runs(paths: list[Path]) -> tuple[dict, list[dict]]:
    """The setup every run in ``paths`` shares and the runs, each with its ``source`` (and that file's ``note``);
    SystemExit(2) otherwise."""
    runs = [{**r, "source": str(p), "source_note": data.get("note")}
            for p in paths for data in [json.loads(p.read_text())] for r in data["runs"] if "accuracy" in r]
    lacking = sorted({f"{r['source']} ({k})" for r in runs for k in SETUP if k not in r})
    if lacking:
        print(f"card_mqar: runs lack their setup: {', '.join(lacking)}", file=sys.stderr)
        sys.exit(2)
    setups = {tuple(r[k] for k in SETUP) for r in runs}
    if len(setups) != 1:
        print(f"card_mqar: the runs must share one setup ({', '.join(SETUP)}); found {sorted(setups) or 'no runs'}",
              file=sys.stderr)
        sys.exit(2)
    return dict(zip(SETUP, setups.pop())), runs


def evidence(arch: str, setup: dict, runs: list[dict]) -> dict | None:
    """``arch``'s best run and every run tried, beside dense's runs; None when it has no run."""
    mine = sorted((r for r in runs if r["arch"] == arch), key=lambda r: -r["accuracy"])
    if not mine:
        return None
    dense = sorted((r["accuracy"] for r in runs if r["arch"] == "dense"), reverse=True)
    best = mine[0]
    return {"accuracy": best["accuracy"], "dense_accuracy": dense[0] if dense else None, "dense_tried": dense,
            "setup": {**setup, "lr": best["lr"], "knobs": best.get("knobs", {})}, "source": best["source"],
            "note": best["source_note"],
            "tried": [{"lr": r["lr"], "seed": r.get("seed", 0), "knobs": r.get("knobs", {}), "accuracy": r["accuracy"]}
                      for r in mine]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mqar", nargs="+", type=Path, help="mqar_sweep JSON files (a 'runs' list)")
    p.add_argument("--ship", type=Path, default=CHECKPOINTS, help="folder of ARCH/card.json")
    a = p.parse_args()
    setup, runs = read_runs(a.mqar)
    for card_path in sorted(a.ship.glob(f"*/{CARD}")):
        card = json.loads(card_path.read_text())
        found = evidence(card["architecture"], setup, runs)
        card.pop("mqar", None)
        if found:
            card["mqar"] = found
        card_path.write_text(json.dumps(card, indent=2) + "\n")
        print(f"{card['architecture']:12}" + (f"{100 * found['accuracy']:5.1f} at lr {found['setup']['lr']:g}"
                                               if found else "  no MQAR run"))


if __name__ == "__main__":
    main()
