"""`evals plot`: every kind draws PNG and SVG from results/bench/probe files on disk, the pictures say
what they show (titles with n, direct labels, fitted exponents, the threshold), and bad input is an
EvalError (exit 2 from the CLI)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from longctx.evals.errors import EvalError
from longctx.evals.plot import make_plots
from longctx.evals.plots.common import wilson
from longctx.evals.plots.cost import fit_exponent
from longctx.evals.plots.length import AVERAGE, length_panels
from longctx.evals.results_io import load_results
from synthetic_results import write_bench, write_model, write_probe

CTXS = (4096, 8192, 16384)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("plots")
    results = root / "results"
    write_model(results, "zoo:ssa@tiny", {"niah_single_1": dict(zip(CTXS, (0.95, 0.8, 0.5))), "niah_multikey_1": dict(zip(CTXS, (0.9, 0.7, 0.4))),
                                          "decay": dict(zip(CTXS, (0.9, 0.8, 0.6)))}, depths=(0, 50, 100), distances=(256, 2048, 8192))
    write_model(results, "hf:/m/Llama-3.1-8B,attn=dense", {"niah_single_1": dict(zip(CTXS, (1.0, 0.95, 0.9))), "decay": dict(zip(CTXS, (1.0, 0.9, 0.9)))},
                depths=(0, 50, 100), distances=(256, 2048, 8192))
    return {"results": results, "bench": write_bench(root / "bench.json", {"ssa": 1.2, "dense": 2.0, "sdpa_flash": 2.0, "sdpa_cudnn": 1.97}),
            "probe": write_probe(root / "probe.json", {"ssa": 0.9, "dense": 1.0}), "root": root}


def _png_ok(path: Path) -> bool:
    data = path.read_bytes()
    return data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_all_kinds_write_png_and_svg(files):
    out = files["root"] / "all"
    paths = make_plots("all", files["results"], files["bench"], files["probe"], out, ("png", "svg"), 85.6)
    stems = {p.stem for p in paths}
    assert {"length", "cost", "trilemma", "decay_decay", "decay_probe"} <= stems
    assert any(s.startswith("heatmap_zoo_ssa_tiny_niah_single_1") for s in stems)
    assert all(p.exists() for p in paths)
    assert all(_png_ok(p) for p in paths if p.suffix == ".png")
    assert all(p.read_text().lstrip().startswith("<?xml") for p in paths if p.suffix == ".svg")


def test_length_plot_labels_lines_and_draws_the_threshold(files):
    (svg,) = make_plots("length", files["results"], None, None, files["root"] / "len", ("svg",), 80.0)
    text = svg.read_text()
    assert "zoo:ssa@tiny" in text and "hf:Llama-3.1-8B (attn=dense)" in text  # direct labels, no legend hunt
    assert "threshold 80" in text
    assert "niah_single_1, n=20" in text  # panel titles say the sample count
    assert "RULER-style average" in text


def test_average_line_keeps_only_the_lengths_with_the_models_full_task_set(tmp_path):
    """Two tasks at 4K and 8K, one beyond: the average line stops at 8K instead of jumping to the one
    task's score at 16K (the zoo's board mixes six-task and thirteen-task lengths)."""
    write_model(tmp_path, "zoo:x", {"niah_single_1": {4096: 1.0, 8192: 1.0, 16384: 1.0}, "vt": {4096: 0.0, 8192: 0.0}})
    (avg,) = length_panels(load_results(tmp_path))[AVERAGE]
    assert avg.ctxs == [4096, 8192] and avg.scores == [0.5, 0.5]


def test_decay_plot_has_a_panel_per_model_and_a_line_per_ctx(files):
    (svg,) = make_plots("decay", files["results"], None, None, files["root"] / "decay", ("svg",), 85.6)
    text = svg.read_text()
    for label in ("zoo:ssa@tiny", "hf:Llama-3.1-8B (attn=dense)", "context 8k", "context 16k"):
        assert label in text
    assert "n=20 samples per point" in text and "95% Wilson" in text


def test_decay_bins_pool_distances_by_octave():
    from longctx.evals.plots.decay import log2_bins
    from longctx.evals.results_io import Point
    pts = log2_bins({61: Point(1.0, 0.0, 2), 68: Point(0.0, 0.0, 2), 130000: Point(0.5, 0.1, 4)})
    assert pts == [(64, 0.5, 4), (131072, 0.5, 4)]


def test_cost_plot_puts_the_fitted_exponent_in_the_legend(files):
    (svg,) = make_plots("cost", None, files["bench"], None, files["root"] / "cost", ("svg",), 85.6)
    text = svg.read_text()
    assert "ssa: n^1.20, fit 1k-8k" in text and "sdpa_flash: n^2.00" in text and "sdpa_cudnn: n^1.97" in text


def test_trilemma_card_shows_three_measures_per_architecture(files):
    (svg,) = make_plots("trilemma", files["results"], files["bench"], files["probe"], files["root"] / "tri", ("svg",), 85.6)
    text = svg.read_text()
    assert "n^1.20" in text and "sub-quadratic" in text  # ssa compute exponent
    assert "90%" in text  # ssa probe accuracy
    assert "at 2,048-8,192 tokens" in text  # recall of the facts a quarter of the context or more away
    assert "not measured" in text  # sdpa kernels have no retrieval figures


def test_trilemma_card_puts_a_kernel_on_its_zoo_architecture_row(files, tmp_path):
    bench = write_bench(tmp_path / "bench.json", {"selective_scan": 1.01, "flash_dense": 2.0})
    probe = write_probe(tmp_path / "probe.json", {"flash_dense": 1.0})
    (svg,) = make_plots("trilemma", files["results"], bench, probe, tmp_path / "tri", ("svg",), 85.6)
    text = svg.read_text()
    assert ">mamba1<" in text and ">dense<" in text and "selective_scan" not in text and "flash_dense" not in text


def test_trilemma_retrieval_is_recall_at_each_lengths_reference_strength():
    from longctx.evals.plots.trilemma import retrieval

    def row(kernel, n, s, acc):
        return {"kernel": kernel, "n": n, "strength": s, "distance": 100, "accuracy": acc, "recall_cos": 1.0, "trials": 64}

    probe = {"kind": "probe", "reference": {"4096": 1.5, "8192": 2.0, "16384": None},
             "results": [row("flash_dense", 4096, 1.5, 1.0), row("ssa", 4096, 1.0, 0.1), row("ssa", 4096, 1.5, 0.5),
                         row("ssa", 8192, 1.5, 0.0), row("ssa", 8192, 2.0, 0.75), row("ssa", 16384, 2.0, 0.0)]}
    got = retrieval(probe, [])
    assert got["ssa"].value == pytest.approx(0.625) and "s=1.5 at 4k, s=2 at 8k" in got["ssa"].note
    assert got["dense"].value == 1.0


def test_wilson_interval_and_exponent_fit():
    lo, hi = wilson(0.5, 100)
    assert lo == pytest.approx(0.4038, abs=1e-3) and hi == pytest.approx(0.5962, abs=1e-3)
    lo, hi = wilson(1.0, 20)
    assert hi == 1.0 and lo == pytest.approx(0.8389, abs=1e-3)  # a perfect score on 20 samples is not certain
    ns = [1024, 2048, 4096, 8192]
    assert fit_exponent(ns, [3e-4 * n**1.5 for n in ns]) == pytest.approx(1.5)
    assert fit_exponent([1024], [1.0]) is None


def test_unknown_kind_and_missing_inputs_are_eval_errors(files, tmp_path):
    with pytest.raises(EvalError, match="unknown plot kind 'pie'"):
        make_plots("pie", files["results"], None, None, tmp_path, ("png",), 85.6)
    with pytest.raises(EvalError, match="does not exist"):
        make_plots("length", tmp_path / "nope", None, None, tmp_path, ("png",), 85.6)
    with pytest.raises(EvalError, match="needs --bench"):
        make_plots("cost", files["results"], None, None, tmp_path, ("png",), 85.6)
    only_needles = tmp_path / "needles"
    write_model(only_needles, "zoo:dense", {"niah_single_1": {4096: 1.0}})
    with pytest.raises(EvalError, match="by_distance"):
        make_plots("decay", only_needles, None, None, tmp_path, ("png",), 85.6)
    assert [p.name for p in make_plots("all", only_needles, None, None, tmp_path, ("png",), 85.6)] == ["length.png"]  # all draws what it can


def test_half_written_results_name_the_path(tmp_path):
    folder = write_model(tmp_path / "r", "zoo:dense", {"niah_single_1": {4096: 1.0, 8192: 0.9}})
    (folder / "niah_single_1" / "8k" / "metrics.json").unlink()
    with pytest.raises(EvalError, match=r"8k has samples.jsonl but no metrics.json"):
        make_plots("length", tmp_path / "r", None, None, tmp_path, ("png",), 85.6)
    metrics = folder / "niah_single_1" / "4k" / "metrics.json"
    metrics.write_text(json.dumps({**json.loads(metrics.read_text()), "complete": False}))
    with pytest.raises(EvalError, match="not complete"):
        make_plots("length", folder, None, None, tmp_path, ("png",), 85.6)
    metrics.write_text(metrics.read_text()[:40])
    with pytest.raises(EvalError, match=str(metrics)):
        make_plots("length", folder, None, None, tmp_path, ("png",), 85.6)


def test_bad_bench_file_says_what_is_missing(tmp_path):
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"kind": "bench", "results": [{"kernel": "ssa", "n": 1024}]}))
    with pytest.raises(EvalError, match=r"results\[0\] lacks ms"):
        make_plots("cost", None, bench, None, tmp_path, ("png",), 85.6)


@pytest.mark.slow
def test_cli_exit_codes(files, tmp_path):
    bad = subprocess.run([sys.executable, "-m", "longctx.evals", "plot", "pie", "--results", str(files["results"])], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown plot kind" in bad.stderr and "Traceback" not in bad.stderr
    ok = subprocess.run([sys.executable, "-m", "longctx.evals", "plot", "cost", "--bench", str(files["bench"]), "--out", str(tmp_path), "--format", "png"],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert _png_ok(tmp_path / "cost.png")
