"""The three tokenizer kinds size prompts exactly: byte, a local Hugging Face BPE, and a tiktoken
encoding read from a local ``.tiktoken`` file (built here: nothing is downloaded)."""
import base64

import pytest

from longctx.tasks.cache import generate_samples
from longctx.tasks.errors import TaskError
from longctx.tasks.sizing import tolerance
from longctx.tasks.tokenizers import load_tokenizer

MERGES = ["th", "he", "in", "er", "an", " t", " a", "the", " the", "re", "on", "at", "en", "nd", "ing"]


@pytest.fixture()
def tiktoken_file(tmp_path):
    """A valid byte-level BPE rank file: the 256 bytes, then merges whose halves already exist."""
    ranks = [bytes([b]) for b in range(256)]
    for m in MERGES:
        tok = m.encode()
        assert any(tok[:i] in ranks and tok[i:] in ranks for i in range(1, len(tok)))
        ranks.append(tok)
    path = tmp_path / "tiny.tiktoken"
    path.write_text("".join(f"{base64.b64encode(t).decode()} {i}\n" for i, t in enumerate(ranks)))
    return path


def test_tiktoken_file_round_trips_and_merges(tiktoken_file):
    pytest.importorskip("tiktoken")
    tok = load_tokenizer(f"tiktoken:{tiktoken_file}")
    text = "the thing in the garden: 1234567"
    ids = tok.encode(text)
    assert tok.decode(ids) == text and len(ids) < len(text.encode())  # merges applied
    assert tok.name == "tiktoken:tiny"


@pytest.mark.parametrize("task", ["niah_single_1", "vt", "decay_distance"])
def test_tiktoken_sized_prompts_are_exact_and_under_budget(tiktoken_file, task, tmp_path, monkeypatch):
    pytest.importorskip("tiktoken")
    monkeypatch.setenv("EVALS_CACHE", str(tmp_path / "cache"))
    tok = load_tokenizer(f"tiktoken:{tiktoken_file}")
    for s in generate_samples(task, 4096, 2, 0, tok):
        real = len(tok.encode(s.input + s.answer_prefix))
        target = 4096 - s.max_new_tokens
        slack = max(tolerance(target), s.meta.get("fill_unit_tokens", 0))  # whole units only, as RULER
        assert real == s.prompt_tokens and target - slack <= real <= target


def test_bad_tokenizer_specs_are_clear(tmp_path):
    with pytest.raises(TaskError, match="does not exist"):
        load_tokenizer("hf:/no/such/dir")
    with pytest.raises(TaskError, match="does not exist"):
        load_tokenizer(f"tiktoken:{tmp_path / 'missing.tiktoken'}")
    with pytest.raises(TaskError, match="unknown tokenizer spec"):
        load_tokenizer("sentencepiece:x")
