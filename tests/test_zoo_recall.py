"""Regression tests for why the zoo's recurrent mixers never learned needles (models/checkpoints/README.md):
the training rows hold the needle's value before its answer, and the answer bytes' loss reaches every
mixer's parameters through the training path."""
import pytest
import torch

from longctx.evals.train import OVERHEAD, answer_text, sample_row
from longctx.models.zoo import registry
from longctx.models.zoo.trainer import loss_fn
from longctx.tasks.cache import generate_samples
from longctx.tasks.tokenizers import ByteTokenizer

NON_LEARNERS = ("swa", "linear", "mamba1", "mamba2", "s4", "hyena", "performer", "hyper")


@pytest.mark.parametrize("task", ["niah_single_1", "niah_single_3", "niah_multivalue"])
def test_a_training_row_holds_the_needle_value_before_the_answer_and_fits_the_row(task):
    for s in generate_samples(task, 1024, 2, 0, ByteTokenizer(), split="train", overhead=OVERHEAD):
        ids, w = sample_row(s, 20.0)
        answer = answer_text(s).encode()
        assert len(ids) <= 1025, "the answer would be cut off the row"
        first = len(ids) - len(answer) - 1
        assert bytes(ids[first:-1]) == answer and all(x == 20.0 for x in w[first:])
        prompt = bytes(i for i in ids[:first] if i < 256).decode()
        assert all(f"is: {a}." in prompt for a in s.answers)


@pytest.mark.parametrize("arch", NON_LEARNERS)
def test_the_answer_loss_reaches_every_mixer_through_the_training_forward(arch):
    torch.manual_seed(0)
    model = registry.build(registry.config(arch, "tiny"))
    tokens = torch.randint(0, 256, (2, 41))
    weights = torch.zeros(tokens.shape)
    weights[:, -6:] = 20.0                        # only the answer bytes carry loss
    loss, answer_loss = loss_fn(model, tokens, weights)
    loss.backward()
    for i, block in enumerate(model.blocks):
        grads = [p.grad for p in block.mixer.parameters() if p.requires_grad]
        assert grads and all(g is not None for g in grads), f"layer {i}: a mixer parameter gets no gradient"
        assert sum(float(g.abs().sum()) for g in grads) > 0, f"layer {i}: the mixer's gradient is zero"
    assert torch.isfinite(answer_loss)
