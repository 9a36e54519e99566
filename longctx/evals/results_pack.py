"""One compact file for a results folder: every file of ``results/`` as rows of a gzipped JSON-lines file.

A published board keeps its per-sample records in one file beside the board JSON instead of thousands of small
files. One row per line of each ``.jsonl`` file (``samples.jsonl``, ``runs.jsonl``: ``record`` is the line number)
and one row per other file (``metrics.json``, ``manifest.json``, ``summary.json``: ``record`` is null); ``text``
holds the bytes of that line or file, so unpacking gives the folder back byte for byte, and ``evals leaderboard
build --results FILE`` reads the file as it would the folder (``results_io.load_results``). The gzip header carries
no time or name: the same folder always packs to the same bytes.

    pack(Path("results"), Path("leaderboards/main.samples.jsonl.gz"))
    files = read_pack(Path("leaderboards/main.samples.jsonl.gz"))   # relative path -> text
    datasets.load_dataset("json", data_files="leaderboards/main.samples.jsonl.gz")   # model_dir, task, ctx, path, record, text
"""
from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from longctx.evals.errors import EvalError

SUFFIX = ".jsonl.gz"


def is_pack(path: Path) -> bool:
    """Whether ``path`` names a packed results file (by its suffix; the folder form is the other one)."""
    return path.name.endswith(SUFFIX) and not path.is_dir()


def _rows(root: Path) -> Iterator[dict[str, Any]]:
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = f.relative_to(root).as_posix()
        try:
            with f.open(encoding="utf-8", newline="") as fh:  # newline="": line ends kept as they are
                text = fh.read()
        except UnicodeDecodeError as e:
            raise EvalError(f"{f} is not UTF-8 text: a results folder holds JSON and JSON-lines files only") from e
        parts = rel.split("/")
        # <model_dir>/<task>/<ctx>/<file> in a results root, <task>/<ctx>/<file> in one model's folder
        cell = parts[-3:-1] if len(parts) in (3, 4) else [None, None]
        meta = {"model_dir": parts[0] if len(parts) in (2, 4) else None, "task": cell[0], "ctx": cell[1], "path": rel}
        if f.suffix == ".jsonl":
            pieces = text.split("\n")  # on "\n" only: a record may hold other line separators inside a string
            lines = [p + "\n" for p in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])
            for i, line in enumerate(lines):
                yield {**meta, "record": i, "text": line}
        if f.suffix != ".jsonl" or not text:
            yield {**meta, "record": None, "text": text}


def pack(root: Path, out: Path) -> int:
    """Write every file under ``root`` into ``out`` (``*.jsonl.gz``) -> the number of rows written."""
    if not root.is_dir():
        raise EvalError(f"results folder {root} does not exist")
    if not out.name.endswith(SUFFIX):
        raise EvalError(f"pack file {out} must end in {SUFFIX}")
    out.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(out, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz:
        with io.TextIOWrapper(gz, encoding="utf-8", newline="\n") as text:
            for row in _rows(root):
                text.write(json.dumps(row, ensure_ascii=False) + "\n")
                n += 1
    if n == 0:
        out.unlink()
        raise EvalError(f"results folder {root} holds no files")
    return n


def read_pack(path: Path) -> dict[str, str]:
    """The files of a pack: relative path -> text (lines of a ``.jsonl`` file joined in record order)."""
    if not path.is_file():
        raise EvalError(f"pack file {path} does not exist")
    parts: dict[str, list[tuple[int, str]]] = {}
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                parts.setdefault(row["path"], []).append((row["record"] or 0, row["text"]))
    except (OSError, EOFError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise EvalError(f"pack file {path} is not a packed results file (`evals results pack`): {e}") from e
    return {rel: "".join(t for _, t in sorted(rows, key=lambda r: r[0])) for rel, rows in parts.items()}


def unpack(path: Path, out: Path) -> int:
    """Write the files of pack ``path`` under ``out`` (which must not hold any of them yet) -> files written."""
    files = read_pack(path)
    clash = [rel for rel in files if (out / rel).exists()]
    if clash:
        raise EvalError(f"{out / clash[0]} already exists: unpack into a new folder")
    for rel, text in files.items():
        if rel.startswith("/") or ".." in rel.split("/"):
            raise EvalError(f"pack file {path} names a path outside its folder: {rel}")
        dest = out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        with dest.open("w", encoding="utf-8", newline="") as fh:
            fh.write(text)
    return len(files)
