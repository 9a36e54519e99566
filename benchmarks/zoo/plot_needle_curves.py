"""Answer loss against training step for every ``needle_forms`` run in the given JSONs, one panel per architecture,
one line per run (question form, needle count, rate): where each architecture leaves the answer floor (a model
that knows an answer's format but not its value pays about 1.6 nats a byte here). From the repository root:

    python -m benchmarks.zoo.plot_needle_curves benchmarks/zoo/needle_forms_h100_*.json --out benchmarks/zoo/needle_curves.png
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def label(run: dict) -> str:
    warm = f", MQAR {run['warm_mqar_steps']} first" if run.get("warm_mqar_steps") else ""
    needles = "1 needle" if run.get("needles", 2) == 1 else "2 needles"
    if run.get("single_first"):
        needles = f"1 needle for {run['single_first']} steps, then {run['needles']}"
    seed = f", seed {run['seed']}" if run.get("seed") else ""
    return (f"{needles}, {run['form']}, lr {run['lr']:g}, {run['steps']} steps{warm}{seed}: "
            f"{100 * run['exact']:.0f}% exact")


def style(run: dict) -> str:
    """Solid: two needles in RULER's form; dotted: the echo form; dash-dot: one needle."""
    return "-." if run.get("needles", 2) == 1 else ":" if run["form"] == "echo" else "-"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="needle_forms.json files")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    runs = [r for f in a.runs for r in json.loads(f.read_text())["runs"]]
    archs = list(dict.fromkeys(r["arch"] for r in runs))
    cols = 5
    fig, axes = plt.subplots(-(-len(archs) // cols), cols, figsize=(4.4 * cols, 4 * -(-len(archs) // cols)),
                             squeeze=False, sharex=True, sharey=True)
    for ax in axes.flat[len(archs):]:
        ax.axis("off")
    for ax, arch in zip(axes.flat, archs):
        for r in sorted((r for r in runs if r["arch"] == arch), key=label):
            points = [(e["step"], e["loss"]) for e in r["loss_log"] if e.get("loss") is not None and "stopped" not in e]
            steps, losses = zip(*points)
            ax.plot(steps, losses, label=label(r), lw=1.1, ls=style(r))
        ax.axhline(1.6, color="grey", lw=0.8, ls="--")
        ax.set(title=arch, ylim=(0, 3.7))   # the top holds the legend
        ax.legend(fontsize=6, loc="upper right")
    for ax in axes[-1]:
        ax.set_xlabel("step (batch 32, 512-byte rows)")
    for ax in axes[:, 0]:
        ax.set_ylabel("answer loss, nats a byte")
    fig.suptitle("Needle rows from scratch: answer loss by step (dashed: the format floor; solid: two needles, "
                 "dotted: echo form, dash-dot: one needle)")
    fig.tight_layout()
    fig.savefig(a.out, dpi=100)
    print(a.out)


if __name__ == "__main__":
    main()
