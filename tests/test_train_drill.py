"""Recall drill rows: exact length, every answer findable in the row's own needles, training split only."""
from __future__ import annotations

import random
import re

import pytest

from longctx.evals.train_drill import drill_row
from longctx.models.zoo.trunk import BOS, EOS
from longctx.tasks import vocab


@pytest.mark.parametrize("width", [513, 1025, 2049])
def test_every_answer_is_the_value_of_its_key_among_the_rows_needles(width):
    rng = random.Random(width)
    for _ in range(50):
        ids, weights = drill_row(width, rng, 20.0)
        assert len(ids) == len(weights) == width and ids[0] == BOS
        text = bytes(i for i in ids if i < 256).decode()
        needles = dict(re.findall(r"One of the special magic \w+ for ([\w-]+) is: ([\w-]+)\.", text))
        asked = re.findall(r"The special magic \w+ for ([\w-]+) mentioned in the provided text is ([\w-]+)\.", text)
        assert asked and len(needles) >= len(asked)
        for key, value in asked:
            assert needles[key] == value
        answer_ids = [i for i, w in zip(ids, weights) if w == 20.0]
        assert bytes(i for i in answer_ids if i < 256).decode() == "".join(f" {v}." for _, v in asked)
        assert answer_ids.count(EOS) == len(asked) and set(weights) <= {1.0, 20.0}


def test_keys_and_values_come_from_the_training_split():
    ids, _ = drill_row(2049, random.Random(3), 20.0)
    text = bytes(i for i in ids if i < 256).decode()
    for key, value in re.findall(r"for ([\w-]+) is: ([\w-]+)\.", text):
        assert vocab.split_of(value) == "train"
        adjective, noun = key.split("-")
        assert adjective in vocab.adjectives("train") and noun in vocab.nouns("train")


def test_too_short_a_row_is_refused():
    with pytest.raises(ValueError, match="drill row"):
        drill_row(200, random.Random(0), 20.0)
