"""``benchmarks/zoo/recall_diagnosis.py reach``: its rows locate the needle's value and the answer, and the gradient it
reads is causal (nothing after the first scored position moves the answer's loss)."""
from __future__ import annotations

import pytest
import torch

from benchmarks.zoo.recall_diagnosis import gradient_by_position, reach_rows
from longctx.models.zoo import registry
from longctx.models.zoo.trunk import EOS


def test_rows_point_at_the_needle_value_and_the_answer_bytes():
    for ids, scored, value in reach_rows(3):
        text = bytes(i if i < 256 else 0 for i in ids.tolist())
        answer = text[scored.start + 1:scored.stop]   # the scored targets: these bytes, then EOS
        assert answer.endswith(b".") and answer.strip(b" .").isdigit() and ids[scored.stop] == EOS
        assert text[value] == answer.strip(b" .")
        assert value.stop < scored.start   # the needle is in the prompt, before the question


@pytest.mark.parametrize("arch", ["dense", "mamba2", "linear"])
def test_the_answer_gradient_is_causal_and_reaches_the_prompt(arch):
    torch.manual_seed(0)
    model = registry.build(registry.config(arch, "tiny"))
    ids, scored, _ = reach_rows(1)[0]
    g = gradient_by_position(model, ids, scored)
    assert g.shape == (ids.numel() - 1,)
    assert torch.all(g[scored.stop:] == 0)
    assert g[:scored.start].sum() > 0
    assert all(p.grad is None for p in model.parameters())   # the probe leaves no gradient behind
