"""``evals plot KIND``: pictures from results folders and bench/probe JSON (never from a run's memory).

    evals plot all --results results/ --bench bench.json --probe probe.json --out plots/ --format png,svg

Kinds: decay (accuracy vs fact-question distance, from results and from --probe), heatmap (depth x length per model and task),
length (score vs context length with the effective-length threshold), cost (time and memory vs n
from ``evals bench``), trilemma (per-architecture card), all (every kind its inputs allow).
"""
from __future__ import annotations

from pathlib import Path

from longctx.evals.errors import EvalError
from longctx.evals.plots.common import FORMATS
from longctx.evals.results_io import ModelResults, load_bench, load_probe, load_results

KINDS = ("decay", "heatmap", "length", "cost", "trilemma", "all")


def parse_formats(text: str) -> tuple[str, ...]:
    fmts = tuple(f.strip().lower() for f in text.split(",") if f.strip())
    bad = [f for f in fmts if f not in FORMATS]
    if bad or not fmts:
        raise EvalError(f"unknown plot format {', '.join(bad) or repr(text)}: use png, svg or png,svg")
    return fmts


def make_plots(kind: str, results: Path | None, bench: Path | None, probe: Path | None, out: Path,
               formats: tuple[str, ...], threshold: float) -> list[Path]:
    """Draw ``kind`` into ``out``; returns the files written. ``all`` draws every kind whose input is given."""
    from longctx.evals.plots.cost import plot_cost
    from longctx.evals.plots.decay import plot_decay, plot_probe_decay
    from longctx.evals.plots.heatmap import plot_heatmap
    from longctx.evals.plots.length import plot_length
    from longctx.evals.plots.trilemma import card_columns, plot_trilemma

    if kind not in KINDS:
        raise EvalError(f"unknown plot kind {kind!r}: use one of {', '.join(KINDS)}")
    models: list[ModelResults] = load_results(results) if results is not None else []
    bench_data = load_bench(bench) if bench is not None else None
    probe_data = load_probe(probe) if probe is not None else None
    needs_results = {"decay", "heatmap", "length"}
    if kind in needs_results and not models:
        raise EvalError(f"`evals plot {kind}` needs --results DIR (a folder written by `evals run`)")
    if kind == "cost" and bench_data is None:
        raise EvalError("`evals plot cost` needs --bench FILE.json (written by `evals bench --out`)")
    if kind == "all":
        if not models and bench_data is None and probe_data is None:
            raise EvalError("`evals plot all` needs --results DIR and/or --bench FILE")
        paths: list[Path] = []
        if models:
            paths += plot_length(models, out, formats, threshold)
            if any(c.by_distance for m in models for c in m.cells):
                paths += plot_decay(models, out, formats)
            if any(c.by_depth for m in models for c in m.cells):
                paths += plot_heatmap(models, out, formats)
        if bench_data is not None:
            paths += plot_cost(bench_data, out, formats)
        if probe_data is not None:
            paths += plot_probe_decay(probe_data, out, formats)
        if any(col for _, col in card_columns(models, bench_data, probe_data)):
            paths += plot_trilemma(models, bench_data, probe_data, out, formats)
        return paths
    if kind == "decay":
        return plot_decay(models, out, formats) + (plot_probe_decay(probe_data, out, formats) if probe_data is not None else [])
    if kind == "heatmap":
        return plot_heatmap(models, out, formats)
    if kind == "length":
        return plot_length(models, out, formats, threshold)
    if kind == "cost":
        return plot_cost(bench_data, out, formats)
    return plot_trilemma(models, bench_data, probe_data, out, formats)
