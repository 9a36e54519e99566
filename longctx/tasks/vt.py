"""RULER's variable tracking (``vt``): follow chains of ``VAR X = ...`` assignments hidden in noise.

Laid out as RULER's ``variable_tracking.py`` writes it. A chain is ``VAR ABCDE = 12345`` then hops
``VAR FGHIJ = VAR ABCDE `` (RULER's trailing space kept), each statement a line of its own among
lines of RULER's noise block, before line indices drawn uniformly and in chain order. The question
gives the first chain's value; the answer is every variable of that chain. First comes RULER's
one-shot example: the whole task (instruction, a chain of three-letter names on the noise lines that
fit 500 tokens, question, answer prefix), its answer after one more space, a newline, and then the
instruction again for the real task. Under a tokenizer where not even RULER's five noise lines fit
those 500 tokens (a byte-level one), the example takes the lines that do, at least one.
"""
from __future__ import annotations

import random
import string
from dataclasses import dataclass
from typing import Any

from longctx.tasks import vocab
from longctx.tasks.haystack import load_haystack, noise_lines, one_line
from longctx.tasks.prompt_fit import Counter, Fitter, Layout
from longctx.tasks.ruler_base import RulerTask, haystack_layout, line_slots, pick_depths
from longctx.tasks.task import Split

# RULER's template and answer prefix (scripts/data/synthetic/constants.py), {context} split out
INSTRUCTION = "Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n"
QUESTION = "\nQuestion: Find all variables that are assigned the value {value} in the text above."
ANSWER_PREFIX = (" Answer: According to the chain(s) of variable assignment in the text above, "
                 "{n} variables are assigned the value {value}, they are: ")
EXAMPLE_TOKENS = 500  # RULER sizes its one-shot example to 500 tokens of the model's tokenizer


@dataclass(frozen=True)
class VTConfig:
    haystack: str = "noise"  # noise (RULER's lines) | essay | a path: statements among sentences
    num_chains: int = 1
    num_hops: int = 4


def _name(rng: random.Random, split: Split, taken: set[str], length: int) -> str:
    while True:
        s = "".join(rng.choices(string.ascii_uppercase, k=length))
        if s not in taken and s != "VAR" and vocab.split_of(s) == split:
            taken.add(s)
            return s


def _chains(rng: random.Random, split: Split, n_chains: int, hops: int, taken: set[str], length: int
            ) -> tuple[list[list[str]], list[list[str]], list[str]]:
    """(variables per chain, statements per chain, value per chain), statements as RULER writes them."""
    names, lines, values = [], [], []
    for _ in range(n_chains):
        value = vocab.number(rng, split, digits=5)
        while value in taken:
            value = vocab.number(rng, split, digits=5)
        taken.add(value)
        vs = [_name(rng, split, taken, length) for _ in range(hops + 1)]
        names.append(vs)
        values.append(value)
        lines.append([f"VAR {vs[0]} = {value}"] + [f"VAR {b} = VAR {a} " for a, b in zip(vs, vs[1:])])
    return names, lines, values


def _interleave(rng: random.Random, chains: list[list[str]]) -> list[str]:
    """All statements, each chain's in order, chains mixed at random (one chain: its own order)."""
    left = [list(c) for c in chains]
    out = []
    while any(left):
        c = rng.choice([c for c in left if c])
        out.append(c.pop(0))
    return out


def _place(statements: list[str], k: int, slots: list[int], unit: str) -> str:
    """``k`` haystack lines with each statement as a line before line ``slots[i]``, joined by newlines."""
    out: list[str] = []
    j = 0
    for line in range(k + 1):
        while j < len(statements) and slots[j] == line:
            out.append(statements[j])
            j += 1
        if line < k:
            out.append(unit)
    return "\n".join(out)


class VTTask(RulerTask):
    config: VTConfig
    version = "2"

    def prepare(self, rng: random.Random, fitter: Fitter, split: Split, index: int
                ) -> tuple[Layout, list[str], dict[str, Any]]:
        c = self.config
        lines = c.haystack == "noise"
        hay = noise_lines() if lines else one_line(load_haystack(c.haystack))
        taken: set[str] = set()
        head = INSTRUCTION + self._example(rng, split, taken, fitter.count) + INSTRUCTION
        names, chains, values = _chains(rng, split, c.num_chains, c.num_hops, taken, 5)
        statements = _interleave(rng, chains)
        value = values[0]
        if lines:
            sep, slots = "\n", line_slots(rng.random(), len(statements))
        else:  # among sentences at RULER's depths, each statement ending as a sentence (RULER's essay layout)
            statements = [s.strip() + "." for s in statements]
            depths = pick_depths(rng, len(statements), None)
            sep, slots = " ", (lambda k: [int(k * d / 100) for d in depths])
        layout = haystack_layout(
            fitter, hay, rng.randrange(len(hay.units)), head, QUESTION.format(value=value),
            ANSWER_PREFIX.format(n=c.num_hops + 1, value=value), [sep + s for s in statements], slots)
        meta = {"needles": statements, "value": value, "chains": names, "haystack": hay.name}
        return layout, list(names[0]), meta

    def _example(self, rng: random.Random, split: Split, taken: set[str], count: Counter) -> str:
        """RULER's solved example: the task on the noise lines that fit ``EXAMPLE_TOKENS``, then its answer."""
        c = self.config
        names, chains, values = _chains(rng, split, c.num_chains, c.num_hops, taken, 3)
        statements = _interleave(rng, chains)
        unit = noise_lines().units[0].lstrip("\n")
        prompt_end = QUESTION.format(value=values[0]) + ANSWER_PREFIX.format(n=c.num_hops + 1, value=values[0])
        fixed = count(INSTRUCTION) + count(prompt_end) + sum(count("\n" + s) for s in statements)
        k = max(1, (EXAMPLE_TOKENS - fixed) // count("\n" + unit))
        draw = rng.random()
        context = _place(statements, k, line_slots(draw, len(statements))(k), unit)
        while k > 1 and count(INSTRUCTION + context + prompt_end) > EXAMPLE_TOKENS:
            k -= 1
            context = _place(statements, k, line_slots(draw, len(statements))(k), unit)
        return f"{context}{prompt_end} {' '.join(names[0])}\n\n"
