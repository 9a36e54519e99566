"""Fit a prompt to its token target from per-piece counts, checked against a full tokenization.

A prompt is a ``head`` (instructions), a context of pieces that each start with their separator
(haystack sentences, needles, list items), a ``tail`` (the question) and an answer prefix. Its
length is the sum of the pieces' counts: BPE pre-tokenizers split before a space or newline, so a
piece that starts with one tokenizes the same alone and in place. Each family chooses how many
pieces fit from those sums (``bisect`` over running totals, no tokenizer call per step).

``Fitter.finish`` checks that sum against one full tokenization of the first sample of a set and
of every 100th after it. Where the two differ (a tokenizer that merges across spaces), the fitter
switches to measuring every prompt of the set and corrects the budget by the measured error, so
the numbers written into a sample are always those of a real tokenization or of the checked sum.

A prompt is made of whole units (no cut sentence, needle or document, as in RULER), so it lands within
the tolerance of its target, or, where every unit that could close the gap is larger than that, within
one unit of it (``Fitter.slack``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from longctx.tasks.errors import TaskError
from longctx.tasks.sizing import tolerance
from longctx.tasks.tokenizers import Tokenizer

VERIFY_EVERY = 100
_MAX_TRIES = 8


class Counter:
    """Token counts of strings under one tokenizer, cached (numbers, words, templates recur)."""

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self._cache: dict[str, int] = {}

    def __call__(self, text: str) -> int:
        n = self._cache.get(text)
        if n is None:
            n = self._cache[text] = len(self.tokenizer.encode(text)) if text else 0
        return n

    def many(self, texts: Sequence[str]) -> list[int]:
        """Counts of ``texts``; the ones not seen before go through one ``encode_batch``."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            for t, ids in zip(missing, self.tokenizer.encode_batch(missing)):
                self._cache[t] = len(ids)
        return [self._cache[t] for t in texts]

    def forget(self) -> None:
        """Drop the cache when it grows past what a set needs (per-sample strings)."""
        if len(self._cache) > 200_000:
            self._cache.clear()


_COUNTERS: dict[str, Counter] = {}


def counter(tokenizer: Tokenizer) -> Counter:
    c = _COUNTERS.get(tokenizer.name)
    if c is None or c.tokenizer is not tokenizer:
        c = _COUNTERS[tokenizer.name] = Counter(tokenizer)
    return c


@dataclass
class Built:
    """An assembled prompt: its text, the summed token count, and each insert's offsets.

    ``marks`` are (character offset in ``input``, token offset) of every needle-like insert, taken
    where its leading separator starts; the token offset is the number of tokens of ``input[:char]``.
    """

    input: str
    answer_prefix: str
    tokens: int
    marks: list[tuple[int, int]] = field(default_factory=list)
    extra: dict = field(default_factory=dict)


Layout = Callable[[int], Built]


class Fitter:
    """Runs a family's ``layout(budget)`` so the prompt lands in ``[target - tol, target]``."""

    def __init__(self, tokenizer: Tokenizer, ctx: int, overhead: int, answer_budget: int, task: str):
        self.tokenizer = tokenizer
        self.count = counter(tokenizer)
        self.target = ctx - overhead - answer_budget
        self.tol = tolerance(self.target)
        self.measured = False
        self.task = task
        self.ctx = ctx
        if self.target <= 0:
            raise TaskError(f"{task}: ctx {ctx} leaves no room for a prompt after the answer budget "
                            f"({answer_budget}) and overhead ({overhead}); use a larger --ctx")

    def too_small(self, need: int) -> TaskError:
        return TaskError(f"{task_ctx(self.task, self.ctx)} is too small: the template and needles alone take "
                         f"{need} tokens of {self.tokenizer.name}, the prompt may take {self.target}; "
                         "use a larger --ctx")

    def finish(self, layout: Layout, index: int) -> Built:
        """The fitted prompt for sample ``index``; checked or measured as the module says."""
        b = layout(self.target)
        if not self.measured and index % VERIFY_EVERY != 0:
            return self._full(b)
        real = self._measure(b)
        if real == b.tokens and not self.measured:
            return self._full(b)
        self.measured = True
        budget = self.target
        for _ in range(_MAX_TRIES):
            if self.target - self.slack(b) <= real <= self.target:
                return self._exact_marks(b, real)
            # the summed counts run ahead of (or behind) the real ones by a roughly fixed ratio
            budget += round(((self.target - self.tol // 2) - real) * budget / max(real, 1))
            b = layout(budget)
            real = self._measure(b)
        raise TaskError(f"{task_ctx(self.task, self.ctx)}: could not size the prompt within {self.tol} tokens "
                        f"of {self.target} under {self.tokenizer.name} (last try {real})")

    def slack(self, b: Built) -> int:
        """How far under the target ``b`` may land: the tolerance, or less than one whole unit where
        the layout's units (a noise line, a distractor needle) are all coarser than the tolerance."""
        return max(self.tol, b.extra.get("fill_unit_tokens", 0))

    def _full(self, b: Built) -> Built:
        if b.tokens < self.target - self.slack(b):
            raise TaskError(f"{task_ctx(self.task, self.ctx)}: could fill only {b.tokens} of the {self.target} "
                            f"prompt tokens (tolerance {self.tol}); the haystack or QA source may be too small "
                            "for this ctx, or the ctx too small for the task's pieces")
        return b

    def _measure(self, b: Built) -> int:
        return len(self.tokenizer.encode(b.input)) + self.count(b.answer_prefix)

    def _exact_marks(self, b: Built, real: int) -> Built:
        marks = [(c, len(self.tokenizer.encode(b.input[:c]))) for c, _ in b.marks]
        return Built(b.input, b.answer_prefix, real, marks, b.extra)


def task_ctx(task: str, ctx: int) -> str:
    return f"{task} at ctx {ctx}"
