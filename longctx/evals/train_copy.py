"""Copy rows for ``evals train``: text in which spans reappear, so predicting a repeat means finding its
first copy in context (the look-up-and-copy circuit that needle retrieval needs).

Two kinds (``TrainConfig.copy_spans``):

- ``essay``: one span of essay text repeated (``A B A C``). The essay is generated English that the zoo's
  models predict at 0.15-0.43 nats a byte before any copying, so copying it saves almost nothing: none of
  the eight mixers that never retrieved learned to copy from these rows (models/checkpoints/README.md).
- ``random``: 2 to 6 spans of 8 to 24 random letters and digits (5.2 bits a byte) inside essay text, each
  repeated once later in the row, first copies and repeats interleaved, so the distances run from a few
  bytes to the whole row. After a repeat's first byte or two, copying is the only way to predict it.
"""
from __future__ import annotations

import random
import string

SPANS = ("essay", "random")
ALPHABET = (string.ascii_lowercase + string.digits).encode()


def essay_copy_row(text: bytes, width: int, rng: random.Random) -> bytes:
    """``width`` bytes of essay text in which a span reappears later: ``A B A C`` (A of 16 to width/2 bytes)."""
    span = rng.randrange(16, width // 2)
    a, b, c = (rng.randrange(0, len(text) - width) for _ in range(3))
    gap = rng.randrange(0, width - 2 * span)
    row = text[a:a + span] + text[b:b + gap] + text[a:a + span] + text[c:c + width]
    return row[:width]


def random_copy_row(text: bytes, width: int, rng: random.Random) -> bytes:
    """``width`` bytes: essay text with 2-6 random alphanumeric spans (8-24 bytes between spaces), each twice
    (fewer where they would take more than three quarters of the row, as in rows of a few hundred bytes).

    The 2n occurrences take a random order in which each span's first copy precedes its repeat, and sit at
    random points of the filler text, so a repeat's distance to its first copy is anywhere in the row."""
    n = rng.randint(2, 6)
    spans = [b" " + bytes(rng.choice(ALPHABET) for _ in range(rng.randint(8, 24))) + b" " for _ in range(n)]
    while len(spans) > 1 and 2 * sum(map(len, spans)) > width * 3 // 4:   # short rows: text stays a quarter or more
        spans.pop()
    n = len(spans)
    order = [i for i in range(n) for _ in range(2)]
    rng.shuffle(order)   # a span's earlier place in the order is its first copy
    filler_len = width - 2 * sum(map(len, spans))
    start = rng.randrange(0, len(text) - filler_len)
    filler = text[start:start + filler_len]
    cuts = sorted(rng.randrange(0, filler_len + 1) for _ in order)
    parts, prev = [], 0
    for cut, i in zip(cuts, order):
        parts += [filler[prev:cut], spans[i]]
        prev = cut
    parts.append(filler[prev:])
    return b"".join(parts)


def copy_row(kind: str, text: bytes, width: int, rng: random.Random) -> bytes:
    """A copy row of ``kind`` (one of ``SPANS``), ``width`` bytes long."""
    if kind == "random":
        return random_copy_row(text, width, rng)
    return essay_copy_row(text, width, rng)
