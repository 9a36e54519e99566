"""What every RULER family shares: the task object, the sample loop, depths, and the haystack layout.

A family (``niah``, ``vt``, ``cwe_fwe``, ``qa``) subclasses ``RulerTask`` and writes ``prepare``:
for one sample's ``random.Random`` it draws keys and values and returns a ``layout(budget)`` (see
``tasks.prompt_fit``), the expected answers and the sample's metadata. ``generate`` does the rest.
"""
from __future__ import annotations

import dataclasses
import random
from typing import Any, Callable, Iterator

from longctx.tasks import vocab
from longctx.tasks.errors import TaskError
from longctx.tasks.haystack import Haystack
from longctx.tasks.prompt_fit import Built, Fitter, Layout, fill_prefix
from longctx.tasks.sample import Sample, make_sample
from longctx.tasks.task import Split
from longctx.tasks.tokenizers import Tokenizer

# RULER's 40 evenly spaced insertion depths in [0, 100] (np.linspace(0, 100, 40), rounded)
DEPTHS: tuple[int, ...] = tuple(round(i * 100 / 39) for i in range(40))


class RulerTask:
    """One RULER task: a name, a frozen config (its row of the variant table) and a family's ``prepare``."""

    version = "1"

    def __init__(self, name: str, description: str, config: Any, metric: str, answer_budget: int):
        self.name = name
        self.description = description
        self.config = config
        self.metric = metric
        self.answer_budget = answer_budget

    def replace(self, **changes: Any) -> "RulerTask":
        """The same task with config fields changed, e.g. ``replace(depth=50, haystack="my.txt")``."""
        names = {f.name for f in dataclasses.fields(self.config)}
        bad = sorted(set(changes) - names)
        if bad:
            raise TaskError(f"{self.name} has no option {', '.join(bad)} (options: {', '.join(sorted(names))})")
        return type(self)(self.name, self.description, dataclasses.replace(self.config, **changes),
                          self.metric, self.answer_budget)

    def max_new_tokens(self, tokenizer: Tokenizer, answers: list[str]) -> int:
        """The published budget where it holds the answers; where this tokenizer spells them out in
        more tokens (a byte-level model writes vt's five names in ~35), the answer's length plus
        slack. The prompt is sized to leave that room: prompt + answer budget <= ctx always."""
        need = len(tokenizer.encode(" " + ", ".join(answers) + "."))
        return self.answer_budget if need <= self.answer_budget else need + need // 4 + 16

    def prepare(self, rng: random.Random, fitter: Fitter, split: Split, index: int
                ) -> tuple[Layout, list[str], dict[str, Any]]:
        raise NotImplementedError

    def generate(self, ctx: int, n: int, seed: int, tokenizer: Tokenizer, split: Split = "eval",
                 overhead: int = 0) -> Iterator[Sample]:
        vocab.check_split(split)
        if n < 0:
            raise TaskError(f"number of samples must be >= 0, got {n}")
        fitter = Fitter(tokenizer, ctx, overhead, self.answer_budget, self.name)
        for i in range(n):
            rng = random.Random(f"{self.name}|{ctx}|{seed}|{i}|{split}")
            layout, answers, meta = self.prepare(rng, fitter, split, i)
            max_new = self.max_new_tokens(tokenizer, answers)
            fit = fitter if max_new == self.answer_budget else Fitter(tokenizer, ctx, overhead, max_new, self.name)
            b = fit.finish(layout, i)
            needles = meta.pop("needles", [])
            chars = [b.input.index(t, c) for t, (c, _) in zip(needles, b.marks)]
            if needles:
                meta.update(needles=needles, needle_chars=chars, needle_tokens=[t for _, t in b.marks])
            meta.update(b.extra)
            meta.update(seed=seed, index=i, version=self.version, split=split)
            yield make_sample(id=f"{self.name}-{ctx}-{seed}-{i}", task=self.name, ctx=ctx, tokenizer=tokenizer.name,
                              answers=answers, metric=self.metric, max_new_tokens=max_new,
                              prompt_tokens=b.tokens, input=b.input, answer_prefix=b.answer_prefix, meta=meta)
            fitter.count.forget()


def pick_depths(rng: random.Random, n: int, depth: float | None) -> list[float]:
    """``n`` needle depths: the given one for all, else ``n`` distinct draws from ``DEPTHS``, sorted."""
    if depth is not None:
        if not 0 <= depth <= 100:
            raise TaskError(f"depth must be a percentage in [0, 100], got {depth}")
        return [depth] * n
    return sorted(rng.sample(DEPTHS, n))


def haystack_layout(fitter: Fitter, hay: Haystack, start: int, head: str, tail: str, answer_prefix: str,
                    inserts: list[str], slots: Callable[[int], list[int]]) -> Layout:
    """A layout of ``head + haystack (with inserts) + tail``.

    ``inserts`` start with their separator; ``slots(k)`` says at which unit boundary (0..k) each
    goes once ``k`` haystack units fit (non-decreasing). The haystack gets whole units and then a
    prefix of the next unit when the gap to the budget is still above the tolerance.
    """
    tok, count = fitter.tokenizer, fitter.count
    fixed = count(head) + count(tail) + count(answer_prefix) + sum(count.many(inserts))
    hay.table(tok)
    m = len(hay.units)

    def layout(budget: int) -> Built:
        room = budget - fixed
        if room < 0:
            raise fitter.too_small(fixed)
        k = hay.take(tok, room, start)
        while True:
            built = _assemble(k)
            if built.tokens <= budget or k == 0:
                break
            k -= 1
        if built.tokens > budget:
            raise fitter.too_small(built.tokens)
        gap = budget - built.tokens
        if gap > fitter.tol // 2:
            part = fill_prefix(count, hay.units[(start + k) % m], gap)
            if part:
                longer = _assemble(k, part)
                if longer.tokens <= budget:
                    built = longer
        return built

    def _assemble(k: int, partial: str = "") -> Built:
        at = slots(k)
        # segments in order: ("hay", a, b) for units a..b of the run, or (text, count, is_insert)
        segs: list[tuple] = []
        prev = 0
        for j, slot in enumerate(at):
            if slot > prev:
                segs.append(("hay", prev, slot))
                prev = slot
            if slot == k and partial and not any(s[0] == "part" for s in segs):
                segs.append(("part", partial, count(partial)))
            segs.append(("insert", inserts[j], count.many([inserts[j]])[0]))
        if k > prev:
            segs.append(("hay", prev, k))
        if partial and not any(s[0] == "part" for s in segs):
            segs.append(("part", partial, count(partial)))
        text, marks, pos, char = [head], [], count(head), len(head)
        for n, seg in enumerate(segs):
            if seg[0] == "hay":
                units = hay.slice(start + seg[1], seg[2] - seg[1])
                c = hay.tokens(tok, start + seg[1], seg[2] - seg[1])
                if n == 0:
                    c += count(units[0].lstrip()) - count(units[0])
                    units[0] = units[0].lstrip()
                piece = "".join(units)
            else:
                piece, c = seg[1], seg[2]
                if n == 0:
                    piece, c = piece.lstrip(), count(piece.lstrip())
                if seg[0] == "insert":
                    marks.append((char, pos))
            text.append(piece)
            pos += c
            char += len(piece)
        text.append(tail)
        total = pos + count(tail) + count(answer_prefix)
        return Built("".join(text), answer_prefix, total, marks, {"haystack_units": k})

    return layout
