"""MQAR accuracy against a mixer knob (mamba2's ``d_state``, by default): every seed a point (hollow where its loss
never left the floor, within 0.3 nats of it at the end), the best of the seeds a line, and each run's training loss
beside it, so a run that never started reads apart from one that ran out of state.

    python -m benchmarks.zoo.plot_mqar_state benchmarks/zoo/mqar_state_cpu.json --out benchmarks/zoo/mqar_state.png
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", type=Path, help="a JSON file with a 'runs' list (mqar_sweep's results)")
    p.add_argument("--knob", default="d_state")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    data = json.loads(a.runs.read_text())
    runs = [r for r in data["runs"] if a.knob in r["knobs"]]
    values = sorted({r["knobs"][a.knob] for r in runs})
    colours = dict(zip(values, plt.cm.viridis([0.85 * i / max(len(values) - 1, 1) for i in range(len(values))])))
    floor = math.log(runs[0]["vocab"] // 2)   # the loss of a value guessed among the vocabulary's values
    fig, (acc, loss) = plt.subplots(1, 2, figsize=(13, 4.8))
    for r in runs:
        v = r["knobs"][a.knob]
        log = [e for e in r["loss_log"] if "loss" in e and e["loss"] is not None]
        stuck = log[-1]["loss"] > floor - 0.3
        acc.scatter(v, 100 * r["accuracy"], s=40, zorder=3, edgecolors=colours[v],
                    facecolors="none" if stuck else colours[v])
        loss.plot([e["step"] for e in log], [e["loss"] for e in log], color=colours[v], lw=1.2,
                  ls=("-", "--", ":", "-.")[r.get("seed", 0) % 4],
                  label=f"{a.knob} {v}, seed {r.get('seed', 0)}")
    acc.plot(values, [100 * max(r["accuracy"] for r in runs if r["knobs"][a.knob] == v) for v in values],
             color="0.4", lw=1, label="best of the seeds (hollow: never left the floor)")
    r0 = runs[0]
    acc.set_xscale("log", base=2)
    acc.minorticks_off()
    acc.set(xticks=values, xticklabels=[str(v) for v in values], ylim=(-3, 103), xlabel=a.knob,
            ylabel="held-out accuracy (%)",
            title=f"{r0['arch']}, d {r0['d_model']}: MQAR, {r0['pairs']} pairs in {r0['seq_len']} tokens")
    acc.axhline(100 / (r0["vocab"] // 2), color="0.7", ls=":", label="chance (values are half the vocabulary)")
    acc.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    loss.axhline(floor, color="0.7", ls=":", label="the floor (a value at random)")
    loss.set(xlabel="step", ylabel="training loss (nats)", title=f"{r0['steps']} steps of {r0['batch']}, lr {r0['lr']:g}")
    loss.legend(fontsize=7, ncol=2, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    fig.savefig(a.out, dpi=120)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
