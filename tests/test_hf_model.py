"""HFModel on a real tiny Llama built locally: templates, exact token counts, batching, EOS, bad input."""
from __future__ import annotations

import json

import pytest
import torch

from longctx.models.base import Request
from longctx.models.errors import ModelError
from longctx.models.load import load_model


@pytest.fixture(scope="module")
def chat_model(tiny_llama_dir):
    m = load_model(f"hf:{tiny_llama_dir},device=cpu")
    yield m
    m.close()


@pytest.fixture(scope="module")
def base_model(tiny_llama_base_dir):
    m = load_model(f"hf:{tiny_llama_base_dir},device=cpu,batch_size=2")
    yield m
    m.close()


def _req(text: str, prefill: str | None = None, n: int = 6) -> Request:
    return Request([{"role": "user", "content": text}], prefill=prefill, max_new_tokens=n)


def test_chat_model_properties(chat_model, tiny_llama_dir):
    assert chat_model.template == "chat"
    assert chat_model.max_context == 2048  # max_position_embeddings of the config
    assert chat_model.tokenizer_spec == f"hf:{tiny_llama_dir.resolve()}"


def test_default_device_and_dtype(tiny_llama_dir):
    m = load_model(f"hf:{tiny_llama_dir}")
    cuda = torch.cuda.is_available()
    assert m.device == ("cuda" if cuda else "cpu")
    assert m.model.dtype == (torch.bfloat16 if cuda else torch.float32)
    assert m.model.device.type == m.device
    r = _req("the magic number is 5", "Answer:", n=4)
    c = m.generate([r, _req("blue " * 9, n=2)])
    assert c[0].prompt_tokens == m.count_prompt_tokens(r) and 1 <= c[0].output_tokens <= 4
    m.close()


def test_dtype_and_attention_options(tiny_llama_dir):
    m = load_model(f"hf:{tiny_llama_dir},device=cpu,dtype=bf16,attn_implementation=eager")
    assert m.model.dtype == torch.bfloat16 and m.model.config._attn_implementation == "eager"
    assert len(m.generate([_req("red", n=2)])) == 1
    m.close()


def test_chat_prompt_uses_the_tokenizers_own_template_then_prefill(chat_model):
    r = Request([{"role": "system", "content": "be brief"}, {"role": "user", "content": "the key is 42"}],
                prefill="The key is")
    expected = chat_model.tokenizer.apply_chat_template(r.messages, tokenize=False, add_generation_prompt=True)
    assert expected.endswith("<|assistant|>\n")
    ids = chat_model.encode(r)
    assert chat_model.tokenizer.decode(ids) == expected + "The key is"
    assert chat_model.count_prompt_tokens(r) == len(ids)
    assert ids.count(chat_model.tokenizer.bos_token_id) == 1  # the template's BOS, not a second one


def test_plain_template_for_a_base_model(base_model):
    assert base_model.template == "plain"
    r = Request([{"role": "user", "content": "context here"}, {"role": "user", "content": "question?"}],
                prefill=" Answer:")
    ids = base_model.encode(r)
    assert base_model.tokenizer.decode(ids) == "context here\n\nquestion? Answer:"  # RULER's base template
    assert base_model.count_prompt_tokens(r) == len(ids)


def test_generate_reports_exact_prompt_tokens_and_respects_budget(chat_model):
    reqs = [_req("find the magic number 7731", "Answer:", n=5), _req("red blue " * 30, n=3)]
    out = chat_model.generate(reqs)
    assert len(out) == 2
    for r, c in zip(reqs, out):
        assert c.prompt_tokens == chat_model.count_prompt_tokens(r)
        assert 1 <= c.output_tokens <= r.max_new_tokens
        assert "</s>" not in c.text


def test_batched_left_padded_generation_equals_one_at_a_time(base_model):
    reqs = [_req("the secret city is blue " * k, n=6) for k in (1, 7, 3, 12, 2)]
    batched = [c.text for c in base_model.generate(reqs)]  # batch_size=2: sorted by length, 3 groups
    single = [base_model.generate([r])[0].text for r in reqs]
    assert batched == single
    assert base_model.generate(reqs[:1]) == base_model.generate(reqs[:1])  # greedy: deterministic


def test_groups_respect_batch_size_and_token_budget(tiny_llama_base_dir):
    m = load_model(f"hf:{tiny_llama_base_dir},device=cpu,batch_size=3,max_batch_tokens=100")
    prompts = [[5] * n for n in (40, 10, 12, 30, 11, 90)]
    groups = m._groups(prompts, [4] * 6)
    assert groups == [[1, 4, 2], [3, 0], [5]]  # by length; 3 requests max; 2 x 44 <= 100 < 3 x 44
    reqs = [_req("the secret city is blue " * k, n=4) for k in (6, 1, 2, 5, 1, 15)]
    assert [c.text for c in m.generate(reqs)] == [m.generate([r])[0].text for r in reqs]
    m.close()


def test_decoding_is_plain_greedy_whatever_the_checkpoint_generation_config_says(tiny_llama_dir):
    m = load_model(f"hf:{tiny_llama_dir},device=cpu")
    reqs = [_req("the key is 123 and the key is 123", n=8)]
    before = m.generate(reqs)
    m.model.generation_config.do_sample, m.model.generation_config.temperature = True, 2.0  # would sample
    assert m.generate(reqs) == before
    m.close()


def test_generation_stops_at_eos(tiny_llama_dir):
    m = load_model(f"hf:{tiny_llama_dir},device=cpu")
    eos = m.tokenizer.eos_token_id
    head = torch.nn.Linear(m.model.lm_head.in_features, m.model.lm_head.out_features, bias=True)
    with torch.no_grad():  # a head whose argmax is EOS at every step
        head.weight.zero_()
        head.bias.zero_()
        head.bias[eos] = 1.0
    m.model.lm_head = head
    c = m.generate([_req("anything at all", n=10), _req("two", n=10)])
    m.close()
    assert all(x.text == "" and x.output_tokens == 1 for x in c)


def test_prompt_longer_than_max_context_is_an_error_not_a_truncation(tiny_llama_dir):
    m = load_model(f"hf:{tiny_llama_dir},device=cpu,max_context=64")
    assert m.max_context == 64
    with pytest.raises(ModelError, match="never truncated"):
        m.generate([_req("word " * 200)])
    m.close()


def test_bad_input(tmp_path, tiny_llama_dir):
    with pytest.raises(ModelError, match="does not exist"):
        load_model(f"hf:{tmp_path / 'nowhere'}")
    (tmp_path / "enc").mkdir()
    (tmp_path / "enc" / "config.json").write_text(json.dumps({"model_type": "vit"}))
    with pytest.raises(ModelError, match="not a causal language model"):
        load_model(f"hf:{tmp_path / 'enc'}")
    with pytest.raises(ModelError, match="no config.json"):
        load_model(f"hf:{tmp_path}")
    with pytest.raises(ModelError, match="unknown option.*temperature"):
        load_model(f"hf:{tiny_llama_dir},temperature=0.7")
    with pytest.raises(ModelError, match="dtype"):
        load_model(f"hf:{tiny_llama_dir},dtype=int3")
    with pytest.raises(ModelError, match="max_context"):
        load_model(f"hf:{tiny_llama_dir},max_context=lots")
