"""Recall against length for every model in the given ``needle_length`` JSONs: exact answers by row width (left), and
at each model's widest rows by the needle's distance from the answer (right). From the repository root:

    python -m benchmarks.zoo.plot_needle_length benchmarks/zoo/needle_length_cpu*.json --out benchmarks/zoo/needle_length.png
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import NullLocator  # noqa: E402

from benchmarks.zoo.needle_length import by_distance  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", nargs="+", type=Path, help="needle_length JSON files")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    models = [m for f in a.results for m in json.loads(f.read_text())["results"]]
    fig, (by_width, by_dist) = plt.subplots(1, 2, figsize=(14, 4.2))
    for m in models:
        widths = sorted(int(w) for w in m["by_width"])
        line, = by_width.plot(widths, [100 * m["by_width"][str(w)] for w in widths], marker="o", label=m["model"])
        widest = widths[-1]
        cells = by_distance(m["rows"][str(widest)], widest)
        centres = [(i + 0.5) * widest / len(cells) for i in range(len(cells))]
        by_dist.plot(centres, [100 * share for share, _ in cells], marker="o", color=line.get_color())
    by_width.set_xscale("log", base=2)
    by_width.xaxis.set_minor_locator(NullLocator())
    by_width.set(xticks=[512, 1024, 2048, 4096], xticklabels=["512", "1K", "2K", "4K"], ylim=(-3, 103),
                 xlabel="row width, bytes (trained at 512)", ylabel="exact answers, %", title="by length")
    by_dist.set(ylim=(-3, 103), xlabel="needle's distance from the answer, bytes (quarters of the widest rows)",
                title="by distance, at each model's widest rows")
    fig.legend(loc="center right", fontsize=8)
    fig.suptitle("One needle learned at 512 bytes: recall at longer rows (held-out rows, CPU)")
    fig.tight_layout(rect=(0, 0, 0.85, 1))
    fig.savefig(a.out, dpi=100)
    print(a.out)


if __name__ == "__main__":
    main()
