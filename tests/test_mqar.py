"""MQAR: Zoology's token form (pairs, then every key queried once, only answers scored) and the
catalog's text form (word keys, number values, the vocabulary split)."""
import re

import numpy as np
import pytest

from longctx.tasks import vocab
from longctx.tasks.errors import TaskError
from longctx.tasks.mqar import IGNORE, mqar_tokens
from longctx.tasks.registry import TASKS
from longctx.tasks.tokenizers import ByteTokenizer


@pytest.mark.parametrize("seq_len,pairs", [(64, 4), (256, 16), (130, 32)], ids=lambda v: str(v))
def test_every_scored_position_is_a_query_whose_target_is_its_keys_value(seq_len, pairs):
    x, y = mqar_tokens(20, seq_len, pairs, 512, seed=3)
    assert x.shape == y.shape == (20, seq_len)
    for row, tgt in zip(x, y):
        kv = dict(zip(row[0:2 * pairs:2], row[1:2 * pairs:2]))
        assert len(kv) == pairs and all(k < 256 <= v for k, v in kv.items())
        scored = np.flatnonzero(tgt != IGNORE)
        assert len(scored) == pairs and (scored >= 2 * pairs).all()
        assert sorted(row[scored]) == sorted(kv) and all(kv[row[i]] == tgt[i] for i in scored)


def test_same_seed_same_batch_and_other_seed_other_batch():
    a, b, c = (mqar_tokens(4, 64, 4, 512, seed=s)[0] for s in (1, 1, 2))
    assert (a == b).all() and not (a == c).all()


def test_random_non_queries_fill_the_gaps_and_keep_the_targets():
    x0, y0 = mqar_tokens(8, 64, 4, 512, seed=0)
    x1, y1 = mqar_tokens(8, 64, 4, 512, seed=0, random_non_queries=True)
    assert (y0 == y1).all() and (x1[x0 != 0] == x0[x0 != 0]).all() and (x1 != 0).mean() > (x0 != 0).mean()


@pytest.mark.parametrize("seq_len,pairs,vocab_size", [(63, 4, 512), (64, 17, 512), (64, 4, 64)])
def test_impossible_shapes_are_a_task_error(seq_len, pairs, vocab_size):
    with pytest.raises(TaskError):
        mqar_tokens(2, seq_len, pairs, vocab_size, seed=0)


@pytest.mark.parametrize("split", ["eval", "train"])
def test_text_form_answers_are_the_values_listed_after_the_asked_keys(split):
    tok = ByteTokenizer()
    for s in TASKS["mqar"].generate(1024, 3, 0, tok, split=split):
        assert s.prompt_tokens + s.max_new_tokens <= 1024
        assert len(s.answers) == 4 and s.metric == "string_match_all"
        listed = dict(re.findall(r"(\w+): (\d{4})\.", s.input.split("\n")[1]))
        assert len(listed) == 16 and [listed[k] for k in s.meta["query_keys"]] == s.answers
        assert all(vocab.split_of(k) == split for k in listed) and all(vocab.split_of(v) == split for v in listed.values())
        assert ", ".join(s.meta["query_keys"]) in s.input[-200:]


def test_more_pairs_is_an_option_and_too_many_queries_is_refused():
    many = next(TASKS["mqar"].replace(num_pairs=64, num_queries=8).generate(2048, 1, 0, ByteTokenizer()))
    assert len(many.meta["keys"]) == 64 and len(many.answers) == 8
    with pytest.raises(TaskError):
        next(TASKS["mqar"].replace(num_queries=17).generate(1024, 1, 0, ByteTokenizer()))
