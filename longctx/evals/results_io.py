"""Read the runner's results folders and the bench / probe JSON files into plain records.

Shared by ``evals plot`` and ``evals leaderboard``: both read the files on disk (the format
is in ``metrics.json`` / ``summary.json`` / ``manifest.json`` per model folder), never a run's
in-memory state. A folder that is missing or half-written (a ``samples.jsonl`` without its
``metrics.json``, a JSON file cut short, a required key absent) raises ``EvalError`` naming
the path.

    models = load_results(Path("results"))   # one ModelResults per model folder
    for cell in models[0].cells: ...         # one tidy Cell per task x ctx: score, n, hash, by_depth/by_distance
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from longctx.evals.aggregate import ruler_average
from longctx.evals.errors import EvalError
from longctx.evals.results_pack import is_pack, read_pack
from longctx.tasks.registry import GROUPS

_METRICS_KEYS = ("model", "task", "ctx", "n", "mean", "stderr")
_BENCH_ROW_KEYS = ("kernel", "n", "ms")
_PROBE_ROW_KEYS = ("kernel", "n", "distance", "accuracy", "trials")


@dataclass(frozen=True)
class Point:
    """One score with its uncertainty: a mean over ``n`` samples (0..1) and its standard error."""

    mean: float
    stderr: float
    n: int


@dataclass
class Cell:
    """The metrics of one model on one task at one context length (one ``metrics.json``)."""

    model: str
    task: str
    ctx: int
    score: Point
    path: Path
    task_version: str | None = None
    metric: str | None = None
    tokenizer: str | None = None
    seed: int | None = None
    sample_set_hash: str | None = None
    by_depth: dict[float, Point] = field(default_factory=dict)
    by_distance: dict[int, Point] = field(default_factory=dict)
    by_bin: dict[str, Point] = field(default_factory=dict)


@dataclass
class ModelResults:
    """Everything one model folder holds: its cells, the run manifest and the summary (if written)."""

    model: str
    path: Path
    cells: list[Cell]
    manifest: dict[str, Any] | None
    summary: dict[str, Any] | None
    runs: list[dict[str, Any]] = field(default_factory=list)  # runs.jsonl, oldest first (lines cut by a crash skipped)

    def ruler_average(self) -> dict[int, float]:
        """ctx -> RULER-style average (0..1): the runner's ``summary.json`` figure when present,
        else the runner's rule, the plain mean over the RULER tasks scored at that length."""
        if self.summary and isinstance(self.summary.get("ruler_average"), dict) and self.summary["ruler_average"]:
            return {int(k): float(v) for k, v in sorted(self.summary["ruler_average"].items(), key=lambda kv: int(kv[0]))}
        return self._ruler_average()[0]

    def ruler_average_tasks(self) -> dict[int, list[str]]:
        """ctx -> the tasks ``ruler_average`` averaged there (a curve whose task set changes with length
        says so here)."""
        if self.summary and isinstance(self.summary.get("ruler_average_tasks"), dict) and self.summary.get("ruler_average"):
            return {int(k): sorted(v) for k, v in sorted(self.summary["ruler_average_tasks"].items(), key=lambda kv: int(kv[0]))}
        return {ctx: sorted(tasks) for ctx, tasks in self._ruler_average()[1].items()}

    def _ruler_average(self) -> tuple[dict[int, float], dict[int, list[str]]]:
        """The runner's summary rule (``aggregate.ruler_average`` over the RULER group; MRCR and decay are
        not in it) applied to the metrics files."""
        per_task: dict[str, dict[int, dict[str, float]]] = {}
        for c in self.cells:
            per_task.setdefault(c.task, {})[c.ctx] = {"mean": c.score.mean}
        return ruler_average(per_task, GROUPS["ruler"])

    def average_method(self) -> str:
        if self.summary and self.summary.get("ruler_average") and self.summary.get("average_method"):
            return str(self.summary["average_method"])
        return "unweighted mean over the RULER tasks scored at each context length (computed from metrics.json)"


def read_json(path: Path, what: str) -> Any:
    """Parse one JSON file; a missing or truncated file is an ``EvalError`` naming it."""
    if not path.is_file():
        raise EvalError(f"{what} {path} does not exist")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise EvalError(f"{what} {path} is not valid JSON (half-written?): {e.msg} at line {e.lineno}") from e


def _point(d: Any, where: str) -> Point:
    if not isinstance(d, dict) or not all(k in d for k in ("mean", "n")):
        raise EvalError(f"{where}: expected an object with 'mean', 'stderr' and 'n', got {d!r:.80}")
    stderr = d.get("stderr")
    return Point(float(d["mean"]), float(stderr) if stderr is not None else math.nan, int(d["n"]))


def _read_cell(path: Path, m: Any) -> Cell:
    """One cell from the parsed ``metrics.json`` at ``path``."""
    if not isinstance(m, dict):
        raise EvalError(f"metrics file {path} holds {type(m).__name__}, not an object")
    missing = [k for k in _METRICS_KEYS if k not in m]
    if missing:
        raise EvalError(f"metrics file {path} lacks {', '.join(missing)} (half-written? rerun the same command to finish it)")
    if m.get("complete") is False:
        raise EvalError(f"metrics file {path} says the run is not complete ({m['n']} samples scored): rerun the same command to finish it")
    seed = m.get("seed")
    return Cell(
        model=str(m["model"]),
        task=str(m["task"]),
        ctx=int(m["ctx"]),
        score=_point(m, str(path)),
        path=path,
        task_version=None if m.get("task_version") is None else str(m["task_version"]),
        metric=m.get("metric"),
        tokenizer=m.get("tokenizer"),
        seed=int(seed) if isinstance(seed, (int, float)) else None,
        sample_set_hash=m.get("sample_set_hash"),
        by_depth={float(k): _point(v, f"{path} by_depth[{k}]") for k, v in (m.get("by_depth") or {}).items()},
        by_distance={int(float(k)): _point(v, f"{path} by_distance[{k}]") for k, v in (m.get("by_distance") or {}).items()},
        by_bin={str(k): _point(v, f"{path} by_bin[{k}]") for k, v in (m.get("by_bin") or {}).items()},
    )


def is_model_dir(path: Path) -> bool:
    """Whether ``path`` is one model's folder (manifest, summary or <task>/<ctx> cells), not a results root."""
    return (path / "manifest.json").is_file() or (path / "summary.json").is_file() or any(path.glob("*/*/metrics.json")) or any(path.glob("*/*/samples.jsonl"))


def load_model_dir(path: Path) -> ModelResults:
    """Read ``results/<model_slug>/``: every ``<task>/<ctx>/metrics.json`` plus manifest and summary."""
    names = {p.relative_to(path).as_posix() for p in path.glob("*/*/*") if p.is_file()}
    names |= {p.name for p in path.iterdir() if p.is_file()}
    return _model_results(path, names, lambda rel, what: read_json(path / rel, what),
                          lambda rel: (path / rel).read_text(encoding="utf-8"))


def _model_results(path: Path, names: set[str], read: Callable[[str, str], Any], text: Callable[[str], str]) -> ModelResults:
    """One model's results from the relative file names of its folder, ``read(name, what)`` -> parsed JSON and
    ``text(name)`` -> a file's text."""
    cells: list[Cell] = []
    for ctx_dir in sorted({n.rsplit("/", 1)[0] for n in names if n.count("/") == 2}):
        if f"{ctx_dir}/metrics.json" in names:
            cells.append(_read_cell(path / ctx_dir / "metrics.json", read(f"{ctx_dir}/metrics.json", "metrics file")))
        elif f"{ctx_dir}/samples.jsonl" in names:
            raise EvalError(f"results folder {path / ctx_dir} has samples.jsonl but no metrics.json: the run is half-written; rerun the same command to finish it")
    if not cells:
        raise EvalError(f"results folder {path} holds no <task>/<ctx>/metrics.json: is the run finished?")
    manifest = read("manifest.json", "manifest") if "manifest.json" in names else None
    summary = read("summary.json", "summary") if "summary.json" in names else None
    runs = _runs(text("runs.jsonl")) if "runs.jsonl" in names else []
    models = {c.model for c in cells}
    if len(models) > 1:
        raise EvalError(f"results folder {path} mixes models {sorted(models)}; one folder holds one model")
    model = next(iter(models))
    cells.sort(key=lambda c: (c.task, c.ctx))
    return ModelResults(model=model, path=path, cells=cells, manifest=manifest, summary=summary, runs=runs)


def _runs(text: str) -> list[dict[str, Any]]:
    """The run manifests of a ``runs.jsonl``; a line cut short by a crash is skipped, the others still count."""
    runs = []
    for line in text.splitlines():
        try:
            run = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(run, dict):
            runs.append(run)
    return runs


def _load_pack(path: Path) -> list[ModelResults]:
    """The models of a packed results file (``results_pack``), read as their folders would be."""
    files = read_pack(path)

    def reader(prefix: str) -> Callable[[str, str], Any]:
        def read(rel: str, what: str) -> Any:
            try:
                return json.loads(files[prefix + rel])
            except json.JSONDecodeError as e:
                raise EvalError(f"{what} {path}:{prefix + rel} is not valid JSON: {e.msg} at line {e.lineno}") from e
        return read

    if any(n == "manifest.json" or n == "summary.json" or n.count("/") == 2 for n in files):
        return [_model_results(path, set(files), reader(""), lambda rel: files[rel])]
    folders = sorted({n.split("/", 1)[0] for n in files if "/" in n and not n.startswith(".")})
    models = []
    for folder in folders:
        names = {n[len(folder) + 1:] for n in files if n.startswith(folder + "/")}
        if any(n in ("manifest.json", "summary.json") or n.endswith(("/metrics.json", "/samples.jsonl")) for n in names):
            models.append(_model_results(path / folder, names, reader(folder + "/"), lambda rel, f=folder: files[f"{f}/{rel}"]))
    if not models:
        raise EvalError(f"pack file {path} holds no model results (expected <model>/<task>/<ctx>/metrics.json)")
    return models


def load_results(path: Path | str) -> list[ModelResults]:
    """Read a results root (``results/``, one sub-folder per model), a single model folder, or either packed into
    one file by ``results_pack.pack``."""
    path = Path(path)
    if is_pack(path):
        return _load_pack(path)
    if not path.is_dir():
        raise EvalError(f"results folder {path} does not exist")
    if is_model_dir(path):
        return [load_model_dir(path)]
    subdirs = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    models = [load_model_dir(p) for p in subdirs if is_model_dir(p)]
    if not models:
        raise EvalError(f"results folder {path} holds no model results (expected <model>/<task>/<ctx>/metrics.json)")
    return models


def _rows(data: Any, path: Path, kind: str, keys: tuple[str, ...]) -> list[dict[str, Any]]:
    if not isinstance(data, dict) or data.get("kind") != kind or not isinstance(data.get("results"), list):
        raise EvalError(f"{path} is not an `evals {kind}` file (expected an object with kind={kind!r} and a results list)")
    for i, row in enumerate(data["results"]):
        missing = [k for k in keys if not isinstance(row, dict) or k not in row]
        if missing:
            raise EvalError(f"{path}: results[{i}] lacks {', '.join(missing)}")
    return data["results"]


def load_bench(path: Path | str) -> dict[str, Any]:
    """Read an ``evals bench --out`` file; checks its kind and that each row has kernel, n and ms."""
    path = Path(path)
    data = read_json(path, "bench file")
    _rows(data, path, "bench", _BENCH_ROW_KEYS)
    data.setdefault("exponents", {})
    return data


def load_probe(path: Path | str) -> dict[str, Any]:
    """Read an ``evals probe --out`` file; checks its kind and each row's kernel, n, distance, accuracy, trials."""
    path = Path(path)
    data = read_json(path, "probe file")
    _rows(data, path, "probe", _PROBE_ROW_KEYS)
    return data


def reference_rows(probe: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[int, float]]:
    """The probe rows at each n's reference strength (the weakest at which dense finds >= 0.99 of the needles)
    -> (rows, {n: strength}); a file without strengths or references (one strength, or dense absent) gives all its rows."""
    ref = {int(n): float(s) for n, s in (probe.get("reference") or {}).items() if s is not None}
    if not ref:
        return list(probe["results"]), {}
    return [r for r in probe["results"] if ref.get(int(r["n"])) == float(r.get("strength", -1))], ref


def architecture(spec: str) -> str:
    """The attention architecture a model spec names: ``zoo:ssa@ck`` -> ``ssa``, ``hf:P,attn=dsa`` -> ``dsa``,
    otherwise the spec itself (an external model is its own architecture)."""
    scheme, _, rest = spec.partition(":")
    parts = rest.split(",")
    for opt in parts[1:]:
        key, _, value = opt.partition("=")
        if key.strip() == "attn" and value.strip():
            return value.strip()
    if scheme == "zoo" and parts[0]:
        return parts[0].split("@")[0]
    return spec
