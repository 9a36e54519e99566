"""Multi-query associative recall (MQAR; Arora et al., 2023, "Zoology"): key-value pairs, then
queries for some of the keys; only the answers are scored.

Two forms of one task:

- ``mqar_tokens``: Zoology's own synthetic, as integer ids for a model with its own vocabulary
  (``benchmarks/zoo/mqar_sweep.py`` trains the zoo's mixers on it). Keys come from the lower half of
  the vocabulary and values from the upper half; the ``num_pairs`` pairs open the sequence
  (``k1 v1 k2 v2 ...``), then every key reappears once, at a gap drawn from Zoology's power law
  (``power_a``; most queries come soon after the pairs), and the target after each query is its value.
  The other positions hold id 0 (Zoology's ``random_non_queries=False``, its figure 2) or random ids.
  Keys and values are drawn from the whole vocabulary, as in Zoology: the ids carry no meaning, so a
  train/eval split of ids would only leave embeddings untrained; held-out sequences are new draws.
- ``MQARTask`` (catalog name ``mqar``): the same look-ups in text, for any model spec. ``num_pairs``
  ``word: number`` pairs (one-word keys, 4-digit values, both from ``tasks.vocab``'s split) open the
  prompt, noise sentences fill it to ``ctx`` tokens, and the question asks for the values of
  ``num_queries`` keys in a random order; ``string_match_all`` scores the share of values given.

    inputs, targets = mqar_tokens(n=64, seq_len=256, num_pairs=16, vocab_size=8192, seed=0)
    samples = list(TASKS["mqar"].generate(1024, 10, 0, load_tokenizer("byte")))
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np

from longctx.tasks import vocab
from longctx.tasks.errors import TaskError
from longctx.tasks.haystack import load_haystack
from longctx.tasks.prompt_fit import Fitter, Layout
from longctx.tasks.ruler_base import RulerTask, haystack_layout
from longctx.tasks.task import Split

IGNORE = -100   # the target of every position that is not an answer

TEMPLATE = ("Memorize the keys and their values below. I will ask for the values of some keys "
            "after the text that follows them.\n")
PAIR = "{key}: {value}."
QUESTION = "\nWhat are the values of the keys {query}, in this order?"
ANSWER_PREFIX = " The values are"


def mqar_tokens(n: int, seq_len: int, num_pairs: int, vocab_size: int, seed: int, power_a: float = 0.01,
                random_non_queries: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``n`` MQAR sequences: ``inputs [n, seq_len]`` ids and ``targets [n, seq_len]`` (the value id
    after each query position, ``IGNORE`` elsewhere). Needs ``4 * num_pairs <= seq_len`` and
    ``num_pairs < vocab_size // 2``."""
    if seq_len % 2 or 4 * num_pairs > seq_len:
        raise TaskError(f"mqar needs an even sequence length of at least 4 x {num_pairs} pairs; got {seq_len}")
    if not 0 < num_pairs < vocab_size // 2 or vocab_size <= seq_len:
        raise TaskError(f"mqar needs 0 < num_pairs < vocab_size / 2 and vocab_size > seq_len; "
                        f"got {num_pairs} pairs, vocabulary {vocab_size}, length {seq_len}")
    rng = np.random.default_rng(seed)
    half, context = vocab_size // 2, 2 * num_pairs
    # distinct keys (ids 1..half-1) and values (half..vocab-1) in each row
    keys = np.stack([rng.choice(half - 1, size=num_pairs, replace=False) for _ in range(n)]) + 1
    values = np.stack([rng.choice(vocab_size - half, size=num_pairs, replace=False) for _ in range(n)]) + half
    space = (seq_len - context) // 2          # query slots: every other position after the pairs
    p = power_a * np.arange(1, space + 1, dtype=np.float64) ** (power_a - 1)
    p /= p.sum()
    gaps = np.stack([rng.choice(space, size=num_pairs, replace=False, p=p) for _ in range(n)])
    seq = np.zeros((n, seq_len + 1), dtype=np.int64)
    seq[:, 0:context:2], seq[:, 1:context:2] = keys, values
    rows = np.arange(n)[:, None]
    seq[rows, context + 2 * gaps] = keys
    target = np.full((n, seq_len + 1), IGNORE, dtype=np.int64)
    target[rows, context + 2 * gaps + 1] = values
    inputs, targets = seq[:, :-1], target[:, 1:]
    if random_non_queries:
        filler = rng.integers(0, vocab_size, size=inputs.shape)
        inputs = np.where(inputs == 0, filler, inputs)
    return inputs, targets


@dataclass(frozen=True)
class MQARConfig:
    num_pairs: int = 16          # key-value pairs at the start of the prompt
    num_queries: int = 4         # keys asked about (at most num_pairs)
    haystack: str = "noise"      # the text between the pairs and the question (tasks.haystack.load_haystack)


class MQARTask(RulerTask):
    """The text form of MQAR (see the module docstring); ``replace(num_pairs=64)`` for more pairs."""

    config: MQARConfig

    def prepare(self, rng: random.Random, fitter: Fitter, split: Split, index: int
                ) -> tuple[Layout, list[str], dict[str, Any]]:
        c = self.config
        if not 1 <= c.num_queries <= c.num_pairs:
            raise TaskError(f"mqar asks 1 to num_pairs keys; got num_queries={c.num_queries}, num_pairs={c.num_pairs}")
        words = vocab.words(split)
        if c.num_pairs > len(words):
            raise TaskError(f"mqar has {len(words)} distinct one-word keys in the {split} split; asked for {c.num_pairs}")
        keys = rng.sample(words, c.num_pairs)
        values: list[str] = []
        while len(values) < c.num_pairs:
            v = vocab.number(rng, split, digits=4)
            if v not in values:
                values.append(v)
        asked = rng.sample(range(c.num_pairs), c.num_queries)
        query = ", ".join(keys[i] for i in asked)
        pairs = " ".join(PAIR.format(key=k, value=v) for k, v in zip(keys, values))
        hay = load_haystack(c.haystack)
        layout = haystack_layout(fitter, hay, 0, TEMPLATE + pairs + "\n", QUESTION.format(query=query),
                                 ANSWER_PREFIX, [], lambda k: [])
        meta = {"keys": keys, "query_keys": [keys[i] for i in asked], "num_pairs": c.num_pairs, "haystack": hay.name}
        return layout, [values[i] for i in asked], meta


MQAR_TASKS: dict[str, RulerTask] = {
    "mqar": MQARTask("mqar", "multi-query associative recall: the values of 4 of 16 word keys listed at the start",
                     MQARConfig(), "string_match_all", 64),
}
