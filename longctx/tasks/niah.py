"""RULER's needle-in-a-haystack family: single, multi-key, multi-value and multi-query needles.

A needle is "One of the special magic {numbers} for {key} is: {value}." put in at a sentence
boundary at a depth drawn from RULER's 40 depths (or the configured ``depth``). The haystack is
RULER's noise, the generated essay, a "needle" haystack of distractor needles, or a user's file.
Keys, values and distractors come from the vocabulary split, so no value appears twice.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from longctx.tasks import vocab
from longctx.tasks.haystack import Haystack, load_haystack
from longctx.tasks.prompt_fit import Fitter, Layout
from longctx.tasks.ruler_base import RulerTask, haystack_layout, pick_depths
from longctx.tasks.task import Split

TEMPLATE = ("Some special magic {label} are hidden within the following text. Make sure to memorize it. "
            "I will quiz you about the {label} afterwards.\n")
QUESTION = "\nWhat are all the special magic {label} for {query} mentioned in the provided text?"
ANSWER_PREFIX = " The special magic {label} for {query} mentioned in the provided text are"
NEEDLE = "One of the special magic {label} for {key} is: {value}."
_DISTRACTORS = 10_000


def query_text(keys: list[str]) -> str:
    """The keys as the question names them: ``a``, or ``a, b, and c``."""
    return keys[0] if len(keys) == 1 else ", ".join(keys[:-1]) + ", and " + keys[-1]


@dataclass(frozen=True)
class NiahConfig:
    """One row of RULER's niah variant table."""

    haystack: str = "essay"  # noise | essay | needle | a path (tasks.haystack.load_haystack)
    key: str = "words"  # words | uuids
    value: str = "numbers"  # numbers | words | uuids
    num_keys: int = 1  # needles with different keys (RULER num_needle_k)
    num_values: int = 1  # values per key (num_needle_v)
    num_queries: int = 1  # keys asked about (num_needle_q)
    depth: float | None = None  # percent; None draws from RULER's 40 depths


class NiahTask(RulerTask):
    config: NiahConfig

    def prepare(self, rng: random.Random, fitter: Fitter, split: Split, index: int
                ) -> tuple[Layout, list[str], dict[str, Any]]:
        c = self.config
        label = c.value
        taken_keys: frozenset[str] = frozenset()
        taken_values: frozenset[str] = frozenset()
        if c.haystack == "needle":
            hay, taken_keys, taken_values = _needle_haystack(c.key, c.value, split)
            start, sep = rng.randrange(len(hay.units)), "\n"
        else:
            hay = load_haystack(c.haystack)
            start, sep = (0 if c.haystack == "noise" else rng.randrange(len(hay.units))), " "
        n_keys = max(c.num_keys, c.num_queries)
        keys = vocab.draw_distinct(c.key, rng, split, n_keys, taken_keys)  # type: ignore[arg-type]
        pool = vocab.draw_distinct(c.value, rng, split, n_keys * c.num_values, taken_values)  # type: ignore[arg-type]
        values = [pool[i * c.num_values:(i + 1) * c.num_values] for i in range(n_keys)]
        needles = [NEEDLE.format(label=label, key=k, value=v) for k, vs in zip(keys, values) for v in vs]
        rng.shuffle(needles)
        queried = rng.sample(range(n_keys), c.num_queries)
        qkeys = [keys[i] for i in queried]
        query = query_text(qkeys)
        answers = [v for i in queried for v in values[i]]
        depths = pick_depths(rng, len(needles), c.depth)
        layout = haystack_layout(
            fitter, hay, start, TEMPLATE.format(label=label), QUESTION.format(label=label, query=query),
            ANSWER_PREFIX.format(label=label, query=query), [sep + s for s in needles],
            lambda k: [int(k * d / 100) for d in depths])
        asked = needles.index(NEEDLE.format(label=label, key=qkeys[0], value=answers[0]))
        meta = {"depth": depths[asked], "depths": depths, "needles": needles,
                "keys": keys, "query_keys": qkeys, "haystack": hay.name}
        return layout, answers, meta


@lru_cache(maxsize=8)
def _needle_haystack(key: str, value: str, split: Split) -> tuple[Haystack, frozenset[str], frozenset[str]]:
    """RULER's "needle" haystack: distractor needles with their own keys and values, one per line."""
    rng = random.Random(f"niah-needle-haystack|{key}|{value}|{split}")
    keys = vocab.draw_distinct(key, rng, split, _DISTRACTORS)  # type: ignore[arg-type]
    values = vocab.draw_distinct(value, rng, split, _DISTRACTORS)  # type: ignore[arg-type]
    units = tuple("\n" + NEEDLE.format(label=value, key=k, value=v) for k, v in zip(keys, values))
    return Haystack(f"needle:{key}-{value}-{split}", units), frozenset(keys), frozenset(values)
