"""The vocabulary split and the haystack sources: disjoint splits, deterministic varied essays,
RULER's noise, user files and datasets, and clear errors for empty or non-text files.

Run: pytest tests/test_haystack_vocab.py -q
"""
from __future__ import annotations

import random

import pytest

from longctx.tasks import vocab
from longctx.tasks.errors import TaskError
from longctx.tasks.haystack import NOISE, essay_haystack, file_haystack, load_haystack, noise_haystack
from longctx.tasks.tokenizers import ByteTokenizer


def test_word_lists_are_disjoint_between_splits():
    for get in (vocab.nouns, vocab.adjectives, vocab.verbs, vocab.words):
        ev, tr = set(get("eval")), set(get("train"))
        assert ev and tr and not ev & tr
    assert len(vocab.words("eval")) > 700 and len(vocab.words("train")) > 700


@pytest.mark.parametrize("kind", ["words", "numbers", "uuids"])
def test_drawn_values_belong_to_their_split(kind):
    for split, other in (("eval", "train"), ("train", "eval")):
        rng = random.Random(f"t|{kind}|{split}")
        vals = vocab.draw_distinct(kind, rng, split, 300)
        assert len(set(vals)) == 300
        assert all(vocab.split_of(v) == split for v in vals if kind != "words")
        if kind == "words":
            adj = set(vocab.adjectives(other)) | set(vocab.nouns(other))
            assert all(not set(v.split("-")) & adj for v in vals)


def test_value_shapes():
    rng = random.Random(0)
    assert len(vocab.number(rng, "eval")) == 7
    u = vocab.uuid4(rng, "eval")
    assert len(u) == 36 and u[14] == "4"
    with pytest.raises(TaskError):
        vocab.draw("colors", rng, "eval")
    with pytest.raises(TaskError):
        vocab.words("test")


def test_noise_is_rulers_sentence_block():
    hay = noise_haystack()
    assert "".join(hay.units).strip() == NOISE
    assert "".join(hay.slice(0, 10)).strip() == NOISE + "\n" + NOISE


def test_essay_is_deterministic_and_varied():
    a, b = essay_haystack(3, 2000), essay_haystack(3, 2000)
    assert a.units == b.units
    from longctx.tasks.haystack import _sentence

    again = [_sentence(random.Random("x")) for _ in range(2)]
    assert again == [_sentence(random.Random("x")) for _ in range(2)]
    assert len(set(a.units)) > 0.95 * len(a.units)
    assert len({u.split()[0] for u in a.units}) > 30  # sentences start in many ways
    assert essay_haystack(4, 200).units != a.units[:200]
    assert not any(ch.isdigit() for u in a.units for ch in u)  # no number can pass for a needle value


def test_take_and_tokens_agree_with_the_text():
    tok = ByteTokenizer()
    hay = noise_haystack()
    for start, budget in ((0, 1000), (3, 777), (4, 5)):
        k = hay.take(tok, budget, start)
        text = "".join(hay.slice(start, k))
        assert len(tok.encode(text)) == hay.tokens(tok, start, k) <= budget
        assert hay.tokens(tok, start, k + 1) > budget


def test_file_haystack_from_text_and_folder(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("First sentence here. Second one!\n\nA new paragraph? Yes.")
    hay = file_haystack(f)
    assert "".join(hay.units).strip() == f.read_text()
    assert len(hay.units) == 4
    (tmp_path / "b.txt").write_text("Another file.")
    assert len(load_haystack(str(tmp_path)).units) == 5


def test_file_haystack_from_a_saved_dataset(tmp_path):
    from datasets import Dataset

    Dataset.from_dict({"text": ["One essay. It ends.", "Two essays now."]}).save_to_disk(str(tmp_path / "ds"))
    hay = file_haystack(tmp_path / "ds")
    assert [u.strip() for u in hay.units] == ["One essay.", "It ends.", "Two essays now."]
    Dataset.from_dict({"body": ["x"]}).save_to_disk(str(tmp_path / "nodata"))
    with pytest.raises(TaskError, match="no 'text' column"):
        file_haystack(tmp_path / "nodata")


def test_bad_haystack_files(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    with pytest.raises(TaskError, match="empty"):
        file_haystack(empty)
    binary = tmp_path / "x.bin"
    binary.write_bytes(b"\x89PNG\x00\x01\x02")
    with pytest.raises(TaskError, match="not text"):
        file_haystack(binary)
    latin = tmp_path / "l.txt"
    latin.write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(TaskError, match="UTF-8"):
        file_haystack(latin)
    with pytest.raises(TaskError, match="does not exist"):
        load_haystack(str(tmp_path / "missing.txt"))
    with pytest.raises(TaskError, match="no .txt"):
        file_haystack(tmp_path / "sub" if (tmp_path / "sub").mkdir() is None else tmp_path)


def test_user_haystack_in_a_task(tmp_path):
    from longctx.tasks.ruler import RULER_TASKS

    f = tmp_path / "mine.txt"
    f.write_text(" ".join(f"Line number {w} is here." for w in vocab.words("eval")[:200]))
    s = next(RULER_TASKS["niah_single_2"].replace(haystack=str(f)).generate(2048, 1, 0, ByteTokenizer()))
    assert s.meta["haystack"].startswith("file:mine.txt@") and "Line number" in s.input
