"""The needle-in-a-haystack picture: context length on x, needle depth on y, score as colour,
each cell written in; one figure per model and task. Built from ``by_depth`` in ``metrics.json``."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from longctx.evals.ctx import fmt_ctx
from longctx.evals.errors import EvalError
from longctx.evals.plots.common import new_figure, save, short_model, slug
from longctx.evals.plots.decay import n_range
from longctx.evals.results_io import ModelResults


def plot_heatmap(models: list[ModelResults], out_dir: Path, formats: tuple[str, ...]) -> list[Path]:
    paths: list[Path] = []
    for m in models:
        for task in sorted({c.task for c in m.cells if c.by_depth}):
            cells = sorted((c for c in m.cells if c.task == task and c.by_depth), key=lambda c: c.ctx)
            depths = sorted({d for c in cells for d in c.by_depth})
            grid = np.full((len(depths), len(cells)), math.nan)
            ns = []
            for x, cell in enumerate(cells):
                for y, d in enumerate(depths):
                    if d in cell.by_depth:
                        grid[y, x] = 100 * cell.by_depth[d].mean
                        ns.append(cell.by_depth[d].n)
            fig, (ax,) = new_figure(width=1.1 * len(cells) + 3.5, height=0.42 * len(depths) + 2.2)
            im = ax.imshow(grid, cmap="RdYlGn", vmin=0, vmax=100, aspect="auto", origin="upper")
            for (y, x), v in np.ndenumerate(grid):
                if not math.isnan(v):
                    ink = "white" if v < 25 or v > 85 else "black"  # the colour map's dark ends
                    ax.text(x, y, f"{v:.0f}", ha="center", va="center", fontsize=8, color=ink)
            ax.set_xticks(range(len(cells)), [fmt_ctx(c.ctx) for c in cells])
            ax.set_yticks(range(len(depths)), [f"{d:g}%" for d in depths])
            ax.set_xlabel("context length (tokens)")
            ax.set_ylabel("needle depth (0% = start of context)")
            ax.set_title(f"{short_model(m.model, 40)}: {task}\nscore (%) by depth and length, {n_range(ns)} samples per cell", fontsize=10)
            fig.colorbar(im, ax=ax, label="score (%)", fraction=0.05)
            paths += save(fig, out_dir, f"heatmap_{slug(m.model)}_{slug(task)}", formats)
    if not paths:
        raise EvalError("no results carry a needle depth (by_depth in metrics.json): run a needle task first, e.g. `evals run --tasks niah_single_1 ...`")
    return paths
