"""Cost against sequence length from ``evals bench``: time and peak memory vs n on log-log axes,
one line per kernel with its fitted exponent in the legend; PyTorch SDPA flash and cuDNN drawn
in black and grey as references."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from longctx.evals.ctx import fmt_ctx
from longctx.evals.errors import EvalError
from longctx.evals.plots.common import color, ctx_axis, new_figure, save

REFERENCES = {"sdpa_flash": ("black", "--"), "sdpa_cudnn": ("0.5", ":")}


def fit_exponent(ns: list[int], ys: list[float]) -> float | None:
    """Least-squares slope of log y on log n (y ~ n^k); None with fewer than two distinct n."""
    pts = [(math.log(n), math.log(y)) for n, y in zip(ns, ys) if n > 0 and y and y > 0]
    if len({p[0] for p in pts}) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)


def _by_kernel(bench: dict[str, Any], key: str) -> dict[str, tuple[list[int], list[float]]]:
    out: dict[str, dict[int, float]] = {}
    for row in bench["results"]:
        if row.get(key) is not None:
            out.setdefault(row["kernel"], {})[int(row["n"])] = float(row[key])
    return {k: (sorted(v), [v[n] for n in sorted(v)]) for k, v in out.items()}


def _exp_label(kernel: str, k: float | None, fit_range: list[int] | None = None) -> str:
    if k is None:
        return kernel
    span = f", fit {fmt_ctx(fit_range[0])}-{fmt_ctx(fit_range[1])}" if fit_range else ""
    return f"{kernel}: n^{k:.2f}{span}"


def plot_cost(bench: dict[str, Any], out_dir: Path, formats: tuple[str, ...]) -> list[Path]:
    time = _by_kernel(bench, "ms")
    if not time:
        raise EvalError("the bench file has no timed rows: run `evals bench --out FILE.json` first")
    mem = _by_kernel(bench, "peak_mem_gb")
    fig, axes = new_figure(1, 2 if mem else 1, width=6.2, height=4.6)
    kernels = sorted(time, key=lambda k: (k in REFERENCES, k))
    panels = [(axes[0], time, "time per call (ms)", "time")]
    if mem:
        panels.append((axes[1], mem, "peak memory (GB)", "memory"))
    for ax, data, ylabel, what in panels:
        for i, kernel in enumerate(k for k in kernels if k in data):
            ns, ys = data[kernel]
            if what == "time" and kernel in bench["exponents"]:
                e = bench["exponents"][kernel]
                label = _exp_label(kernel, e.get("exponent"), e.get("fit_range"))
            else:
                label = _exp_label(kernel, fit_exponent(ns, ys))
            col, ls = REFERENCES.get(kernel, (color(i), "-"))
            ax.plot(ns, ys, ls, marker="o", ms=3, lw=2 if kernel not in REFERENCES else 1.5, color=col, label=label)
        ctx_axis(ax, sorted({n for ns, _ in data.values() for n in ns}))
        ax.set_yscale("log")
        ax.set_xlabel("sequence length n (tokens, log scale)")
        ax.set_ylabel(f"{ylabel}, log scale")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8, title="kernel: fitted exponent", title_fontsize=8)
        ax.set_title(f"{what} vs n", fontsize=10)
    shape = bench.get("shape") or {}
    shape_txt = ", ".join(f"{k}={v}" for k, v in shape.items())
    fig.suptitle(f"Attention cost vs sequence length on {bench.get('device', '?')} ({bench.get('dtype', '?')}; {shape_txt}); "
                 f"n^2 is quadratic, n^1 linear", fontsize=10)
    fig.tight_layout()
    return save(fig, out_dir, "cost", formats)
