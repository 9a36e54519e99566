"""Merge results folders written on several machines into one folder the leaderboard can read.

``plan_merge`` reads every source and the destination and decides what each cell, manifest and
``runs.jsonl`` line becomes, writing nothing; ``apply_merge`` carries the plan out. ``evals merge``
prints the plan through ``evals/merge_report.py``.

    plan = plan_merge([Path("gpu0"), Path("cpu")], Path("results"))
    apply_merge(plan)            # then: plan.conflicts (cells and manifests left as they were)

A cell (``<model>/<task>/<ctx>/``) is copied only when its ``metrics.json`` says ``"complete": true``,
with its ``samples.jsonl`` (the records ``evals run`` resumes from). A cell already in the destination
is left alone: the same sample-set hash is "same", anything else is a conflict.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from longctx.evals.errors import EvalError
from longctx.evals.results_io import is_model_dir, read_json
from longctx.evals.summary import build_summary

CELL_FILES = ("samples.jsonl", "metrics.json")  # everything the runner writes in a cell folder
_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_METRICS_KEYS = ("model", "task", "ctx", "n", "mean", "stderr")


@dataclass
class CellState:
    """What a destination cell holds, or will hold once the plan is applied."""

    model: str | None
    sample_set_hash: str | None
    complete: bool
    path: Path  # the file this state was read from (the destination's, or an earlier source's)
    n: Any = None
    seed: Any = None

    def sample_set(self) -> str:
        return f"sample set {str(self.sample_set_hash)[:12]}... (n={self.n}, seed {self.seed})"


@dataclass
class ModelPlan:
    """What merging does to one destination model folder."""

    name: str
    spec: str | None = None  # the model spec its cells name
    added: list[tuple[Path, Path]] = field(default_factory=list)  # source cell folder -> destination cell folder
    same: int = 0
    conflicts: list[str] = field(default_factory=list)
    incomplete: list[Path] = field(default_factory=list)
    manifests: list[tuple[Path, str]] = field(default_factory=list)  # source file -> destination file name
    runs_lines: list[str] = field(default_factory=list)


@dataclass
class MergePlan:
    into: Path
    models: dict[str, ModelPlan] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def conflicts(self) -> list[str]:
        return [c for m in self.models.values() for c in m.conflicts]


@dataclass
class _Dest:
    """The destination model folder as the plan sees it: what is on disk plus what the plan adds."""

    cells: dict[tuple[str, str], CellState]
    spec: str | None
    manifests: dict[str, tuple[Any, Path]]  # file name -> (parsed content, where it comes from)
    runs: set[str]


def default_tag(src: Path) -> str:
    """``/data/gpu0/results`` -> ``results-1a2b3c``: the folder's name and a hash of its absolute path,
    so the same source always gets the same tag and two ``results/`` folders get different ones."""
    full = src.resolve()
    name = re.sub(r"[^A-Za-z0-9._-]", "_", full.name).strip("._") or "src"
    return f"{name}-{hashlib.sha256(str(full).encode()).hexdigest()[:6]}"


def plan_merge(sources: list[Path], into: Path, tags: list[str] | None = None) -> MergePlan:
    """Decide, for every source model folder in order, what merging it into ``into`` does.

    Raises ``EvalError`` for bad input (a source that is missing or not a results folder, ``into`` a
    file, a metrics or manifest file that cannot be read); conflicts are collected, not raised."""
    into = Path(into)
    if into.exists() and not into.is_dir():
        raise EvalError(f"--into {into} is a file, not a folder")
    if into.is_dir() and is_model_dir(into):
        raise EvalError(f"--into {into} looks like one model's folder: pass the results root that holds model folders")
    if tags and len(tags) != len(sources):
        raise EvalError(f"{len(tags)} --tag value(s) for {len(sources)} source(s): give none (derived from each "
                        "source's path) or one per source, in order")
    tags = tags or [default_tag(s) for s in sources]
    for tag in tags:
        if not _TAG.fullmatch(tag):
            raise EvalError(f"--tag {tag!r}: use letters, digits, '.', '_' and '-' (it becomes manifest-TAG.json)")
    plan, dests = MergePlan(into), {}
    for src, tag in zip(sources, tags):
        for model_dir in _model_dirs(Path(src), into):
            name = model_dir.name
            if (into / name).resolve() == model_dir.resolve():
                raise EvalError(f"source {model_dir} is already inside --into {into}")
            if name not in dests:
                dests[name] = _load_dest(into / name)
            mp = plan.models.setdefault(name, ModelPlan(name, spec=dests[name].spec))
            partial = len(mp.incomplete)
            _plan_cells(model_dir, into / name, dests[name], mp)
            if dests[name].cells:  # a model folder without cells would break `evals leaderboard build`
                _plan_manifests(model_dir, into / name, tag, dests[name], mp)
                _plan_runs(model_dir, dests[name], mp, plan.warnings)
            elif len(mp.incomplete) > partial:
                plan.warnings.append(f"{model_dir}: no complete cell, nothing merged (its manifest and runs.jsonl neither)")
    for name, dest in dests.items():
        if dest.cells and "manifest.json" not in dest.manifests:
            plan.warnings.append(f"{into / name} has no manifest.json after the merge (no source had one): "
                                 "`evals leaderboard build` needs one; copy one of its manifest-TAG.json files there")
    return plan


def apply_merge(plan: MergePlan) -> None:
    """Write what ``plan`` decided: cells (staged, then renamed into place), manifests, runs lines, summaries."""
    staging = plan.into / f".merge-{os.getpid()}"  # hidden: results readers skip dot folders
    try:
        plan.into.mkdir(parents=True, exist_ok=True)
        for mp in plan.models.values():
            for i, (src, dst) in enumerate(mp.added):
                stage = staging / mp.name / str(i)
                stage.mkdir(parents=True)
                for f in CELL_FILES:
                    shutil.copy2(src / f, stage / f)
                dst.parent.mkdir(parents=True, exist_ok=True)
                if dst.is_dir():
                    dst.rmdir()  # an empty folder the plan saw as no cell
                os.rename(stage, dst)  # a cell appears whole or not at all
    except OSError as e:
        raise EvalError(f"cannot write into {plan.into}: {e}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for mp in plan.models.values():
        folder = plan.into / mp.name
        for src, name in mp.manifests:
            _copy_atomic(src, folder / name)
        if mp.runs_lines:
            _append_lines(folder / "runs.jsonl", mp.runs_lines)
        if mp.added:
            build_summary(folder, mp.spec or mp.name)


def _model_dirs(src: Path, into: Path) -> list[Path]:
    if not src.exists():
        raise EvalError(f"source {src} does not exist")
    if not src.is_dir():
        raise EvalError(f"source {src} is a file, not a results folder")
    if src.resolve() == into.resolve():
        raise EvalError(f"source {src} is the --into folder itself")
    if is_model_dir(src):
        return [src]
    dirs = [p for p in sorted(src.iterdir()) if p.is_dir() and not p.name.startswith(".") and is_model_dir(p)]
    if not dirs:
        raise EvalError(f"source {src} is not a results folder (expected <model>/<task>/<ctx>/metrics.json, as `evals run --out` writes)")
    return dirs


def _cell_dirs(model_dir: Path) -> list[Path]:
    return sorted(p for p in model_dir.glob("*/*") if p.is_dir() and not p.parent.name.startswith(".") and not p.name.startswith("."))


def _read_metrics(path: Path) -> dict[str, Any]:
    m = read_json(path, "metrics file")
    missing = [k for k in _METRICS_KEYS if k not in m] if isinstance(m, dict) else list(_METRICS_KEYS)
    if missing:
        raise EvalError(f"metrics file {path} lacks {', '.join(missing)} (damaged?)")
    return m


def _state(m: dict[str, Any], path: Path) -> CellState:
    return CellState(str(m["model"]), m.get("sample_set_hash"), m.get("complete") is True, path, m.get("n"), m.get("seed"))


def _load_dest(folder: Path) -> _Dest:
    cells: dict[tuple[str, str], CellState] = {}
    specs: set[str] = set()
    for d in _cell_dirs(folder) if folder.is_dir() else []:
        metrics, samples = d / "metrics.json", d / "samples.jsonl"
        if metrics.is_file():
            m = _read_metrics(metrics)
            cells[(d.parent.name, d.name)] = _state(m, metrics)
            specs.add(str(m["model"]))
        elif samples.is_file():
            cells[(d.parent.name, d.name)] = CellState(None, None, False, samples)
    manifests = {p.name: (read_json(p, "manifest"), p) for p in sorted(folder.glob("manifest*.json"))} if folder.is_dir() else {}
    runs = folder / "runs.jsonl"
    lines = {s for s in (ln.strip() for ln in runs.read_text(encoding="utf-8").splitlines()) if s} if runs.is_file() else set()
    return _Dest(cells, min(specs) if len(specs) == 1 else None, manifests, lines)


def _plan_cells(model_dir: Path, dest_dir: Path, dest: _Dest, mp: ModelPlan) -> None:
    for d in _cell_dirs(model_dir):
        metrics, samples = d / "metrics.json", d / "samples.jsonl"
        if not metrics.is_file():
            if samples.is_file():
                mp.incomplete.append(d)  # records without metrics: a run still going, or killed
            continue
        m = _read_metrics(metrics)
        if m.get("complete") is not True:
            mp.incomplete.append(d)
            continue
        if not m.get("sample_set_hash"):
            raise EvalError(f"metrics file {metrics} has no sample_set_hash: merge cannot tell which samples it scored")
        if not samples.is_file():
            raise EvalError(f"{d} has metrics.json but no samples.jsonl (damaged?): a merged cell needs its records "
                            "for `evals run` to resume from")
        key, new = (d.parent.name, d.name), _state(m, metrics)
        have, target = dest.cells.get(key), dest_dir / d.parent.name / d.name
        if have is None and dest.spec not in (None, new.model):
            mp.conflicts.append(f"{metrics} is a result of {new.model} but {dest_dir} holds {dest.spec}: not merged "
                                "(one folder holds one model)")
        elif have is None:
            dest.cells[key], dest.spec, mp.spec = new, dest.spec or new.model, mp.spec or new.model
            mp.added.append((d, target))
        elif (why := _differs(have, new)) is None:
            mp.same += 1
        else:
            mp.conflicts.append(f"{target} kept as it is: {why}")


def _differs(have: CellState, new: CellState) -> str | None:
    """Why ``new`` cannot join the destination's ``have``, or None when they measure the same thing."""
    if not have.complete:
        return (f"{have.path} is there but not complete; finish it with `evals run` or delete the cell, then merge "
                f"{new.path} again")
    if have.model != new.model:
        return f"{new.path} is a result of {new.model}, {have.path} of {have.model}"
    if have.sample_set_hash != new.sample_set_hash:
        return (f"{new.path} has {new.sample_set()}, {have.path} has {have.sample_set()} "
                "(a different sample set is a different measurement)")
    return None


def _plan_manifests(model_dir: Path, dest_dir: Path, tag: str, dest: _Dest, mp: ModelPlan) -> None:
    """The source's manifest.json as manifest-TAG.json (and as manifest.json if the destination has none);
    its own tagged manifests (a source that is itself a merge) under their names."""
    wanted: list[tuple[Path, str]] = []
    main = model_dir / "manifest.json"
    if main.is_file():
        wanted.append((main, f"manifest-{tag}.json"))
    wanted += [(p, p.name) for p in sorted(model_dir.glob("manifest-*.json"))]
    if main.is_file() and "manifest.json" not in dest.manifests:
        wanted.append((main, "manifest.json"))
    for src, name in wanted:
        content = read_json(src, "manifest")
        if name not in dest.manifests:
            dest.manifests[name] = (content, src)
            mp.manifests.append((src, name))
        elif dest.manifests[name][0] != content:
            mp.conflicts.append(f"{dest_dir / name} not written: {src} differs from {dest.manifests[name][1]}; "
                                "merge this source with another --tag")


def _plan_runs(model_dir: Path, dest: _Dest, mp: ModelPlan, warnings: list[str]) -> None:
    runs = model_dir / "runs.jsonl"
    if not runs.is_file():
        return
    for i, line in enumerate(runs.read_text(encoding="utf-8").splitlines(), 1):
        s = line.strip()
        if not s or s in dest.runs:
            continue
        try:
            json.loads(s)
        except ValueError:
            warnings.append(f"{runs}:{i} is not JSON (a torn line?): not copied")
            continue
        dest.runs.add(s)
        mp.runs_lines.append(s)


def _copy_atomic(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}")
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except OSError as e:
        raise EvalError(f"cannot write {dst}: {e.strerror}") from None


def _append_lines(path: Path, lines: list[str]) -> None:
    try:
        lead = "\n" if path.is_file() and path.stat().st_size and not path.read_bytes().endswith(b"\n") else ""
        with path.open("a", encoding="utf-8") as f:
            f.write(lead + "".join(s + "\n" for s in lines))
    except OSError as e:
        raise EvalError(f"cannot append to {path}: {e.strerror}") from None
