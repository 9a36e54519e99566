"""Results files survive torn writes; context lengths parse the way users write them."""
import json

import pytest

from longctx.evals.ctx import fmt_ctx, parse_ctx
from longctx.evals.errors import EvalError
from longctx.evals.store import RecordWriter, model_slug, read_records


def test_ctx_forms():
    assert parse_ctx("128k") == [131072]
    assert parse_ctx("1m") == [1048576]
    assert parse_ctx("4k-32k") == [4096, 8192, 16384, 32768]
    assert parse_ctx("8k,4k,4K,5000") == [4096, 5000, 8192]
    assert fmt_ctx(131072) == "128k" and fmt_ctx(1048576) == "1m" and fmt_ctx(5000) == "5000"


@pytest.mark.parametrize("bad", ["128q", "0", "-4k", "", "4k-1k", "k"])
def test_bad_ctx_is_a_clear_error(bad):
    with pytest.raises(EvalError, match="context"):
        parse_ctx(bad)


def test_torn_last_line_is_dropped_and_cut_off(tmp_path):
    path = tmp_path / "samples.jsonl"
    w = RecordWriter(path)
    for i in range(3):
        w.write({"hash": str(i), "score": 1.0})
    w.close()
    with path.open("ab") as f:
        f.write(b'{"hash": "3", "sco')  # a write killed half-way
    assert [r["hash"] for r in read_records(path)] == ["0", "1", "2"]
    assert path.read_bytes().endswith(b"}\n")  # repaired: the next append starts on a fresh line
    w = RecordWriter(path)
    w.write({"hash": "3", "score": 0.0})
    w.close()
    assert [r["hash"] for r in read_records(path)] == ["0", "1", "2", "3"]


def test_corrupt_line_in_the_middle_is_refused_with_its_line_number(tmp_path):
    path = tmp_path / "samples.jsonl"
    path.write_text(json.dumps({"hash": "0"}) + "\nGARBAGE\n" + json.dumps({"hash": "2"}) + "\n")
    with pytest.raises(EvalError, match=r"samples.jsonl:2"):
        read_records(path)


def test_model_slug_is_a_safe_folder_name():
    assert model_slug("hf:/models/llama,attn=ssa:topk=8") == "hf_models_llama_attn_ssa_topk_8"
    assert "/" not in model_slug("openai:gpt@http://127.0.0.1:8000/v1")
