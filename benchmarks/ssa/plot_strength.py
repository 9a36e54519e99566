"""Pictures from ``strength_sweep.py``'s JSON: recall against needle strength (one line per kernel, a panel
per length; the dashed line marks dense attention's reference strength) and SSA's frontier (recall at the
reference strength against speed-up over SDPA flash, one point per setting, a panel per length).
Several runs' JSON files may be given: the recall lines take each kernel from the last file that has it, the
frontier shows every setting of every file (a speed-up is always against its own run's SDPA flash).
Run: ``python benchmarks/ssa/plot_strength.py benchmarks/ssa/ benchmarks/ssa/h100_strength_sweep*.json``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def pooled(rows: list[dict], kernel: str, n: int, s: float) -> float | None:
    """Needle-weighted recall over all distances of one kernel, n and strength."""
    sel = [r for r in rows if r["kernel"] == kernel and r["n"] == n and r["strength"] == s]
    total = sum(r["trials"] for r in sel)
    return sum(r["accuracy"] * r["trials"] for r in sel) / total if total else None


def main(out: Path, paths: list[Path]) -> None:
    runs = [json.loads(p.read_text()) for p in paths]
    res = runs[-1]
    strengths = res["strengths"]
    last = {r["kernel"]: i for i, run in enumerate(runs) for r in run["probe"]}
    rows = [r for i, run in enumerate(runs) for r in run["probe"] if last[r["kernel"]] == i]
    ns = sorted({r["n"] for r in rows})
    kernels = list(dict.fromkeys(r["kernel"] for r in rows))
    fig, axes = plt.subplots(1, len(ns), figsize=(6 * len(ns), 4.5), squeeze=False)
    for ax, n in zip(axes[0], ns):
        for i, kernel in enumerate(kernels):
            pts = [(s, pooled(rows, kernel, n, s)) for s in strengths]
            pts = [(s, 100 * v) for s, v in pts if v is not None]
            if pts:
                ax.plot(*zip(*pts), "-o", ms=3, lw=2.2 if kernel == "flash_dense" else 1.4, label=kernel,
                        color="black" if kernel == "flash_dense" else plt.get_cmap("tab10")(i % 10))
        ref = res["reference"].get(str(n))
        if ref is not None:
            ax.axvline(ref, ls="--", color="0.4", lw=1)
            ax.text(ref, 3, f" reference s={ref:g}", fontsize=8, color="0.3")
        ax.set_title(f"n = {n // 1024}K  ({res.get('device', '?')}, bf16, H=8, D=128)", fontsize=10)
        ax.set_xlabel("needle strength s (needle logit = s * sqrt(D))")
        ax.set_ylabel("recall over all distances (%)")
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "strength_recall.png", dpi=120)
    fig, axes = plt.subplots(1, len(ns), figsize=(6 * len(ns), 4.5), squeeze=False)
    for ax, n in zip(axes[0], ns):
        ref = res["reference"].get(str(n))
        for i, run in enumerate(runs):
            fa = run["ms"].get("sdpa_flash", {}).get(str(n))
            for name in run["settings"]:
                t = run["ms"].get(name, {}).get(str(n))
                sel = [r for r in run["probe"] if r["kernel"] == name and r["n"] == n and r["strength"] == ref]
                if ref is None or not sel or not t or not fa:
                    continue
                rec = 100 * min(r["accuracy"] for r in sel)
                ax.plot(fa / t, rec, "os^v"[i % 4], color=plt.get_cmap("tab10")(i), label=paths[i].stem)
                ax.annotate(name, (fa / t, rec), fontsize=7, xytext=(3, 3), textcoords="offset points")
        target = {131072: 8, 1048576: 60}.get(n)
        if target:
            ax.axvline(target, ls="--", color="0.5", lw=1)
        ax.axhline(99, ls="--", color="0.5", lw=1)
        handles = dict(zip(*reversed(ax.get_legend_handles_labels())))   # one legend entry a run
        ax.legend(handles.values(), handles.keys(), fontsize=7, loc="lower left")
        ax.set_title(f"SSA settings at n = {n // 1024}K, strength {ref}", fontsize=10)
        ax.set_xlabel("speed-up over SDPA flash (same run)")
        ax.set_ylabel("min recall over distances at the reference strength (%)")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "ssa_frontier.png", dpi=120)


if __name__ == "__main__":
    main(Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]])
