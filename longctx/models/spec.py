"""Model specs: ``zoo:ARCH[@CKPT]``, ``hf:PATH[,key=value...]``, ``vllm:PATH[,key=value...]``,
``openai:MODEL@URL[,key=value...]``, ``lm-eval:NAME[,ARGS]``. ``load_model`` builds the backend."""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from longctx.models.errors import ModelError

SCHEMES = ("zoo", "hf", "vllm", "openai", "lm-eval")


@dataclass(frozen=True)
class ModelSpec:
    scheme: str
    target: str                              # path, model name or architecture
    options: dict[str, str] = field(default_factory=dict)
    raw: str = ""


def parse_spec(spec: str) -> ModelSpec:
    """Split a spec into scheme, target and ``key=value`` options (values may hold ':' and '=' after the first,
    and commas inside a JSON value's braces, brackets or strings: ``extra={"seed":0,"min_p":0}``)."""
    scheme, sep, rest = spec.partition(":")
    if not sep or scheme not in SCHEMES:
        close = difflib.get_close_matches(scheme, SCHEMES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ModelError(f"model spec {spec!r} has an unknown scheme {scheme!r}{hint}; use one of {', '.join(SCHEMES)}")
    parts = _split_top_level(rest)
    target, options = parts[0], {}
    if not target:
        raise ModelError(f"model spec {spec!r} names no model after '{scheme}:'")
    for part in parts[1:]:
        key, eq, value = part.partition("=")
        if not eq or not key:
            raise ModelError(f"model spec {spec!r}: option {part!r} is not key=value")
        options[key.strip()] = value.strip()
    return ModelSpec(scheme, target, options, spec)


def _split_top_level(text: str) -> list[str]:
    """``text`` cut at the commas that are not inside ``{}``, ``[]`` or a double-quoted string."""
    parts, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(text):
        if quoted:
            quoted = not (ch == '"' and text[i - 1] != "\\")
        elif ch == '"':
            quoted = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth = max(depth - 1, 0)
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return parts + [text[start:]]
