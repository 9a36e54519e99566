"""One ``evals probe``-format JSON from the strength sweeps, for the trilemma card.

Each kernel's rows come from the last sweep file that has it; the shipped SSA rule's rows (``--ssa-setting``,
the setting whose keywords are now ``ssa_select``'s defaults) are renamed ``ssa``, and the other SSA settings
are left out, so the card's ``ssa`` is what ``ssa_attention`` does by default. The reference strength per n is
recomputed from the kept ``flash_dense`` rows (``evals.probe.reference_strengths``). Run from the repo root:

    python -m benchmarks.ssa.card_probe --out benchmarks/ssa/h100_card_probe.json \
        benchmarks/ssa/h100_strength_sweep.json benchmarks/ssa/h100_strength_sweep_q.json
    evals plot trilemma --bench benchmarks/kernels/h100.json --probe benchmarks/ssa/h100_card_probe.json \
        --results leaderboards/zoo.samples.jsonl.gz --out leaderboards/plots --format png
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from longctx.evals.probe import ProbeRow, reference_strengths


def merge(runs: list[dict], ssa_setting: str) -> dict:
    ssa_names = {"ssa", *(s for run in runs for s in run.get("settings", []))}
    keep: dict[str, list[dict]] = {}
    for run in runs:
        for name in dict.fromkeys(r["kernel"] for r in run["probe"]):
            if name == ssa_setting or name not in ssa_names:
                keep[name] = [r for r in run["probe"] if r["kernel"] == name]   # a later run replaces an earlier
    rows = [{**r, "kernel": "ssa" if k == ssa_setting else k} for k, rs in keep.items() for r in rs]
    fields = set(ProbeRow.__dataclass_fields__)
    reference = reference_strengths([ProbeRow(**{f: r[f] for f in fields if f in r}) for r in rows])
    return {"kind": "probe", "device": runs[-1].get("device", "?"), "strengths": runs[-1]["strengths"],
            "shape": runs[-1].get("shape"), "reference": reference, "results": rows,
            "source": f"benchmarks/ssa/card_probe.py: {ssa_setting} as ssa"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("sweeps", nargs="+", type=Path, help="strength_sweep.py JSON files, oldest first")
    p.add_argument("--ssa-setting", default="ssa_q", help="the sweep setting that is now SSA's default rule")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    merged = merge([json.loads(f.read_text()) for f in a.sweeps], a.ssa_setting)
    a.out.write_text(json.dumps(merged, indent=1))
    print(f"{a.out}: {len(merged['results'])} rows, kernels {sorted({r['kernel'] for r in merged['results']})}, "
          f"reference {merged['reference']}")


if __name__ == "__main__":
    main()
