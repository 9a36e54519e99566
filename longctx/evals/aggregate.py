"""Aggregation of scored records: per task x ctx (mean, standard error, n), per depth /
distance / token bin, and the RULER-style average across tasks."""
from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from typing import Any, Iterable

from longctx.evals.ctx import parse_one
from longctx.evals.errors import EvalError

BREAKDOWNS = {"depth": "by_depth", "distance": "by_distance", "bin": "by_bin"}


def mean_stderr(values: list[float]) -> dict[str, float | int]:
    """Mean, standard error of the mean (sample std, ddof=1; 0 for one value) and n."""
    n = len(values)
    if n == 0:
        return {"mean": float("nan"), "stderr": float("nan"), "n": 0}
    m = sum(values) / n
    var = sum((v - m) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return {"mean": m, "stderr": math.sqrt(var / n), "n": n}


def sample_set_hash(hashes: Iterable[str]) -> str:
    """sha256 over the sorted sample hashes: two runs on the same samples have the same value."""
    return hashlib.sha256("\n".join(sorted(hashes)).encode()).hexdigest()


def metrics_for(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The score statistics of one task x ctx cell, with a breakdown per meta key that is present."""
    out: dict[str, Any] = mean_stderr([r["score"] for r in records])
    for key, name in BREAKDOWNS.items():
        groups: dict[str, list[float]] = defaultdict(list)
        for r in records:
            if r["meta"].get(key) is not None:
                groups[str(r["meta"][key])].append(r["score"])
        if groups:
            out[name] = {k: mean_stderr(v) for k, v in sorted(groups.items(), key=lambda kv: _num(kv[0]))}
    return out


def _num(key: str) -> tuple[float, str]:
    """Order breakdown keys numerically: '16' < '128', '4k-8k' < '8k-16k'."""
    try:
        return (float(key), key)
    except ValueError:
        try:
            return (float(parse_one(key.split("-")[0])), key)
        except EvalError:
            return (math.inf, key)


RULER_AVERAGE_METHOD = (
    "unweighted mean, over the RULER tasks scored at that context length, of each task's mean "
    "score (string_match_all, or string_match_part for qa_1/qa_2); tasks missing at a length are "
    "left out and listed under ruler_average_tasks"
)


def ruler_average(per_task: dict[str, dict[int, dict[str, Any]]], ruler_tasks: list[str]) -> tuple[dict[int, float], dict[int, list[str]]]:
    """Per ctx: the mean of the RULER tasks' means, and which tasks went into it."""
    avg: dict[int, float] = {}
    used: dict[int, list[str]] = {}
    ctxs = sorted({c for t in per_task.values() for c in t})
    for ctx in ctxs:
        names = [t for t in ruler_tasks if ctx in per_task.get(t, {})]
        if names:
            avg[ctx] = sum(per_task[t][ctx]["mean"] for t in names) / len(names)
            used[ctx] = names
    return avg, used


def full_lengths(average: dict[int, float], used: dict[int, list[str]]) -> list[int]:
    """The lengths of ``average`` (ctx -> RULER-style average) whose average covers the largest task set
    of ``used`` (ctx -> tasks averaged there); all of them when ``used`` says nothing. An average over six
    needle tasks beside one over all thirteen would draw a change of task set as a change with length."""
    if not used:
        return sorted(average)
    most = max((set(t) for t in used.values()), key=len)
    return sorted(c for c, t in used.items() if set(t) == most and c in average)
