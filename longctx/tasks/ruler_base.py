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
from longctx.tasks.prompt_fit import Built, Fitter, Layout
from longctx.tasks.sample import Sample, make_sample
from longctx.tasks.task import Split
from longctx.tasks.tokenizers import Tokenizer

# RULER's 40 evenly spaced insertion depths in [0, 100] (np.linspace(0, 100, 40), rounded)
DEPTHS: tuple[int, ...] = tuple(round(i * 100 / 39) for i in range(40))
_FILL_LOOKAHEAD = 512  # later haystack units searched for whole ones that close the last gap


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


def line_slots(seed: float, n: int) -> Callable[[int], list[int]]:
    """RULER's placement in a haystack of lines (noise, distractor needles): ``n`` distinct line indices
    drawn uniformly from ``range(k)``, sorted; the inserts go before those lines."""
    def slots(k: int) -> list[int]:
        if k < n:
            return [min(i, k) for i in range(n)]
        return sorted(random.Random(seed).sample(range(k), n))
    return slots


def haystack_layout(fitter: Fitter, hay: Haystack, start: int, head: str, tail: str, answer_prefix: str,
                    inserts: list[str], slots: Callable[[int], list[int]], asked: int | None = None) -> Layout:
    """A layout of ``head + haystack (with inserts) + tail``, built from whole haystack units only.

    ``inserts`` start with their separator; ``slots(k)`` says at which unit boundary (0..k) each
    goes once ``k`` haystack units fit (non-decreasing). The haystack takes as many units from
    ``start`` as fit; while the gap to the budget is above half the tolerance, the longest later unit
    of the cycle that still fits is added (a few units skipped, none cut: a cut needle is a wrong
    needle). What gap is left is smaller than every unit that could have closed it; the prompt
    records the smallest in ``fill_unit_tokens``. With ``asked`` (the index of the asked insert),
    the depths are the slots' positions in the haystack (``100 * slot / k``) and are recorded too.
    """
    tok, count = fitter.tokenizer, fitter.count
    fixed = count(head) + count(tail) + count(answer_prefix) + sum(count.many(inserts))
    table = hay.table(tok)
    m = len(hay.units)

    def layout(budget: int) -> Built:
        room = budget - fixed
        if room < 0:
            raise fitter.too_small(fixed)
        k = hay.take(tok, room, start)
        while True:
            built = _assemble(k, [])
            if built.tokens <= budget or k == 0:
                break
            k -= 1
        if built.tokens > budget:
            raise fitter.too_small(built.tokens)
        gap = budget - built.tokens
        ahead = {(start + k + i) % m for i in range(min(_FILL_LOOKAHEAD, m))}
        fill: list[int] = []
        while gap > fitter.tol // 2:
            fits = [u for u in ahead if table.counts[u] <= gap]
            if not fits:
                break
            u = max(fits, key=lambda u: (table.counts[u], -((u - start - k) % m)))
            fill.append(u)
            ahead.discard(u)
            gap -= table.counts[u]
        if fill:
            longer = _assemble(k, fill)
            if longer.tokens <= budget:
                built = longer
        built.extra["fill_unit_tokens"] = min((table.counts[u] for u in ahead), default=0)
        return built

    def _assemble(k: int, fill: list[int]) -> Built:
        at = slots(k)
        # segments in order: ("hay", a, b) for units a..b of the run, ("fill", unit), ("insert", j)
        segs: list[tuple] = []
        prev, filled = 0, not fill
        for j, slot in enumerate(at):
            if slot > prev:
                segs.append(("hay", prev, slot))
                prev = slot
            if slot == k and not filled:
                segs.extend(("fill", u) for u in fill)
                filled = True
            segs.append(("insert", j))
        if k > prev:
            segs.append(("hay", prev, k))
        if not filled:
            segs.extend(("fill", u) for u in fill)
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
                piece = hay.units[seg[1]] if seg[0] == "fill" else inserts[seg[1]]
                c = table.counts[seg[1]] if seg[0] == "fill" else count.many([piece])[0]
                if n == 0:
                    piece, c = piece.lstrip(), count(piece.lstrip())
                if seg[0] == "insert":
                    marks.append((char, pos))
            text.append(piece)
            pos += c
            char += len(piece)
        text.append(tail)
        total = pos + count(tail) + count(answer_prefix)
        extra: dict[str, Any] = {"haystack_units": k + len(fill)}
        if asked is not None:
            depths = [round(100 * slot / max(k, 1), 1) for slot in at]
            extra.update(depths=depths, depth=depths[asked])
        return Built("".join(text), answer_prefix, total, marks, extra)

    return layout
