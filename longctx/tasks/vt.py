"""RULER's variable tracking (``vt``): follow chains of ``VAR X = ...`` assignments hidden in noise.

Each chain starts ``VAR ABCDE = 12345.`` and hops ``VAR FGHIJ = VAR ABCDE.``; the statements go in
at random sentence boundaries, each chain in order. The question gives the first chain's value
and the answer is every variable of that chain. As in RULER, a short solved example comes first.
"""
from __future__ import annotations

import random
import string
from dataclasses import dataclass
from typing import Any

from longctx.tasks import vocab
from longctx.tasks.haystack import load_haystack
from longctx.tasks.prompt_fit import Fitter, Layout
from longctx.tasks.ruler_base import RulerTask, haystack_layout
from longctx.tasks.task import Split

TEMPLATE = "Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n"
QUESTION = "\nQuestion: Find all variables that are assigned the value {value} in the text above."
# "assgined" is RULER's published spelling, kept so prompts match the benchmark byte for byte
ANSWER_PREFIX = (" Answer: According to the chain(s) of variable assignment in the text above, "
                 "{n} variables are assgined the value {value}, they are: ")


@dataclass(frozen=True)
class VTConfig:
    haystack: str = "noise"
    num_chains: int = 1
    num_hops: int = 4
    example_units: int = 15  # noise sentences in the solved example


def _name(rng: random.Random, split: Split, taken: set[str]) -> str:
    while True:
        s = "".join(rng.choices(string.ascii_uppercase, k=5))
        if s not in taken and vocab.split_of(s) == split:
            taken.add(s)
            return s


def _chains(rng: random.Random, split: Split, n_chains: int, hops: int, taken: set[str]
            ) -> tuple[list[list[str]], list[list[str]], list[str]]:
    """(variables per chain, statements per chain, value per chain)."""
    names, lines, values = [], [], []
    for _ in range(n_chains):
        value = vocab.number(rng, split, digits=5)
        while value in taken:
            value = vocab.number(rng, split, digits=5)
        taken.add(value)
        vs = [_name(rng, split, taken) for _ in range(hops + 1)]
        names.append(vs)
        values.append(value)
        lines.append([f"VAR {vs[0]} = {value}."] + [f"VAR {b} = VAR {a}." for a, b in zip(vs, vs[1:])])
    return names, lines, values


def _interleave(rng: random.Random, chains: list[list[str]]) -> list[str]:
    """All statements, each chain's in order, chains mixed at random."""
    left = [list(c) for c in chains]
    out = []
    while any(left):
        c = rng.choice([c for c in left if c])
        out.append(c.pop(0))
    return out


class VTTask(RulerTask):
    config: VTConfig

    def prepare(self, rng: random.Random, fitter: Fitter, split: Split, index: int
                ) -> tuple[Layout, list[str], dict[str, Any]]:
        c = self.config
        hay = load_haystack(c.haystack)
        taken: set[str] = set()
        head = TEMPLATE + self._example(rng, split, taken, hay)
        names, lines, values = _chains(rng, split, c.num_chains, c.num_hops, taken)
        statements = _interleave(rng, lines)
        fractions = sorted(rng.random() for _ in statements)
        value = values[0]
        layout = haystack_layout(
            fitter, hay, 0, head, QUESTION.format(value=value),
            ANSWER_PREFIX.format(n=c.num_hops + 1, value=value), [" " + s for s in statements],
            lambda k: [min(int(f * (k + 1)), k) for f in fractions])
        meta = {"needles": statements, "value": value, "chains": names, "haystack": hay.name}
        return layout, list(names[0]), meta

    def _example(self, rng: random.Random, split: Split, taken: set[str], hay: Any) -> str:
        """A solved instance on a short noise context, as RULER's one-shot example."""
        c = self.config
        names, lines, values = _chains(rng, split, c.num_chains, c.num_hops, taken)
        units = [u for u in hay.slice(0, c.example_units)]
        statements = _interleave(rng, lines)
        at = sorted(rng.randrange(len(units) + 1) for _ in statements)
        for i, s in reversed(list(zip(at, statements))):
            units.insert(i, " " + s)
        context = "".join(units).lstrip()
        answer = ANSWER_PREFIX.format(n=c.num_hops + 1, value=values[0]) + " ".join(names[0])
        return f"{context}{QUESTION.format(value=values[0])}{answer}\n\n"
