"""The Model protocol every backend implements, and the Request it is asked to complete.

A model never knows which task it serves: it gets chat turns, an optional assistant prefill,
and a token budget, and returns text (greedy decoding unless the backend is told otherwise).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Request:
    """``messages``: chat turns ``[{"role": ..., "content": ...}]``; ``prefill``: assistant text the
    reply must continue (a task's answer prefix), or None."""

    messages: list[dict[str, str]]
    prefill: str | None = None
    max_new_tokens: int = 128
    meta: dict = field(default_factory=dict)


@dataclass
class Completion:
    """One reply: the generated text (without the prefill), what it cost, and, for a backend that sends
    requests to a server, the decoding settings its request went out with (``params``)."""

    text: str
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    params: dict | None = None


class Model(Protocol):
    spec: str                    # the spec it was loaded from, e.g. "hf:./llama"
    tokenizer_spec: str | None   # a tasks.tokenizers spec sizing prompts for this model, or None if unknown
    max_context: int             # prompt plus generated tokens the model accepts
    template: str                # "chat" (the tokenizer's own chat template) or "plain" (documented plain template)

    def count_prompt_tokens(self, request: Request) -> int:
        """Tokens the model will actually see for ``request`` (chat template and prefill included)."""
        ...

    def generate(self, batch: list[Request]) -> list[Completion]:
        """Complete every request of ``batch``, in order."""
        ...

    def close(self) -> None: ...
