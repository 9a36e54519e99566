"""Recall drill rows for ``evals train``: many needles, then several questions answered in one row.

A RULER needle row teaches one look-up per row: about ten answer bytes among a thousand. A drill row
has the same surface form as the single-needle tasks (their header, needle sentence, question and
answer prefix) but holds 2 to 8 needles with different keys in noise or essay text and asks about as
many of them as fit, in random order: the first with the task's question and answer prefix, the rest
with the answer prefix alone, each followed by its answer and EOS. Every answer is a look-up at its
own distance and the other needles are distractors, so a row trains several retrievals (multi-query
associative recall, in RULER's words). Keys and values come from the training split.
"""
from __future__ import annotations

import random

from longctx.tasks import vocab
from longctx.tasks.haystack import essay_haystack, noise_haystack
from longctx.tasks.niah import NEEDLE, wording

KINDS = ("numbers", "numbers", "uuids")  # value kinds drawn (RULER's single-needle tasks: numbers twice, uuids once)


def drill_row(width: int, rng: random.Random, answer_weight: float) -> tuple[list[int], list[float]]:
    """Token ids (BOS, bytes, EOS after each answer; exactly ``width`` of them) and each one's loss
    weight as a target: answers ``answer_weight``, other text 1."""
    from longctx.models.zoo.trunk import BOS, EOS

    label = rng.choice(KINDS)
    hay = noise_haystack() if rng.random() < 0.5 else essay_haystack(0)
    head = wording(label, "", True)[0].encode()  # the single-needle tasks' header, as RULER words it
    n = rng.randint(2, 8)
    keys = vocab.draw_distinct("words", rng, "train", n)
    values = vocab.draw_distinct(label, rng, "train", n)  # type: ignore[arg-type]
    needles = [(" " + NEEDLE.format(label=label, key=k, value=v)).encode() for k, v in zip(keys, values)]
    # the first question is the task's own (question, then answer prefix, as the plain template joins them);
    # later ones are answer prefixes only, each on a new line
    first = [wording(label, k, True)[1].encode() for k in keys]  # "\nWhat is the special magic ...?"
    asks = [wording(label, k, True)[2].encode() for k in keys]
    answers = [f" {v}.".encode() for v in values]
    room = width - 1 - len(head) - width // 16  # a sixteenth of the row at least is haystack
    while n > 1 and sum(map(len, needles[:n])) + max(map(len, first)) + max(map(len, asks)) + max(map(len, answers)) + 1 > room:
        n -= 1
    room -= sum(map(len, needles[:n]))
    order = rng.sample(range(n), k=n)
    qa: list[tuple[bytes, bytes]] = []
    for i in order:
        q = first[i] + asks[i] if not qa else b"\n" + asks[i]
        if len(q) + len(answers[i]) + 1 > room:
            break
        qa.append((q, answers[i]))
        room -= len(q) + len(answers[i]) + 1
    if not qa:
        raise ValueError(f"a drill row needs more than {width} tokens")
    needles, room = needles[:n], room + width // 16
    start, filler = rng.randrange(len(hay.units)), []
    while room > 0:  # haystack sentences, the last one cut to fit exactly
        s = hay.units[(start + len(filler)) % len(hay.units)].encode()[:room]
        filler.append(s)
        room -= len(s)
    slots = sorted(rng.choices(range(len(filler) + 1), k=n))  # needle i goes before filler sentence slots[i]
    body = b"".join(b"".join(needles[i] for i, s in enumerate(slots) if s == j) + sentence
                    for j, sentence in enumerate([*filler, b""]))
    ids, weights = [BOS, *head, *body], [1.0] * (1 + len(head) + len(body))
    for q, a in qa:
        ids += [*q, *a, EOS]
        weights += [1.0] * len(q) + [answer_weight] * (len(a) + 1)
    return ids, weights

