"""Score against context length: one panel for the RULER-style average and one per task, one line
per model with its 95% Wilson band, and the effective-length threshold drawn across.

``plot_panels`` draws from plain series, so the leaderboard page can render the same picture from
a board's JSON; ``plot_length`` feeds it from results folders."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from longctx.evals.aggregate import full_lengths
from longctx.evals.errors import EvalError
from longctx.evals.plots.common import color, ctx_axis, direct_labels, new_figure, save, short_model, wilson
from longctx.evals.results_io import ModelResults


@dataclass
class Series:
    """One line: a label, context lengths, scores in [0, 1] and their sample counts (0 = no band)."""

    label: str
    ctxs: list[int]
    scores: list[float]
    ns: list[int]
    color_index: int = 0


def plot_panels(panels: dict[str, list[Series]], threshold: float, out_dir: Path, stem: str,
                formats: tuple[str, ...], title: str, cols: int = 3) -> list[Path]:
    """One axes per panel title; ``threshold`` is in percent (RULER's 85.6 by default). Series without
    points are left out, and so are panels left empty; no panel at all is an EvalError."""
    panels = {name: kept for name, series in panels.items() if (kept := [s for s in series if s.ctxs])}
    if not panels:
        raise EvalError("nothing to plot against context length: no scored cells in these results")
    cols = min(cols, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = new_figure(rows, cols, width=5.6, height=3.8)
    fig.set_layout_engine("constrained")  # keeps the figure title clear of the panel titles
    for ax, (name, series) in zip(axes, panels.items()):
        ctxs = sorted({c for s in series for c in s.ctxs})
        ends, ns = [], []
        for s in series:
            col = color(s.color_index)
            ys = [100 * v for v in s.scores]
            ax.plot(s.ctxs, ys, "-o", ms=3, lw=1.8, color=col)
            if any(s.ns):
                bands = [wilson(v, n) for v, n in zip(s.scores, s.ns)]
                ax.fill_between(s.ctxs, [100 * b[0] for b in bands], [100 * b[1] for b in bands], color=col, alpha=0.15, lw=0)
                ns += [n for n in s.ns if n]
            ends.append((s.ctxs[-1], ys[-1], s.label, col))
        ax.axhline(threshold, color="0.35", ls="--", lw=1)
        ax.annotate(f"threshold {threshold:g}", xy=(0.01, threshold), xycoords=("axes fraction", "data"),
                    xytext=(0, 3), textcoords="offset points", fontsize=7, color="0.35")
        ctx_axis(ax, ctxs)
        ax.set_ylim(-2, 105)
        n_note = f", n={min(ns)}-{max(ns)}" if ns and min(ns) != max(ns) else (f", n={ns[0]}" if ns else "")
        ax.set_title(f"{name}{n_note}", fontsize=10)
        ax.set_xlabel("context length (tokens)")
        ax.set_ylabel("score (%)")
        ax.grid(True, alpha=0.3)
        direct_labels(ax, ends)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=11)
    return save(fig, out_dir, stem, formats)


AVERAGE = "RULER-style average (lengths with the model's most tasks)"


def length_panels(models: list[ModelResults]) -> dict[str, list[Series]]:
    """Average first, then tasks in name order; each model keeps its colour across panels."""
    panels: dict[str, list[Series]] = {AVERAGE: []}
    for i, m in enumerate(models):
        avg, used = m.ruler_average(), m.ruler_average_tasks()
        keep = full_lengths(avg, used)
        if keep and (not used or len(used.get(keep[0], ())) > 1):  # one task's "average" is its own panel
            panels[AVERAGE].append(Series(short_model(m.model), keep, [avg[c] for c in keep], [0] * len(keep), i))
    if not panels[AVERAGE]:
        del panels[AVERAGE]
    for task in sorted({c.task for m in models for c in m.cells}):
        for i, m in enumerate(models):
            cells = sorted((c for c in m.cells if c.task == task), key=lambda c: c.ctx)
            if cells:
                panels.setdefault(task, []).append(Series(short_model(m.model), [c.ctx for c in cells],
                                                          [c.score.mean for c in cells], [c.score.n for c in cells], i))
    return panels


def plot_length(models: list[ModelResults], out_dir: Path, formats: tuple[str, ...], threshold: float) -> list[Path]:
    title = f"Score vs context length ({len(models)} model{'s' if len(models) != 1 else ''}; bands: 95% Wilson; dashed: effective-length threshold)"
    return plot_panels(length_panels(models), threshold, out_dir, "length", formats, title)
