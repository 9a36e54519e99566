"""RULER's needle-in-a-haystack family: single, multi-key, multi-value and multi-query needles.

A needle is "One of the special magic {numbers} for {key} is: {value}.", placed as RULER places it:
in an essay (the generated one or a user's file, whitespace made single spaces as RULER reads Paul
Graham's essays) between sentences at a depth drawn from RULER's 40 depths; in the noise and the
"needle" haystack of distractor needles, on a line of its own before a line index drawn uniformly
(a configured ``depth`` overrides both). The question and answer prefix are RULER's, in its singular
form when one value of one key is asked. Keys, values and distractors come from the vocabulary
split, so no value appears twice.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from longctx.tasks import vocab
from longctx.tasks.haystack import Haystack, load_haystack, noise_lines, one_line
from longctx.tasks.prompt_fit import Fitter, Layout
from longctx.tasks.ruler_base import RulerTask, haystack_layout, line_slots, pick_depths
from longctx.tasks.task import Split

# RULER's niah template and answer prefix (scripts/data/synthetic/constants.py), {context} split out
TEMPLATE = ("Some special magic {type_needle_v} are hidden within the following text. Make sure to memorize it. "
            "I will quiz you about the {type_needle_v} afterwards.\n{context}\n"
            "What are all the special magic {type_needle_v} for {query} mentioned in the provided text?")
ANSWER_PREFIX = " The special magic {type_needle_v} for {query} mentioned in the provided text are"
NEEDLE = "One of the special magic {label} for {key} is: {value}."
# RULER's rewrite of the template when one value of one key is asked (niah.py), in its order
SINGULAR = (("Some", "A"), ("are all", "is"), ("are", "is"), ("answers", "answer"))
_DISTRACTORS = 10_000


def wording(kind: str, query: str, singular: bool) -> tuple[str, str, str]:
    """(text before the context, question after it, answer prefix) for needles of ``kind`` ("numbers",
    "uuids", ...), in RULER's singular form when ``singular`` (one query, one value)."""
    template = TEMPLATE + ANSWER_PREFIX
    if singular:
        for old, new in SINGULAR:
            template = template.replace(old, new)
        kind = kind[:-1]
    text = template.replace("{context}", "\0").format(type_needle_v=kind, query=query)
    head, rest = text.split("\0")
    cut = rest.rfind(ANSWER_PREFIX[:10])  # where RULER splits the answer prefix off: its first 10 characters
    return head, rest[:cut], rest[cut:]


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
    depth: float | None = None  # percent; None: RULER's 40 depths (essay) or its uniform line draw (noise, needle)


class NiahTask(RulerTask):
    config: NiahConfig
    version = "2"

    def prepare(self, rng: random.Random, fitter: Fitter, split: Split, index: int
                ) -> tuple[Layout, list[str], dict[str, Any]]:
        c = self.config
        label = c.value
        taken_keys: frozenset[str] = frozenset()
        taken_values: frozenset[str] = frozenset()
        if c.haystack == "needle":
            hay, taken_keys, taken_values = _needle_haystack(c.key, c.value, split)
            start = rng.randrange(len(hay.units))
        elif c.haystack == "noise":
            hay, start = noise_lines(), 0
        else:
            hay = one_line(load_haystack(c.haystack))
            start = rng.randrange(len(hay.units))
        lines = c.haystack in ("noise", "needle")  # RULER: needles on lines of their own, else among sentences
        n_keys = max(c.num_keys, c.num_queries)
        keys = vocab.draw_distinct(c.key, rng, split, n_keys, taken_keys)  # type: ignore[arg-type]
        pool = vocab.draw_distinct(c.value, rng, split, n_keys * c.num_values, taken_values)  # type: ignore[arg-type]
        values = [pool[i * c.num_values:(i + 1) * c.num_values] for i in range(n_keys)]
        needles = [NEEDLE.format(label=c.value, key=k, value=v) for k, vs in zip(keys, values) for v in vs]
        rng.shuffle(needles)
        queried = rng.sample(range(n_keys), c.num_queries)
        qkeys = [keys[i] for i in queried]
        answers = [v for i in queried for v in values[i]]
        head, question, prefix = wording(c.value, query_text(qkeys), c.num_queries * c.num_values == 1)
        asked = needles.index(NEEDLE.format(label=c.value, key=qkeys[0], value=answers[0]))
        meta = {"needles": needles, "keys": keys, "query_keys": qkeys, "haystack": hay.name}
        if lines and c.depth is None:
            slots = line_slots(rng.random(), len(needles))
            layout = haystack_layout(fitter, hay, start, head, question, prefix, ["\n" + s for s in needles], slots,
                                     asked=asked)
            return layout, answers, meta
        depths = pick_depths(rng, len(needles), c.depth)
        layout = haystack_layout(fitter, hay, start, head, question, prefix,
                                 [("\n" if lines else " ") + s for s in needles],
                                 lambda k: [int(k * d / 100) for d in depths])
        meta.update(depth=depths[asked], depths=depths)
        return layout, answers, meta


@lru_cache(maxsize=8)
def _needle_haystack(key: str, value: str, split: Split) -> tuple[Haystack, frozenset[str], frozenset[str]]:
    """RULER's "needle" haystack: distractor needles with their own keys and values, one per line."""
    rng = random.Random(f"niah-needle-haystack|{key}|{value}|{split}")
    keys = vocab.draw_distinct(key, rng, split, _DISTRACTORS)  # type: ignore[arg-type]
    values = vocab.draw_distinct(value, rng, split, _DISTRACTORS)  # type: ignore[arg-type]
    units = tuple("\n" + NEEDLE.format(label=value, key=k, value=v) for k, v in zip(keys, values))
    return Haystack(f"needle:{key}-{value}-{split}", units), frozenset(keys), frozenset(values)
