"""Cut one short text unit to a token budget, so a prompt built from whole units lands on its target.

Whole haystack units (sentences, conversation turns) get a prompt to within one unit of its
target; the last unit is then cut here to the longest prefix that fits the remaining tokens:
first at word boundaries, then, only if a word is still too coarse, at characters of the next
word. Each candidate is a prefix of one unit (a few hundred characters), tokenized in one
``encode_batch`` call: the whole prompt is never re-tokenized.
"""
from __future__ import annotations

import re

from longctx.tasks.tokenizers import Tokenizer

_WORD = re.compile(r"\S+")


def fit_prefix(text: str, budget: int, tokenizer: Tokenizer, slack: int = 0) -> tuple[str, int]:
    """The longest prefix of ``text`` (ending in a non-space) with at most ``budget`` tokens, and its count.

    Character-level cuts are tried only when the best word-level cut leaves more than ``slack``
    tokens unused. Returns ``("", 0)`` when not even one character fits.
    """
    if budget <= 0 or not text:
        return "", 0
    ends = [m.end() for m in _WORD.finditer(text)]
    best, best_n = "", 0
    for end, ids in zip(ends, tokenizer.encode_batch([text[:e] for e in ends])):
        if len(ids) <= budget and end > len(best):
            best, best_n = text[:end], len(ids)
    if budget - best_n <= slack or len(best) == len(text.rstrip()):
        return best, best_n
    nxt = _WORD.search(text, len(best))
    if nxt is None:
        return best, best_n
    cuts = range(nxt.start() + 1, nxt.end())
    for end, ids in zip(cuts, tokenizer.encode_batch([text[:e] for e in cuts])):
        if len(ids) <= budget:
            best, best_n = text[:end], len(ids)
    return best, best_n
