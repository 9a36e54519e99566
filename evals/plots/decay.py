"""Recall decay: accuracy against the distance in tokens between a fact and the question (log x),
one line per model and context length, each with its 95% Wilson band; one figure per task.
Built from the ``by_distance`` maps of ``metrics.json``; ``plot_probe_decay`` draws the same picture
per kernel from an ``evals probe`` file (bands from its trial counts)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from evals.ctx import fmt_ctx
from evals.errors import EvalError
from evals.plots.common import color, direct_labels, new_figure, save, short_model, slug, wilson
from evals.results_io import ModelResults


def distance_axis(ax, smallest: float) -> None:
    """Log x axis; symmetric-log (linear below 1) when a distance of 0 was measured, so it is not dropped."""
    if smallest <= 0:
        ax.set_xscale("symlog", linthresh=1)
    else:
        ax.set_xscale("log")


def n_range(ns: list[int]) -> str:
    lo, hi = min(ns), max(ns)
    return f"n={lo}" if lo == hi else f"n={lo}-{hi}"


def plot_decay(models: list[ModelResults], out_dir: Path, formats: tuple[str, ...]) -> list[Path]:
    tasks = sorted({c.task for m in models for c in m.cells if c.by_distance})
    if not tasks:
        raise EvalError("no results carry a distance (by_distance in metrics.json): run a decay task first, e.g. `evals run --tasks decay ...`")
    paths: list[Path] = []
    for task in tasks:
        fig, (ax,) = new_figure()
        distance_axis(ax, min(d for m in models for c in m.cells if c.task == task for d in c.by_distance))
        ends, ns = [], []
        for i, m in enumerate(models):
            cells = [c for c in m.cells if c.task == task and c.by_distance]
            for j, cell in enumerate(cells):
                dists = sorted(cell.by_distance)
                pts = [cell.by_distance[d] for d in dists]
                ys = [100 * p.mean for p in pts]
                bands = [wilson(p.mean, p.n) for p in pts]
                ns += [p.n for p in pts]
                col = color(i)
                style = ("-", "--", ":", "-.")[j % 4]
                ax.plot(dists, ys, style, marker="o", ms=3, color=col, lw=1.8)
                ax.fill_between(dists, [100 * b[0] for b in bands], [100 * b[1] for b in bands], color=col, alpha=0.15, lw=0)
                ends.append((dists[-1], ys[-1], f"{short_model(m.model)} @ {fmt_ctx(cell.ctx)}", col))
        ax.set_ylim(-2, 105)
        ax.set_xlabel("distance between fact and question (tokens, log scale)")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"Recall vs distance: {task}  ({n_range(ns)} samples per point; bands: 95% Wilson)", fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
        direct_labels(ax, ends)
        paths += save(fig, out_dir, f"decay_{slug(task)}", formats)
    return paths


def plot_probe_decay(probe: dict[str, Any], out_dir: Path, formats: tuple[str, ...]) -> list[Path]:
    """Probe accuracy against distance, one line per kernel and sequence length n."""
    lines: dict[tuple[str, int], dict[int, tuple[float, int]]] = {}
    for row in probe["results"]:
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
        ends.append((dists[-1], ys[-1], f"{kernel} @ n={fmt_ctx(n)}", col))
    ax.set_ylim(-2, 105)
    ax.set_xlabel("distance between fact and query (tokens, log scale)")
    ax.set_ylabel("probe accuracy (%)")
    ax.set_title(f"Kernel probe: retrieval vs distance on {probe.get('device', '?')}  ({n_range(ns).replace('n=', 'trials=')} per point; "
                 "bands: 95% Wilson)", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    direct_labels(ax, ends)
    return save(fig, out_dir, "decay_probe", formats)
