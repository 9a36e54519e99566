"""``evals leaderboard build | merge | publish``: a citable, rebuildable leaderboard from results folders.

    evals leaderboard build --results results/ --name main --bench bench.json   # -> leaderboards/main.json
    evals leaderboard build --results leaderboards/zoo.samples.jsonl.gz --name zoo   # from a packed results file
    evals leaderboard merge leaderboards/main.json other.json --name main        # refuses mismatched sample sets
    evals leaderboard publish leaderboards/main.json --plots plots/              # -> leaderboards/index.html

A board (``longctx/evals/board/schema.json``, package data; JSON Schema 2020-12, versioned) carries per model what makes
its numbers reproducible (spec, source, tokenizer, attention, command, versions, seeds, hardware),
per task and context length the score, stderr, n and sample-set hash, and the summaries: RULER-style
average, effective length at a threshold and the AUC over log2 context length.
"""
from __future__ import annotations

import json
from importlib import resources
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from longctx.evals.aggregate import full_lengths
from longctx.evals.errors import EvalError
from longctx.evals.plots.common import DEFAULT_THRESHOLD
from longctx.evals.results_io import ModelResults, architecture, load_bench, load_results, read_json

SCHEMA_VERSION = "1.0"
SCHEMA_PATH = resources.files("longctx.evals") / "board" / "schema.json"
METHODS = {
    "effective_length": "longest context length whose RULER-style average is at or above the threshold (percent), as RULER reports it, over the lengths scored on the model's largest task set",
    "auc": "trapezoid rule over log2(context length) of the RULER-style average, divided by log2(longest/shortest) so it lies in [0, 1]",
}


def summarise(average: dict[int, float], threshold: float) -> dict[str, Any]:
    """Effective length, mean and AUC of a ctx -> score (0..1) curve; ``threshold`` in percent. A model
    with no RULER task (decay or MRCR only) has no curve: all three are None."""
    ctxs = sorted(average)
    if not ctxs:
        return {"mean_score": None, "effective_length": None, "auc": None}
    ok = [c for c in ctxs if 100 * average[c] >= threshold - 1e-9]
    out: dict[str, Any] = {"mean_score": sum(average.values()) / len(ctxs), "effective_length": max(ok) if ok else None}
    if len(ctxs) == 1:
        out["auc"] = average[ctxs[0]]
        return out
    xs = [math.log2(c) for c in ctxs]
    area = sum((xs[i + 1] - xs[i]) * (average[ctxs[i]] + average[ctxs[i + 1]]) / 2 for i in range(len(ctxs) - 1))
    out["auc"] = area / (xs[-1] - xs[0])
    out["auc_span"] = [ctxs[0], ctxs[-1]]
    return out


def full_set_summary(average: dict[int, float], used: dict[int, list[str]], threshold: float) -> dict[str, Any]:
    """``summarise`` over ``full_lengths`` (the lengths whose average covers the model's largest task
    set), and which lengths those were: a six-task average at 4K and a thirteen-task one at 8K are not
    points of one curve."""
    lengths = full_lengths(average, used)
    return {**summarise({c: average[c] for c in lengths}, threshold), "summary_lengths": lengths}


def _finite(x: float) -> float | None:
    return None if x is None or math.isnan(x) else x


def _source(spec: str, manifest: dict[str, Any]) -> dict[str, Any]:
    scheme, _, rest = spec.partition(":")
    model_info = manifest.get("model") if isinstance(manifest.get("model"), dict) else {}
    return {"scheme": scheme if rest else "", "target": rest.split(",")[0] if rest else spec,
            "revision": manifest.get("revision") or model_info.get("revision"),
            "weight_hash": manifest.get("weight_hash") or model_info.get("weight_hash")}


def _bench_entry(bench: dict[str, Any] | None, arch: str) -> dict[str, Any] | None:
    if not bench:
        return None
    rows = [r for r in bench["results"] if r["kernel"] == arch]
    if not rows:
        return None
    fit = bench["exponents"].get(arch, {})
    keys = ("peak_mem_gb", "ratio_vs_sdpa_flash", "ratio_vs_cudnn")
    return {"kernel": arch, "exponent": fit.get("exponent"), "fit_range": fit.get("fit_range"),
            "device": bench.get("device"), "dtype": bench.get("dtype"),
            "points": [{"n": int(r["n"]), "ms": float(r["ms"]), **{k: r.get(k) for k in keys}} for r in sorted(rows, key=lambda r: r["n"])]}


def run_history(runs: list[dict[str, Any]], last: dict[str, Any]) -> list[dict[str, Any]]:
    """Every run that wrote into a model's folder (its ``runs.jsonl``, oldest first; the manifest alone when there
    is none): command, samples per cell, tasks, context lengths, date and generation settings. A board whose
    cells came from several runs shows each one, not only the last."""
    keys = ("command", "samples", "tasks", "ctxs", "generation")
    return [{**{k: r.get(k) for k in keys}, "date": r.get("ended") or r.get("started")} for r in (runs or [last])]


def _version_order(v: str) -> tuple:
    """Task versions in number order ("2" before "10"); any that is not a number after those, as text."""
    return (0, int(v), "") if v.isdigit() else (1, 0, v)


def entry_from_results(m: ModelResults, threshold: float, bench: dict[str, Any] | None) -> dict[str, Any]:
    """One board entry from one model's results folder (manifest.json required)."""
    if m.manifest is None:
        raise EvalError(f"results folder {m.path} has no manifest.json: a leaderboard needs the run's command, versions and hardware")
    man = m.manifest
    tasks: dict[str, Any] = {}
    versions: dict[str, set[str]] = {}
    for c in m.cells:
        if not c.sample_set_hash:
            raise EvalError(f"metrics file {c.path} has no sample_set_hash: the board cannot tell which samples were scored")
        t = tasks.setdefault(c.task, {"version": None, "metric": c.metric, "scores": {}})
        versions.setdefault(c.task, set()).add(c.task_version)
        t["scores"][str(c.ctx)] = {"score": c.score.mean, "stderr": _finite(c.score.stderr), "n": c.score.n,
                                   "sample_set_hash": c.sample_set_hash, "seed": c.seed}
    for task, vs in versions.items():  # cells from two generator versions say both, in number order: "2,10"
        tasks[task]["version"] = ",".join(sorted((v for v in vs if v), key=_version_order)) or None
    average, used = m.ruler_average(), m.ruler_average_tasks()
    arch = architecture(m.model)
    seeds = sorted({c.seed for c in m.cells if c.seed is not None} | ({man["seed"]} if isinstance(man.get("seed"), int) else set()))
    tokenizer = man.get("tokenizer") or next((c.tokenizer for c in m.cells if c.tokenizer), None)
    return {
        "model": m.model, "architecture": arch, "source": _source(m.model, man), "tokenizer": tokenizer,
        "attention": man.get("attention") or (arch if arch != m.model else None),
        "run": {"command": man.get("command"), "suite_version": man.get("suite_version"), "git_hash": man.get("git_hash"),
                "date": man.get("ended") or man.get("started"), "hardware": man.get("hardware"), "seeds": seeds,
                "samples": man.get("samples") if isinstance(man.get("samples"), int) else None,
                "generation": man.get("generation"), "packages": man.get("packages"), "runs": run_history(m.runs, man)},
        "tasks": tasks,
        "summary": {"ruler_average": {str(k): v for k, v in average.items()}, "average_method": m.average_method(),
                    "ruler_average_tasks": {str(k): v for k, v in used.items()},
                    **full_set_summary(average, used, threshold)},
        "bench": _bench_entry(bench, arch),
        "training": man.get("training"),
        "mqar": man.get("mqar"),
    }


def empty_board(name: str, threshold: float) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        suite = version("longctx-evals")
    except PackageNotFoundError:
        suite = None
    return {"schema_version": SCHEMA_VERSION, "name": name, "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "suite_version": suite, "threshold": threshold,
            "methods": {"ruler_average": "per entry: summary.average_method", **METHODS}, "sample_sets": {}, "entries": [], "bench": None}


def add_entry(board: dict[str, Any], entry: dict[str, Any]) -> None:
    """Append ``entry``; refuse it when a cell's sample-set hash differs from the board's for the same
    task, ctx and tokenizer, or when the same model is already on the board with other results."""
    for other in board["entries"]:
        if other["model"] == entry["model"]:
            if other["tasks"] == entry["tasks"]:
                return
            raise EvalError(f"model {entry['model']!r} is already on board {board['name']!r} with different results; "
                            "build from one results folder per model, or remove one of the two entries")
    tok = entry["tokenizer"] or "unknown"
    for task, t in entry["tasks"].items():
        for ctx, cell in t["scores"].items():
            have = board["sample_sets"].get(task, {}).get(ctx, {}).get(tok)
            if have is not None and have != cell["sample_set_hash"]:
                raise EvalError(
                    f"refusing {entry['model']!r} on {task} at ctx {ctx}: its sample-set hash {cell['sample_set_hash'][:12]}... "
                    f"differs from the board's {have[:12]}... (tokenizer {tok}); scores on different samples are not comparable: "
                    "rerun with the board's --seed and --samples")
    for task, t in entry["tasks"].items():
        for ctx, cell in t["scores"].items():
            board["sample_sets"].setdefault(task, {}).setdefault(ctx, {})[tok] = cell["sample_set_hash"]
    board["entries"].append(entry)


def validate(board: Any, where: str) -> None:
    """Check ``board`` against the board schema (``SCHEMA_PATH``); the error names the failing field."""
    import jsonschema

    schema = json.loads(SCHEMA_PATH.read_text())
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(board))
    if error is not None:
        field = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise EvalError(f"{where} fails the leaderboard schema at field {field}: {error.message}")


def build_board(results: list[Path], name: str, threshold: float = DEFAULT_THRESHOLD, bench: Path | None = None) -> dict[str, Any]:
    bench_data = load_bench(bench) if bench is not None else None
    board = empty_board(name, threshold)
    if bench_data is not None:
        board["bench"] = {"device": bench_data.get("device"), "dtype": bench_data.get("dtype"), "shape": bench_data.get("shape"),
                          "exponents": bench_data["exponents"]}
    for path in results:
        for m in load_results(path):
            add_entry(board, entry_from_results(m, threshold, bench_data))
    validate(board, f"board {name!r}")
    return board


def load_board(path: Path) -> dict[str, Any]:
    board = read_json(path, "leaderboard")
    validate(board, str(path))
    return board


def merge_boards(boards: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """Entries of every board in order; the first board's threshold applies and summaries are recomputed."""
    majors = {b["schema_version"].split(".")[0] for b in boards}
    if len(majors) > 1:
        raise EvalError(f"cannot merge boards of schema versions {sorted(b['schema_version'] for b in boards)}")
    threshold = boards[0]["threshold"]
    merged = empty_board(name, threshold)
    merged["bench"] = next((b["bench"] for b in boards if b.get("bench")), None)
    for b in boards:
        for e in b["entries"]:
            e = json.loads(json.dumps(e))
            avg = {int(k): v for k, v in e["summary"]["ruler_average"].items()}
            kept = {k: e["summary"][k] for k in ("ruler_average", "average_method", "ruler_average_tasks") if k in e["summary"]}
            used = {int(k): v for k, v in kept.get("ruler_average_tasks", {}).items()}
            e["summary"] = {**kept, **full_set_summary(avg, used, threshold)}
            add_entry(merged, e)
    validate(merged, f"merged board {name!r}")
    return merged


def write_board(board: dict[str, Any], out_dir: Path) -> Path:
    path = out_dir / f"{board['name']}.json"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(board, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    except OSError as e:
        raise EvalError(f"cannot write the board to {path}: {e.strerror or e}") from None
    return path


def build_leaderboard(results: list[Path], name: str = "main", out: Path = Path("leaderboards"), bench: Path | None = None,
                      threshold: float = DEFAULT_THRESHOLD) -> Path:
    """Build board ``name`` from results folders or files packed by ``evals results pack``, validate it against the schema and write ``out/<name>.json``."""
    return write_board(build_board(results, name, threshold, bench), out)


def merge_leaderboards(boards: list[Path], name: str = "merged", out: Path = Path("leaderboards")) -> Path:
    """Merge board files of one schema into ``out/<name>.json``; refuses a row whose sample-set hash differs."""
    return write_board(merge_boards([load_board(p) for p in boards], name), out)


def publish_board(board: Path, out: Path | None = None, page: str = "index.html",
                  plots: Path | None = None) -> tuple[Path, Path]:
    """Write the board JSON and its static page into ``out`` (default: the board's folder), showing the
    pictures in ``plots`` (copied to ``out/plots`` when outside ``out``); returns (JSON path, page path)."""
    from longctx.evals.leaderboard_page import bundle_plots, render_page

    data = load_board(board)
    out_dir = out or board.parent
    json_path = write_board(data, out_dir)
    page_path = out_dir / page
    if plots is not None and plots.is_dir():
        plots = bundle_plots(plots, out_dir)
    try:
        page_path.write_text(render_page(data, page_path.parent, plots), encoding="utf-8")
    except OSError as e:
        raise EvalError(f"cannot write the page {page_path}: {e.strerror or e}") from None
    return json_path, page_path
