"""Results on disk: append-only ``samples.jsonl`` per task x ctx, atomic JSON files.

A record is appended as one line and flushed before the next sample starts, so a run killed at
any moment (SIGKILL included) loses at most the line being written. On reading, a torn last
line (no newline, or not JSON) is dropped and cut off the file; a bad line anywhere else means
the file was damaged by something other than a crash, and is refused with the line number.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from longctx.evals.errors import EvalError


MAX_SLUG = 200  # file systems refuse names over 255 bytes; plots add a prefix and a task name


def model_slug(spec: str) -> str:
    """A folder name for a model spec: ``hf:/m/llama,attn=ssa`` -> ``hf_m_llama_attn_ssa``; a spec too long
    for a file name (an ``extra=`` JSON, deep paths) keeps its start and gets a digest of the whole."""
    name = re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9.-]", "_", spec)).strip("_.") or "model"
    if len(name) > MAX_SLUG:
        name = name[: MAX_SLUG - 20].rstrip("_.-") + "-" + hashlib.sha256(spec.encode("utf-8")).hexdigest()[:12]
    return name


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every complete record in ``path`` (none if it does not exist); cuts off a torn tail."""
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")  # the last item is what follows the last newline: empty unless torn
    records: list[dict[str, Any]] = []
    good = 0  # bytes of the file up to the end of the last complete record
    for i, line in enumerate(lines[:-1], 1):
        try:
            records.append(json.loads(line))
        except ValueError:
            if i < len(lines) - 1:
                raise EvalError(f"{path}:{i} is not a JSON record (the file is damaged); "
                                "fix or delete it, or rerun with --overwrite") from None
            break  # the newline of a torn last write
        good += len(line) + 1
    if good < len(data):
        with path.open("r+b") as f:
            f.truncate(good)
    return records


class RecordWriter:
    """Appends records to one ``samples.jsonl``; each write reaches the OS before the call returns."""

    def __init__(self, path: Path):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._f = path.open("a", encoding="utf-8")
        except OSError as e:
            raise EvalError(f"cannot write results to {path.parent}: {e.strerror}") from None

    def write(self, record: dict[str, Any]) -> None:
        self._f.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to a temporary file beside ``path`` and rename it over ``path``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:
        raise EvalError(f"cannot write {path}: {e.strerror}") from None

