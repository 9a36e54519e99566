"""The look every plot shares: Agg backend, Wilson confidence bands, labels written at the end of
each line (no legend hunt), context-length tick names, and saving one figure as PNG and/or SVG."""
from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
matplotlib.rcParams["svg.fonttype"] = "none"  # SVG text stays text: searchable, and smaller
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from longctx.evals.ctx import fmt_ctx  # noqa: E402
from longctx.evals.errors import EvalError  # noqa: E402

FORMATS = ("png", "svg")
DEFAULT_THRESHOLD = 85.6  # RULER's effective-length threshold: Llama-2-7B's score at 4K, in percent
_TAB20 = plt.get_cmap("tab20").colors
COLORS = _TAB20[0::2] + _TAB20[1::2]  # tab10's ten, then their light shades: 20 series before a colour repeats


def wilson(mean: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a mean of ``n`` scores in [0, 1].

    Exact for 0/1 scores; for graded scores it is conservative, since a [0, 1] variable with
    mean p has variance at most p(1-p). Returns (nan, nan) when n is 0."""
    if n <= 0 or math.isnan(mean):
        return math.nan, math.nan
    p = min(max(mean, 0.0), 1.0)
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def color(i: int) -> tuple[float, float, float]:
    return COLORS[i % len(COLORS)]


def short_model(spec: str, width: int = 36) -> str:
    """A model spec short enough for a line label: the last path part, cut to ``width``."""
    scheme, _, rest = spec.partition(":")
    target = rest.split(",")[0]
    if scheme == "openai":  # MODEL@URL: the served model's name says more than the URL's last part ("v1")
        target = target.split("@http")[0]
    body = target.rstrip("/").split("/")[-1] if rest else spec
    name = f"{scheme}:{body}" if rest and scheme in ("zoo", "hf", "vllm", "openai", "lm-eval") else spec
    extra = [o for o in rest.split(",")[1:] if o.startswith("attn=")]
    name = name + (f" ({extra[0]})" if extra else "")
    return name if len(name) <= width else name[: width - 1] + "…"


def ctx_axis(ax: Axes, ctxs: list[int]) -> None:
    """Log2 x axis ticked at the measured context lengths, named as users write them (4k, 128k, 1m)."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(ctxs)
    ax.set_xticklabels([fmt_ctx(c) for c in ctxs])
    ax.minorticks_off()


def direct_labels(ax: Axes, ends: list[tuple[float, float, str, tuple]], min_gap: float = 0.045) -> None:
    """Write each line's name just right of its last point, nudging labels apart vertically.

    ends: (x, y, text, colour) in data coordinates; the gap is a fraction of the axes height."""
    if not ends:
        return
    to_axes = ax.transAxes.inverted()
    placed = sorted([to_axes.transform(ax.transData.transform((x, y)))[1], x, text, col] for x, y, text, col in ends)
    for prev, cur in zip(placed, placed[1:]):
        cur[0] = max(cur[0], prev[0] + min_gap)
    overflow = max(placed[-1][0] - 0.98, 0.0)
    for ax_y, x, text, col in placed:
        ax.annotate(text, xy=(x, ax_y - overflow), xycoords=("data", "axes fraction"), xytext=(6, 0),
                    textcoords="offset points", color=col, fontsize=8, va="center", annotation_clip=False)


def new_figure(rows: int = 1, cols: int = 1, width: float = 7.5, height: float = 4.5) -> tuple[Figure, list[Axes]]:
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    return fig, [a for row in axes for a in row]


def save(fig: Figure, out_dir: Path, stem: str, formats: tuple[str, ...]) -> list[Path]:
    """Write ``out_dir/stem.{png,svg}``; returns the paths written and closes the figure."""
    paths = []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for fmt in formats:
            path = out_dir / f"{stem}.{fmt}"
            fig.savefig(path, dpi=130, bbox_inches="tight")
            paths.append(path)
    except OSError as e:
        raise EvalError(f"cannot write plots into {out_dir}: {e.strerror or e}") from None
    finally:
        plt.close(fig)
    return paths


def slug(text: str, limit: int = 120) -> str:
    """File-name-safe form of a model or task name; a long one keeps its start and gets a digest of the
    whole, so ``heatmap_<model>_<task>.png`` stays under the file systems' 255 bytes."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", text)
    if len(name) > limit:
        name = name[: limit - 13] + "-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
    return name
