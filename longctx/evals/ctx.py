"""Context lengths as users write them: ``4k`` (4096), ``1m`` (1048576), ``131072``, lists
``4k,8k,128k`` and power-of-two ranges ``4k-128k`` (4k, 8k, ..., 128k)."""
from __future__ import annotations

import re

from longctx.evals.errors import EvalError

_UNITS = {"": 1, "k": 1024, "m": 1024**2}
_ONE = re.compile(r"^\s*(\d+)\s*([km]?)\s*$", re.IGNORECASE)


def parse_one(text: str) -> int:
    m = _ONE.match(text)
    if not m:
        raise EvalError(f"bad context length {text!r}: write a positive number with an optional k or m, e.g. 4k, 128k, 1m")
    value = int(m.group(1)) * _UNITS[m.group(2).lower()]
    if value <= 0:
        raise EvalError(f"bad context length {text!r}: it must be positive")
    return value


def parse_ctx(text: str) -> list[int]:
    """``'4k-32k,1m'`` -> ``[4096, 8192, 16384, 32768, 1048576]`` (sorted, each once)."""
    out: set[int] = set()
    for part in text.split(","):
        if re.match(r"^\s*\d+\s*[kKmM]?\s*(-|\.\.)\s*\d+\s*[kKmM]?\s*$", part):
            lo, hi = (parse_one(x) for x in re.split(r"-|\.\.", part))
            if lo > hi:
                raise EvalError(f"bad context range {part!r}: the start is above the end")
            v = lo
            while v <= hi:
                out.add(v)
                v *= 2
        else:
            out.add(parse_one(part))
    return sorted(out)


def fmt_ctx(n: int) -> str:
    """4096 -> '4k', 1048576 -> '1m', 5000 -> '5000' (the name used in result folders)."""
    for unit, size in (("m", 1024**2), ("k", 1024)):
        if n % size == 0:
            return f"{n // size}{unit}"
    return str(n)
