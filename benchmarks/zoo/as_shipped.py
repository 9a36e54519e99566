"""Results that ``adapt.py`` scored from a ship folder outside the package (``zoo:ARCH@SHIP/ARCH``), written as the
package's ``zoo:ARCH`` once the weights are known to be the ones shipped: each run folder's
``SHIP/ARCH/model.safetensors`` must equal ``longctx/models/checkpoints/ARCH/model.safetensors`` byte for byte, else
nothing is written (exit 2). The manifest's ``mqar`` is taken from the shipped card, which ``card_mqar`` fills after
the device run. The spec is replaced in every JSON file of the run; scores and predictions are untouched.

    python -m benchmarks.zoo.as_shipped RESULTS... --ship /tmp/rt/checkpoints --scored-from /tmp/retrain/ship \
        --out /tmp/zoo-results
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

from longctx.evals.store import model_slug
from longctx.models.zoo.checkpoint import CARD
from longctx.models.zoo.model import CHECKPOINTS

WEIGHTS = "model.safetensors"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def checked_spec(run: Path, ship: Path, scored_from: str) -> tuple[str, str]:
    """``(spec scored, package spec)`` of one run folder; ValueError unless its weights are the shipped ones."""
    spec = json.loads((run / "manifest.json").read_text())["model"]
    arch = spec.removeprefix("zoo:").split("@")[0]
    if spec != f"zoo:{arch}@{scored_from}/{arch}":
        raise ValueError(f"{run}: scored as {spec}, not from {scored_from}")
    if digest(ship / arch / WEIGHTS) != digest(CHECKPOINTS / arch / WEIGHTS):
        raise ValueError(f"{run}: {ship / arch / WEIGHTS} is not the shipped {arch}")
    return spec, f"zoo:{arch}"


def relabel(run: Path, spec: str, new: str, out: Path) -> None:
    """Copy one run folder to ``out`` under the package spec ``new``, with the shipped card's ``mqar``."""
    dest = out / model_slug(new)
    shutil.copytree(run, dest, dirs_exist_ok=True)
    for f in [*dest.rglob("*.json"), *dest.rglob("*.jsonl")]:
        f.write_text(f.read_text().replace(spec, new))
    manifest = json.loads((dest / "manifest.json").read_text())
    manifest["mqar"] = json.loads((CHECKPOINTS / new.removeprefix("zoo:") / CARD).read_text()).get("mqar")
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", nargs="+", type=Path, help="folders of run folders (evals run --out)")
    p.add_argument("--ship", type=Path, required=True, help="the ship folder's files, here (ARCH/model.safetensors)")
    p.add_argument("--scored-from", required=True, help="the ship folder's path where the runs were scored")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    runs = [m.parent for r in a.results for m in sorted(r.glob("*/manifest.json"))]
    try:   # every run is checked before any is written
        specs = [checked_spec(run, a.ship, a.scored_from.rstrip("/")) for run in runs]
    except (ValueError, FileNotFoundError) as e:
        print(f"as_shipped: {e}", file=sys.stderr)
        sys.exit(2)
    for run, (spec, new) in zip(runs, specs):
        relabel(run, spec, new, a.out)
        print(f"{run} -> {new}")


if __name__ == "__main__":
    main()
