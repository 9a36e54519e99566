"""The trilemma card: per attention architecture, the three measured properties side by side:
compute exponent (from ``evals bench``), content-routed retrieval (``evals probe`` recall at the reference
strength of each n, the weakest needle strength at which dense attention finds >= 0.99 of the needles; or the
multi-fact tasks of the results when no probe file is given) and recall of far facts (a quarter of the context
or more before the question; ``by_distance`` in the results). Architectures are matched by name: a bench/probe kernel name (or
the zoo architecture whose inference path it is, ``KERNEL_ARCH``) and the architecture of a model
spec (``zoo:ARCH``, ``hf:PATH,attn=ARCH``)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle

from longctx.evals.ctx import fmt_ctx
from longctx.evals.errors import EvalError
from longctx.evals.plots.common import new_figure, save
from longctx.evals.plots.cost import fit_exponent
from longctx.evals.results_io import ModelResults, architecture, reference_rows

SUBQUADRATIC_BELOW = 1.8  # a fitted time exponent under this counts as sub-quadratic on the card


@dataclass
class Measure:
    value: float | None   # exponent, or a fraction 0..1
    text: str             # what the card prints
    note: str             # where it came from (trials, n, distance)


# bench/probe kernels named otherwise than the zoo architecture whose inference path they are
KERNEL_ARCH = {"flash_dense": "dense", "flash_window": "swa", "gated_delta": "linear", "ssd": "mamba2",
               "selective_scan": "mamba1", "s4d": "s4", "longconv_fft": "hyena"}


def compute_exponents(bench: dict[str, Any] | None) -> dict[str, Measure]:
    if not bench:
        return {}
    out = {}
    by_kernel: dict[str, list[tuple[int, float]]] = {}
    for row in bench["results"]:
        by_kernel.setdefault(row["kernel"], []).append((int(row["n"]), float(row["ms"])))
    for kernel, rows in by_kernel.items():
        e = bench["exponents"].get(kernel, {})
        k = e.get("exponent")
        if k is None:
            k = fit_exponent([r[0] for r in rows], [r[1] for r in rows])
        if k is not None:
            span = e.get("fit_range") or [min(r[0] for r in rows), max(r[0] for r in rows)]
            out[KERNEL_ARCH.get(kernel, kernel)] = Measure(k, f"n^{k:.2f}",
                                                           f"time fit over n={fmt_ctx(span[0])}-{fmt_ctx(span[1])}")
    return out


def retrieval(probe: dict[str, Any] | None, models: list[ModelResults]) -> dict[str, Measure]:
    """Trials-weighted probe recall per kernel at each n's reference strength; without a probe, the mean over
    multi-fact tasks."""
    out: dict[str, Measure] = {}
    if probe:
        rows, ref = reference_rows(probe)
        where = ", ".join(f"s={s:g} at {fmt_ctx(n)}" for n, s in sorted(ref.items()))
        acc: dict[str, list[float]] = {}
        for row in rows:
            a = acc.setdefault(row["kernel"], [0.0, 0.0])
            a[0] += float(row["accuracy"]) * int(row["trials"])
            a[1] += int(row["trials"])
        for kernel, (hits, trials) in acc.items():
            if trials:
                out[KERNEL_ARCH.get(kernel, kernel)] = Measure(hits / trials, f"{100 * hits / trials:.0f}%",
                                                               f"probe, {int(trials)} needles" + (f", {where}" if where else ""))
        return out
    for m in models:
        cells = [c for c in m.cells if "multi" in c.task]
        n = sum(c.score.n for c in cells)
        if n:
            v = sum(c.score.mean * c.score.n for c in cells) / n
            out[architecture(m.model)] = Measure(v, f"{100 * v:.0f}%", f"multi-fact tasks, n={n}")
    return out


FAR_SHARE = 4  # "far": a fact at least a quarter of its context length before the question


def far_recall(models: list[ModelResults]) -> dict[str, Measure]:
    """Per architecture: the n-weighted accuracy over the far distances (at least ``1/FAR_SHARE`` of the
    cell's context length). Few samples of ``decay_distance`` cover only the near end of its grid
    (16, 32, 64, ... tokens): then the card says how far the samples reached instead of a score."""
    out: dict[str, Measure] = {}
    for m in models:
        pts = [(d, c.ctx, p) for c in m.cells for d, p in c.by_distance.items()]
        if not pts:
            continue
        far = [(d, p) for d, ctx, p in pts if d * FAR_SHARE >= ctx]
        if not far:
            d, ctx, _ = max(pts, key=lambda x: x[0] / x[1])
            out[architecture(m.model)] = Measure(None, "no far facts", f"farthest {d:,} tokens of {fmt_ctx(ctx)}; "
                                                 "run more samples")
            continue
        n = sum(p.n for _, p in far)
        v = sum(p.mean * p.n for _, p in far) / n if n else float("nan")
        lo, hi = min(d for d, _ in far), max(d for d, _ in far)
        span = f"{lo:,}" if lo == hi else f"{lo:,}-{hi:,}"
        out[architecture(m.model)] = Measure(v, f"{100 * v:.0f}%", f"at {span} tokens (≥ ctx/{FAR_SHARE}), n={n}")
    return out


def _colour(col: int, value: float | None) -> tuple:
    if value is None:
        return (0.9, 0.9, 0.9, 1.0)
    cmap = plt.get_cmap("RdYlGn")
    if col == 0:
        return cmap(min(max((2.0 - value) / (2.0 - 1.0), 0.0), 1.0) * 0.8 + 0.1)
    return cmap(min(max(value, 0.0), 1.0) * 0.8 + 0.1)


def card_columns(models: list[ModelResults], bench: dict[str, Any] | None,
                 probe: dict[str, Any] | None) -> list[tuple[str, dict[str, Measure]]]:
    """The card's three columns: (heading, architecture -> measure); a column may be empty."""
    return [("compute exponent\n(time ~ n^k; lower is cheaper)", compute_exponents(bench)),
            ("content-routed retrieval\n(recall where dense finds 99%)", retrieval(probe, models)),
            ("recall of far facts\n(accuracy, distance ≥ ctx/4)", far_recall(models))]


def plot_trilemma(models: list[ModelResults], bench: dict[str, Any] | None, probe: dict[str, Any] | None,
                  out_dir: Path, formats: tuple[str, ...]) -> list[Path]:
    columns = card_columns(models, bench, probe)
    archs = sorted({a for _, col in columns for a in col})
    if not archs:
        raise EvalError("nothing to put on a trilemma card: give --bench, --probe or results with distances")
    fig, (ax,) = new_figure(width=10, height=0.75 * len(archs) + 1.6)
    for y, arch in enumerate(archs):
        ax.text(-0.05, y + 0.5, arch, ha="right", va="center", fontsize=10, fontweight="bold")
        for x, (_, col) in enumerate(columns):
            m = col.get(arch)
            ax.add_patch(Rectangle((x + 0.03, y + 0.06), 0.94, 0.88, color=_colour(x, m.value if m else None)))
            main = m.text if m else "not measured"
            if m and m.value is not None and x == 0:
                main += "  sub-quadratic" if m.value < SUBQUADRATIC_BELOW else "  quadratic"
            ax.text(x + 0.5, y + 0.42, main, ha="center", va="center", fontsize=10)
            ax.text(x + 0.5, y + 0.75, m.note if m else "", ha="center", va="center", fontsize=7, color="0.25")
    ax.set_xlim(0, 3)
    ax.set_ylim(len(archs), 0)
    ax.set_xticks([0.5, 1.5, 2.5], [c[0] for c in columns], fontsize=9)
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title(f"Trilemma card: {len(archs)} architecture{'s' if len(archs) != 1 else ''}, three measured properties "
                 f"(sub-quadratic: k < {SUBQUADRATIC_BELOW})", fontsize=11, pad=34)
    return save(fig, out_dir, "trilemma", formats)
