"""The Sample: one generated prompt with its expected answers, metadata and content hash.

A sample is plain data (JSON-able). ``input`` is the user message for single-turn tasks;
``messages`` holds the chat turns for multi-turn tasks (MRCR). ``answer_prefix`` is kept apart
from the prompt so the runner can send it as an assistant prefill or leave it out.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class Sample:
    id: str
    task: str
    ctx: int
    tokenizer: str
    answers: list[str]
    metric: str
    max_new_tokens: int
    prompt_tokens: int
    input: str | None = None
    messages: list[dict[str, str]] | None = None
    answer_prefix: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    hash: str = ""

    def chat(self) -> list[dict[str, str]]:
        """The conversation to send: ``messages`` or a single user turn holding ``input``."""
        return list(self.messages) if self.messages is not None else [{"role": "user", "content": self.input or ""}]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Sample":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def content_hash(d: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of every field but ``hash`` (same bytes on any machine)."""
    body = {k: v for k, v in d.items() if k != "hash"}
    blob = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def make_sample(**kw: Any) -> Sample:
    """Build a Sample and fill in its content hash."""
    s = Sample(**kw)
    return Sample(**{**s.to_dict(), "hash": content_hash(s.to_dict())})
