"""Generated sample sets cached on disk, keyed by everything that defines them.

``generate_samples`` is the one entry point the runner and ``evals generate`` use. The cache lives
in ``$EVALS_CACHE`` (default ``~/.cache/longctx-evals/tasks``); a set is written to a temporary
file and renamed, so a crash never leaves a half set that a later run would trust.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import typing
from pathlib import Path

from longctx.tasks.errors import TaskError
from longctx.tasks.registry import get_task
from longctx.tasks.sample import Sample
from longctx.tasks.task import Split, Task
from longctx.tasks.tokenizers import Tokenizer


def cache_dir() -> Path:
    return Path(os.environ.get("EVALS_CACHE", Path.home() / ".cache" / "longctx-evals" / "tasks"))


def with_options(task: Task, options: dict[str, str] | None) -> Task:
    """``task`` with config fields set from ``options`` (``{"haystack": "my.txt", "depth": "50"}``);
    fields the task does not have are left to the tasks that do (``check_options`` says if none has)."""
    config = getattr(task, "config", None)
    mine = {k: _typed(task.name, config, k, v) for k, v in (options or {}).items() if hasattr(config, k)}
    if mine and not hasattr(task, "replace"):
        raise TaskError(f"{task.name} takes no --set options (asked for {', '.join(mine)}); its variants are separate tasks")
    return task.replace(**mine) if mine else task


def _typed(task: str, config: object, key: str, text: str) -> object:
    """``text`` as the field's declared type: a number for a numeric field, the text itself for a string
    field, comma-separated numbers for a tuple of numbers (``depths=0,50,100``); TaskError when it is not."""
    try:
        hint = typing.get_type_hints(type(config)).get(key) if dataclasses.is_dataclass(config) else None
    except (NameError, TypeError):  # an annotation that names a type only a type checker sees
        hint = None
    if hint is None:
        return _value(text)
    if typing.get_origin(hint) is tuple:
        kinds = {k for k in typing.get_args(hint) if k is not Ellipsis}
        return tuple(_number(task, key, part.strip(), kinds) for part in text.split(",") if part.strip()) or \
            _number(task, key, "", kinds)
    kinds = (set(typing.get_args(hint)) or {hint}) - {type(None)}
    if str in kinds:
        return text
    if kinds <= {int, float}:
        return _number(task, key, text, kinds)
    return _value(text)


def _number(task: str, key: str, text: str, kinds: set) -> int | float:
    value = _value(text)
    if isinstance(value, str):
        raise TaskError(f"option {key}={text!r} of {task} must be a number" + (" or comma-separated numbers" if "," in text else ""))
    if kinds == {int} and isinstance(value, float):
        raise TaskError(f"option {key}={text!r} of {task} must be a whole number")
    return value


def check_options(tasks: list[Task], options: dict[str, str] | None) -> None:
    """A clear error for an option that none of ``tasks`` takes."""
    for key in options or {}:
        if not any(hasattr(getattr(t, "config", None), key) for t in tasks):
            raise TaskError(f"no task among {', '.join(t.name for t in tasks)} has an option {key!r}")


def _value(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _path_digest(value: object) -> str | None:
    """A digest of the names, sizes and modification times of the files a config value names (so an
    edited file makes a new set without reading gigabytes of data on every lookup)."""
    if not isinstance(value, str) or not value or not Path(value).expanduser().exists():
        return None
    p, h = Path(value).expanduser(), hashlib.sha256()
    for f in sorted(x for x in ([p] if p.is_file() else p.rglob("*")) if x.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(p) if f != p else f.name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def set_key(task: Task, ctx: int, n: int, seed: int, tokenizer: Tokenizer, split: Split, overhead: int,
            turn_overhead: int | None = None) -> str:
    """Everything that defines a sample set; a file or folder in the config enters by its content."""
    config = getattr(task, "config", None)
    ident = dict(task=task.name, version=task.version, config=repr(config), ctx=ctx, n=n,
                 seed=seed, tokenizer=tokenizer.name, split=split, overhead=overhead)
    if dataclasses.is_dataclass(config):
        ident["files"] = {f.name: d for f in dataclasses.fields(config) if (d := _path_digest(getattr(config, f.name)))}
    if getattr(task, "multi_turn", False):
        ident["turn_overhead"] = turn_overhead
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:20]


def generate_samples(task: str, ctx: int, n: int, seed: int, tokenizer: Tokenizer, split: Split = "eval",
                     overhead: int = 0, turn_overhead: int | None = None, options: dict[str, str] | None = None,
                     use_cache: bool = True) -> list[Sample]:
    """The ``n`` samples of ``task`` at ``ctx``; from the cache when the same set was made before.

    ``overhead``: tokens the model's format adds around a one-message prompt; ``turn_overhead``:
    what each further message costs, for multi-turn tasks (MRCR), which alone take it. ``options``:
    config fields to change, for the tasks that have them (``haystack``, ``depth``, ``source``, ``path``)."""
    t = with_options(get_task(task), options)
    path = cache_dir() / f"{task}-{ctx}-{set_key(t, ctx, n, seed, tokenizer, split, overhead, turn_overhead)}.jsonl"
    if use_cache and path.is_file():
        with path.open(encoding="utf-8") as f:
            return [Sample.from_dict(json.loads(line)) for line in f]
    extra = {"turn_overhead": turn_overhead} if getattr(t, "multi_turn", False) else {}
    samples = list(t.generate(ctx, n, seed, tokenizer, split=split, overhead=overhead, **extra))
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        with tmp.open("w", encoding="utf-8") as f:
            for s in samples:
                f.write(json.dumps(s.to_dict(), ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    return samples
