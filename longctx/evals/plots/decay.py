"""Recall decay: accuracy against the distance in tokens between a fact and the question (log x),
one panel per model, one line per context length, each with its 95% Wilson band; one figure per task.
Built from the ``by_distance`` maps of ``metrics.json``; ``plot_probe_decay`` draws the same picture
per kernel from an ``evals probe`` file (bands from its trial counts)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator

from longctx.evals.ctx import fmt_ctx
from longctx.evals.errors import EvalError
from longctx.evals.plots.common import (
    color,
    direct_labels,
    new_figure,
    plt,
    save,
    short_model,
    slug,
    wilson,
)
from longctx.evals.results_io import ModelResults, reference_rows

CTX_COLORS = plt.get_cmap("viridis_r")


def distance_axis(ax, smallest: float) -> None:
    """Log x axis; symmetric-log (linear below 1) when a distance of 0 was measured, so it is not dropped."""
    if smallest <= 0:
        ax.set_xscale("symlog", linthresh=1)
    else:
        ax.set_xscale("log")


def n_range(ns: list[int]) -> str:
    lo, hi = min(ns), max(ns)
    return f"n={lo}" if lo == hi else f"n={lo}-{hi}"


def log2_bins(by_distance: dict) -> list[tuple[int, float, int]]:
    """Points pooled by distance rounded to the nearest power of two -> [(2^b, mean, n)], ascending: the
    fact's own length scatters the nearest grid points (61, 63, 64, 68 tokens), and pooling gives each
    plotted point the samples of its octave."""
    bins: dict[int, list[tuple[float, int]]] = {}
    for d, p in by_distance.items():
        bins.setdefault(round(math.log2(max(d, 1))), []).append((p.mean, p.n))
    return [(2 ** b, sum(m * n for m, n in pts) / max(1, sum(n for _, n in pts)), sum(n for _, n in pts))
            for b, pts in sorted(bins.items())]


def plot_decay(models: list[ModelResults], out_dir: Path, formats: tuple[str, ...]) -> list[Path]:
    """One figure per task, one panel per model, one line per context length (darker = longer; one legend)."""
    tasks = sorted({c.task for m in models for c in m.cells if c.by_distance})
    if not tasks:
        raise EvalError("no results carry a distance (by_distance in metrics.json): run a decay task first, e.g. `evals run --tasks decay ...`")
    paths: list[Path] = []
    for task in tasks:
        shown = [(m, sorted((c for c in m.cells if c.task == task and c.by_distance), key=lambda c: c.ctx)) for m in models]
        shown = [(m, cells) for m, cells in shown if cells]
        ctxs = sorted({c.ctx for _, cells in shown for c in cells})
        cols = min(4, len(shown))
        rows = -(-len(shown) // cols)
        fig, axes = new_figure(rows, cols, width=max(4.2, 9.0 / cols), height=3.0)
        fig.set_layout_engine("constrained")  # title, panels and the legend below them never overlap
        ns = []

        def ctx_color(ctx: int) -> tuple:
            return CTX_COLORS(0.15 + 0.8 * ctxs.index(ctx) / max(1, len(ctxs) - 1))

        for ax, (m, cells) in zip(axes, shown):
            ax.set_xscale("log", base=2)
            ax.xaxis.set_major_locator(LogLocator(base=4))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: fmt_ctx(int(x)) if x >= 1 else ""))
            for k, cell in enumerate(cells):
                pts = log2_bins(cell.by_distance)
                dodge = 2 ** (0.08 * (k - (len(cells) - 1) / 2))  # context lengths side by side at a shared octave
                xs, ys = [x * dodge for x, _, _ in pts], [100 * y for _, y, _ in pts]
                bands = [wilson(y, n) for _, y, n in pts]
                ns += [n for _, _, n in pts]
                col = ctx_color(cell.ctx)
                ax.plot(xs, ys, "-o", ms=3, lw=1.6, color=col)
                ax.fill_between(xs, [100 * b[0] for b in bands], [100 * b[1] for b in bands], color=col, alpha=0.08, lw=0)
            ax.set_ylim(-4, 106)
            ax.set_title(short_model(m.model), fontsize=9)
            ax.grid(True, which="major", alpha=0.3)
        for ax in axes[len(shown):]:
            ax.set_visible(False)
        for ax in axes[(rows - 1) * cols:]:
            ax.set_xlabel("fact-question distance (tokens)", fontsize=8)
        for ax in axes[::cols]:
            ax.set_ylabel("accuracy (%)", fontsize=8)
        handles = [Line2D([], [], color=ctx_color(c), marker="o", ms=3, lw=1.6) for c in ctxs]
        fig.legend(handles, [f"context {fmt_ctx(c)}" for c in ctxs], loc="outside lower center", ncol=min(len(ctxs), 6),
                   fontsize=8, frameon=False)
        fig.suptitle(f"Recall vs distance: {task}\n{n_range(ns)} samples per point; distances pooled by octave; "
                     "bands: 95% Wilson", fontsize=10)
        paths += save(fig, out_dir, f"decay_{slug(task)}", formats)
    return paths


def plot_probe_decay(probe: dict[str, Any], out_dir: Path, formats: tuple[str, ...]) -> list[Path]:
    """Probe recall against distance, one line per kernel and sequence length n (at n's reference strength
    when the file sweeps strengths)."""
    lines: dict[tuple[str, int], dict[int, tuple[float, int]]] = {}
    rows, ref = reference_rows(probe)
    for row in rows:
        lines.setdefault((row["kernel"], int(row["n"])), {})[int(row["distance"])] = (float(row["accuracy"]), int(row["trials"]))
    fig, (ax,) = new_figure()
    distance_axis(ax, min(d for pts in lines.values() for d in pts))
    kernels = sorted({k for k, _ in lines})
    ends, ns = [], []
    for (kernel, n), pts in sorted(lines.items()):
        dists = sorted(pts)
        ys = [100 * pts[d][0] for d in dists]
        bands = [wilson(*pts[d]) for d in dists]
        ns += [pts[d][1] for d in dists]
        col = color(kernels.index(kernel))
        ax.plot(dists, ys, "-o", ms=3, lw=1.8, color=col)
        ax.fill_between(dists, [100 * b[0] for b in bands], [100 * b[1] for b in bands], color=col, alpha=0.15, lw=0)
        ends.append((dists[-1], ys[-1], f"{kernel} @ n={fmt_ctx(n)}" + (f", s={ref[n]:g}" if n in ref else ""), col))
    ax.set_ylim(-2, 105)
    ax.set_xlabel("distance between fact and query (tokens, log scale)")
    ax.set_ylabel("probe accuracy (%)")
    ax.set_title(f"Kernel probe: retrieval vs distance on {probe.get('device', '?')}  ({n_range(ns).replace('n=', 'trials=')} per point; "
                 "bands: 95% Wilson)", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    direct_labels(ax, ends)
    return save(fig, out_dir, "decay_probe", formats)
