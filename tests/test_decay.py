"""Decay probes: exact token distances (re-tokenized), the depth grid, distractors that never equal true
keys, token budgets for byte and BPE tokenizers, value kinds, splits and determinism across processes."""
from __future__ import annotations

import re

import pytest
from small_bpe import train_small_bpe

from longctx.tasks import vocab
from longctx.tasks.decay import (
    DECAY_TASKS,
    DECAY_VARIANTS,
    DecayConfig,
    DecayTask,
    distance_grid,
    fact_text,
)
from longctx.tasks.errors import TaskError
from longctx.tasks.ruler import RULER_TASKS
from longctx.tasks.sizing import tolerance
from longctx.tasks.tokenizers import ByteTokenizer, load_tokenizer


@pytest.fixture(scope="module")
def bpe(tmp_path_factory):
    return load_tokenizer(f"hf:{train_small_bpe(tmp_path_factory.mktemp('bpe') / 'tokenizer.json')}")


@pytest.fixture(scope="module", params=["byte", "bpe"])
def tok(request, bpe):
    return ByteTokenizer() if request.param == "byte" else bpe


def _index_of(tok, text: str, offset: int) -> int:
    """Token index of the token that starts at character ``offset``, found from the head (independent
    of the generator's tail-based method) and checked against the full tokenization."""
    full, head = tok.encode(text), tok.encode(text[:offset])
    assert full[: len(head)] == head, "the boundary is not a token boundary"
    return len(head)


def _check_budget(task, s, tok, ctx: int, overhead: int) -> None:
    assert s.prompt_tokens == len(tok.encode(s.input + s.answer_prefix))  # the Sample contract
    target = ctx - overhead - task.answer_budget
    assert target - tolerance(target) <= s.prompt_tokens <= target
    assert s.max_new_tokens == task.answer_budget and s.metric == "string_match_all"


@pytest.mark.parametrize("ctx", [2048, 4096])
def test_distance_is_exact_and_follows_the_grid(ctx, tok):
    task = DECAY_TASKS["decay_distance"]
    samples = list(task.generate(ctx, 10, 0, tok, overhead=5))
    for s in samples:
        _check_budget(task, s, tok, ctx, 5)
        (fact,) = s.meta["facts"]
        line = " " + fact_text(fact["key"], fact["value"], "numbers")
        assert s.input.count(line) == 1 and s.answers == [fact["value"]]
        f_at = _index_of(tok, s.input, s.input.index(line))
        q_at = _index_of(tok, s.input, s.input.rindex("\n What is the special magic number for") + 1)
        assert s.meta["distance"] == q_at - f_at == s.meta["target_distance"]  # exact, by re-tokenizing
        assert s.meta["fact_positions"] == [f_at] and s.meta["question_position"] == q_at
        assert tok.decode(tok.encode(s.input)[f_at:q_at]).strip().startswith("One of the special magic numbers")
        nearest = len(tok.encode(line + "\n What")) - len(tok.encode(" What"))  # the fact right before the question
        step = len(tok.encode(" a"))  # the least filler: one character after a space
        assert s.meta["unmet_distances"] == [g for g in (16, 32, 64, 128) if g < nearest + step and g != nearest]
    # sample i aims at point i of the log grid (cyclically), or the nearest point above it its fact can reach
    for i, s in enumerate(samples[:4]):
        aim = (16, 32, 64, 128)[i]
        assert s.meta["target_distance"] == min(g for g in (16, 32, 64, 128, 256) if g >= aim
                                                and g not in s.meta["unmet_distances"])


def test_distance_grid_is_logarithmic():
    assert distance_grid(16, 300) == [16, 32, 64, 128, 256, 300]
    assert distance_grid(16, 16) == [16]


@pytest.mark.parametrize("ctx", [2048, 8192])
def test_depth_grid(ctx, tok):
    task = DECAY_TASKS["decay_depth"]
    samples = list(task.generate(ctx, 11, 1, tok))
    assert [s.meta["depth"] for s in samples] == list(range(0, 101, 10))
    for s in samples:
        _check_budget(task, s, tok, ctx, 0)
        assert abs(s.meta["depth_measured"] - s.meta["depth"]) <= 3
        (fact,) = s.meta["facts"]
        line = " " + fact_text(fact["key"], fact["value"], "numbers")
        assert s.meta["fact_positions"] == [_index_of(tok, s.input, s.input.index(line))]


def test_multifact_distractors_and_placement(tok):
    task = DECAY_TASKS["decay_multifact"]
    for s in task.generate(4096, 6, 2, tok):
        _check_budget(task, s, tok, 4096, 0)
        facts = s.meta["facts"]
        true = {f["key"]: f["value"] for f in facts if f["true"]}
        fake = {f["key"]: f["value"] for f in facts if not f["true"]}
        assert len(true) == 4 and len(fake) == 4
        assert not set(true) & set(fake) and not set(true.values()) & set(fake.values())
        for key in fake:  # one word off a true key
            adj, noun = key.split("-", 1)
            assert any((a == adj) != (n == noun) for a, n in (k.split("-", 1) for k in true))
        for f in facts:
            line = " " + fact_text(f["key"], f["value"], "numbers")
            assert s.input.count(line) == 1
            assert f["position"] == _index_of(tok, s.input, s.input.index(line))
            assert f["distance"] == s.meta["question_position"] - f["position"]
        # all facts sit together just before the question
        assert max(f["distance"] for f in facts) < 0.25 * s.prompt_tokens
        (key,) = s.meta["query_keys"]
        assert key in true and s.answers == [true[key]]
        assert f"for {key} mentioned" in s.input.rsplit("\n", 1)[1] and key in s.answer_prefix


def test_multifact_all_query_asks_for_every_true_key():
    task = DecayTask("decay_multifact_all", DecayConfig("multifact", query="all"))
    s = next(task.generate(4096, 1, 0, ByteTokenizer()))
    true = [f for f in s.meta["facts"] if f["true"]]
    assert sorted(s.answers) == sorted(f["value"] for f in true) and len(s.answers) == 4
    assert all(f["key"] in s.input.rsplit("\n", 1)[1] for f in true)


@pytest.mark.parametrize("kind,pattern", [("numbers", r"\d{7}"), ("uuids", r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"),
                                          ("words", r"[a-z]+-[a-z]+")])
def test_value_kinds(kind, pattern):
    for name in ("decay_distance", "decay_depth", "decay_multifact"):
        s = next(DECAY_VARIANTS[f"{name}_{kind}"].generate(4096, 1, 0, ByteTokenizer()))
        assert all(re.fullmatch(pattern, a) for a in s.answers), s.answers
        assert f"special magic {kind}" in s.input


def test_train_split_keys_and_values():
    for s in DECAY_TASKS["decay_multifact"].generate(4096, 2, 0, ByteTokenizer(), split="train"):
        for f in s.meta["facts"]:
            adj, noun = f["key"].split("-", 1)
            assert adj in vocab.adjectives("train") and noun in vocab.nouns("train")
            assert vocab.split_of(f["value"]) == "train"
    with pytest.raises(TaskError):
        next(DECAY_TASKS["decay_distance"].generate(4096, 1, 0, ByteTokenizer(), split="test"))


def test_too_small_ctx_is_a_task_error():
    with pytest.raises(TaskError, match="too small"):
        next(DECAY_TASKS["decay_multifact"].generate(512, 1, 0, ByteTokenizer()))


def test_probes_ask_in_niah_words():
    """A probe differs from niah_single_1 only in where the fact sits: same header, needle, question and
    answer prefix, so a model that answers NIAH is not scored down by the probe's phrasing."""
    from longctx.tasks.niah import NEEDLE

    for name in ("decay_distance", "decay_depth"):
        s = next(DECAY_TASKS[name].generate(2048, 1, 0, ByteTokenizer()))
        niah = next(RULER_TASKS["niah_single_1"].generate(2048, 1, 0, ByteTokenizer()))
        (fact,) = s.meta["facts"]
        assert s.input.startswith(niah.input.split("\n")[0] + "\n")  # "A special magic number is hidden ..."
        assert NEEDLE.format(label="numbers", key=fact["key"], value=fact["value"]) in s.input
        key = niah.meta["query_keys"][0]
        assert s.input.endswith(niah.input.rsplit("\n", 1)[1].replace(key, fact["key"]))
        assert s.answer_prefix == niah.answer_prefix.replace(key, fact["key"])
