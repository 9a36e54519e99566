"""Token-exact prompt sizing: tokenize haystack units once, cut by cumulative counts.

Concatenating units is not exactly additive under BPE (merges across a boundary), so the
assembled prompt is measured once and corrected by dropping or adding whole units from the
cumulative table; the prompt is never re-tokenized in a search loop.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from itertools import accumulate
from typing import Sequence

from longctx.tasks.tokenizers import Tokenizer


def tolerance(target: int) -> int:
    """How far under its target a prompt may land: 0.5 % or 8 tokens, whichever is larger."""
    return max(8, target // 200)


@dataclass
class UnitTable:
    """Haystack units (sentences, lines, documents) with their token counts and running sums."""

    units: list[str]
    counts: list[int]
    cumulative: list[int]

    @classmethod
    def build(cls, units: Sequence[str], tokenizer: Tokenizer) -> "UnitTable":
        units = list(units)
        counts = [len(ids) for ids in tokenizer.encode_batch(units)] if units else []
        return cls(units, counts, list(accumulate(counts)))

    def take(self, budget: int) -> int:
        """The largest k such that the first k units hold at most ``budget`` tokens."""
        return bisect.bisect_right(self.cumulative, budget)

    def tokens(self, k: int) -> int:
        return self.cumulative[k - 1] if k > 0 else 0
