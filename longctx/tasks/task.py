"""The Task protocol every generator implements, and the split names for keys and values."""
from __future__ import annotations

from typing import Iterator, Literal, Protocol

from longctx.tasks.sample import Sample
from longctx.tasks.tokenizers import Tokenizer

Split = Literal["eval", "train"]


class Task(Protocol):
    """A named, versioned generator. ``config`` is a frozen dataclass (the variant table row)."""

    name: str
    description: str
    version: str
    metric: str
    answer_budget: int

    def generate(
        self, ctx: int, n: int, seed: int, tokenizer: Tokenizer, split: Split = "eval", overhead: int = 0
    ) -> Iterator[Sample]:
        """Yield ``n`` samples whose prompt plus ``overhead`` (chat-template tokens the model adds)
        plus ``answer_budget`` fits in ``ctx`` tokens of ``tokenizer``."""
        ...
