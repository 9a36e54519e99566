"""Keys, values and topics for every task, from a vocabulary split into ``eval`` and ``train``.

Every string a task draws (a word, an ``adjective-noun`` key, a 7-digit number, a uuid, a
pseudo-word) belongs to exactly one split, decided by ``split_of`` (the parity of the first byte
of its sha256). A model trained on ``train`` values therefore never saw an ``eval`` value:
disjoint by construction, and the same on any machine.

The word lists in ``tasks/data/`` (nouns, adjectives, verbs) are hand-written everyday English;
RULER's keys are ``adjective-noun`` pairs of such words (e.g. ``bright-lantern``).

    rng = random.Random("niah_single_1|4096|0|7")
    vocab.draw("numbers", rng, "eval")   # '4820193'
"""
from __future__ import annotations

import hashlib
import random
import uuid
from functools import lru_cache
from pathlib import Path
from typing import Collection, Literal

from longctx.tasks.errors import TaskError
from longctx.tasks.task import Split

ValueKind = Literal["words", "numbers", "uuids"]
SPLITS: tuple[Split, ...] = ("eval", "train")
_DATA = Path(__file__).with_name("data")
_SYLLABLES = tuple(c + v for c in "bdfgklmnprstvz" for v in ("a", "e", "i", "o", "u", "ai", "ou"))


def split_of(text: str) -> Split:
    """The split a string belongs to: sha256 first byte even -> ``eval``, odd -> ``train``."""
    return "eval" if hashlib.sha256(text.encode("utf-8")).digest()[0] % 2 == 0 else "train"


def check_split(split: str) -> Split:
    if split not in SPLITS:
        raise TaskError(f"unknown split {split!r}: use 'eval' or 'train'")
    return split  # type: ignore[return-value]


@lru_cache(maxsize=None)
def _read(name: str) -> tuple[str, ...]:
    return tuple(w for w in (line.strip() for line in (_DATA / f"{name}.txt").read_text("utf-8").splitlines()) if w)


@lru_cache(maxsize=None)
def _of_split(name: str, split: Split) -> tuple[str, ...]:
    return tuple(w for w in _read(name) if split_of(w) == check_split(split))


def nouns(split: Split) -> tuple[str, ...]:
    """Concrete English nouns of ``split`` (sorted)."""
    return _of_split("nouns", split)


def adjectives(split: Split) -> tuple[str, ...]:
    return _of_split("adjectives", split)


def verbs(split: Split) -> tuple[str, ...]:
    return _of_split("verbs", split)


@lru_cache(maxsize=None)
def words(split: Split) -> tuple[str, ...]:
    """Every single word of ``split``: nouns, adjectives and verbs, sorted, no repeats."""
    return tuple(sorted({*nouns(split), *adjectives(split), *verbs(split)}))


def key_word(rng: random.Random, split: Split) -> str:
    """An ``adjective-noun`` key as RULER draws them; both words come from ``split``."""
    return f"{rng.choice(adjectives(split))}-{rng.choice(nouns(split))}"


def number(rng: random.Random, split: Split, digits: int = 7) -> str:
    """A ``digits``-digit number (no leading zero) of ``split``."""
    check_split(split)
    while True:
        s = str(rng.randrange(10 ** (digits - 1), 10**digits))
        if split_of(s) == split:
            return s


def uuid4(rng: random.Random, split: Split) -> str:
    """A version-4 uuid string of ``split``, drawn from ``rng`` (never from the OS)."""
    check_split(split)
    while True:
        s = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        if split_of(s) == split:
            return s


def pseudo_word(rng: random.Random, split: Split, syllables: tuple[int, int] = (2, 4)) -> str:
    """A pronounceable made-up word (``bokaisu``) of ``split``, for pools larger than the lists."""
    check_split(split)
    while True:
        s = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(*syllables)))
        if split_of(s) == split:
            return s


def draw(kind: ValueKind, rng: random.Random, split: Split) -> str:
    """One value of ``kind``: ``words`` -> an ``adjective-noun`` key, ``numbers`` -> 7 digits, ``uuids``."""
    if kind == "words":
        return key_word(rng, split)
    if kind == "numbers":
        return number(rng, split)
    if kind == "uuids":
        return uuid4(rng, split)
    raise TaskError(f"unknown value kind {kind!r}: use words, numbers or uuids")


def draw_distinct(kind: ValueKind, rng: random.Random, split: Split, n: int,
                  exclude: Collection[str] = ()) -> list[str]:
    """``n`` different values of ``kind``, none in ``exclude``."""
    if kind == "words" and n > len(adjectives(split)) * len(nouns(split)) - len(exclude):
        raise TaskError(f"asked for {n} distinct word keys; the {split} split holds fewer")
    out: list[str] = []
    seen = set(exclude)
    while len(out) < n:
        v = draw(kind, rng, split)
        if v not in seen:
            seen.add(v)
            out.append(v)
    return out
