"""The vLLM adapter's option mapping and error paths (vLLM cannot be installed here), and the
lm-eval adapter against the real tiny Llama through lm-eval's own ``hf`` backend."""
from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass

import pytest

from longctx.models.base import Request
from longctx.models.errors import ModelError
from longctx.models.lm_eval_model import default_tokenizer_spec, gen_kwargs, lm_eval_args
from longctx.models.load import load_model
from longctx.models.spec import parse_spec
from longctx.models.vllm_engine import VLLMModel, engine_kwargs, sampling_kwargs

HAS_VLLM = importlib.util.find_spec("vllm") is not None
HAS_LM_EVAL = importlib.util.find_spec("lm_eval") is not None and importlib.util.find_spec("accelerate") is not None


def _req(text: str, prefill: str | None = "Answer:", n: int = 5) -> Request:
    return Request([{"role": "user", "content": text}], prefill=prefill, max_new_tokens=n)


def test_vllm_engine_kwargs_map_every_option(tiny_llama_dir):
    spec = parse_spec(f"vllm:{tiny_llama_dir},tensor_parallel_size=2,max_model_len=128k,dtype=bf16,"
                      "gpu_memory_utilization=0.85,enforce_eager=true,seed=3")
    path = str(tiny_llama_dir.resolve())
    assert engine_kwargs(spec) == {
        "model": path, "tokenizer": path, "trust_remote_code": False, "tensor_parallel_size": 2,
        "max_model_len": 131072, "dtype": "bfloat16", "gpu_memory_utilization": 0.85, "enforce_eager": True, "seed": 3,
    }
    defaults = engine_kwargs(parse_spec(f"vllm:{tiny_llama_dir}"), default_max_len=2048)
    assert defaults == {"model": path, "tokenizer": path, "trust_remote_code": False, "tensor_parallel_size": 1,
                        "max_model_len": 2048, "dtype": "auto"}
    assert sampling_kwargs(_req("x", n=7)) == {"temperature": 0.0, "top_p": 1.0, "max_tokens": 7,
                                               "skip_special_tokens": True}


@pytest.mark.parametrize("option, message", [
    ("gpu_memory_utilization=1.5", "must be in"),
    ("tensor_parallel_size=0", "tensor_parallel_size"),
    ("dtype=int8", "dtype"),
    ("max_model_len=huge", "max_model_len"),
    ("tp=2", "unknown option"),
    ("enforce_eager=maybe", "boolean"),
])
def test_vllm_bad_options(tiny_llama_dir, option, message):
    with pytest.raises(ModelError, match=message):
        engine_kwargs(parse_spec(f"vllm:{tiny_llama_dir},{option}"))
    with pytest.raises(ModelError, match=message):
        load_model(f"vllm:{tiny_llama_dir},{option}")  # refused before vLLM is imported


def test_vllm_missing_path():
    with pytest.raises(ModelError, match="does not exist"):
        load_model("vllm:/no/such/model")


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed here; this checks the message when it is not")
def test_vllm_not_installed_says_how_to_install(tiny_llama_dir):
    with pytest.raises(ModelError, match=r"pip install 'longctx-evals\[vllm\]'"):
        load_model(f"vllm:{tiny_llama_dir}")


def test_vllm_model_sends_token_ids_and_maps_outputs(tiny_llama_dir):
    """vLLM's engine cannot run here: a stand-in with vLLM's generate signature runs the tiny
    model, so what VLLMModel hands the engine (prompt ids, greedy params) and reads back is checked."""
    hf = load_model(f"hf:{tiny_llama_dir}")

    @dataclass
    class Params:
        temperature: float
        top_p: float
        max_tokens: int
        skip_special_tokens: bool

    @dataclass
    class Out:
        text: str
        token_ids: list[int]

    @dataclass
    class ReqOut:
        outputs: list[Out]

    class Engine:
        def generate(self, prompts, params, use_tqdm=True):
            assert all(p.temperature == 0.0 for p in params)
            done = hf.generate_ids([p["prompt_token_ids"] for p in prompts], [p.max_tokens for p in params])
            return [ReqOut([Out(c.text, [0] * c.output_tokens)]) for c in done]

    m = VLLMModel(f"vllm:{tiny_llama_dir}", hf.tokenizer, "chat", 2048, Engine(), Params)
    reqs = [_req("the key is 42"), _req("blue " * 20, None, 3)]
    assert [m.count_prompt_tokens(r) for r in reqs] == [hf.count_prompt_tokens(r) for r in reqs]
    assert [c.text for c in m.generate(reqs)] == [c.text for c in hf.generate(reqs)]
    with pytest.raises(ModelError, match="never truncated"):
        VLLMModel("v", hf.tokenizer, "chat", 16, Engine(), Params).generate([_req("word " * 40)])
    hf.close()


def test_lm_eval_argument_mapping(tiny_llama_dir):
    spec = parse_spec(f"lm-eval:hf,pretrained={tiny_llama_dir},dtype=float32,template=plain,max_context=512,batch_size=2")
    assert lm_eval_args(spec) == f"pretrained={tiny_llama_dir},dtype=float32,batch_size=2"
    assert default_tokenizer_spec(spec) == f"hf:{tiny_llama_dir.resolve()}"
    assert default_tokenizer_spec(parse_spec("lm-eval:openai-completions,model=x")) is None
    assert gen_kwargs(_req("x", n=9)) == {"until": [], "max_gen_toks": 9, "do_sample": False, "temperature": 0.0}


def test_lm_eval_not_installed_says_how_to_install(monkeypatch, tiny_llama_dir):
    # None in sys.modules makes `import lm_eval...` raise ImportError; every submodule an earlier test
    # imported is blocked too, since a cached `lm_eval.api.instance` would be returned without its parents
    for name in ["lm_eval", "lm_eval.api", "lm_eval.api.instance", "lm_eval.api.registry",
                 *(n for n in list(sys.modules) if n.startswith("lm_eval."))]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ModelError, match=r"pip install 'longctx-evals\[lm-eval\]'"):
        load_model(f"lm-eval:hf,pretrained={tiny_llama_dir}")


@pytest.mark.skipif(not HAS_LM_EVAL, reason="lm-eval (with accelerate) not installed: pip install 'longctx-evals[lm-eval]'")
def test_lm_eval_hf_backend_matches_our_hf_adapter(tiny_llama_dir):
    hf = load_model(f"hf:{tiny_llama_dir}")
    m = load_model(f"lm-eval:hf,pretrained={tiny_llama_dir},dtype=float32,device=cpu,batch_size=2")
    assert m.template == "chat" and m.max_context == 2048 and m.tokenizer_spec == f"hf:{tiny_llama_dir.resolve()}"
    reqs = [_req("the key is 42"), _req("red blue green " * 10, None, 3), _req("city", "The city is", 4)]
    assert [m.count_prompt_tokens(r) for r in reqs] == [hf.count_prompt_tokens(r) for r in reqs]
    assert [c.text for c in m.generate(reqs)] == [c.text for c in hf.generate(reqs)]
    with pytest.raises(ModelError, match="truncate it silently"):
        m.generate([_req("word " * 3000)])
    with pytest.raises(ModelError, match="did you mean 'hf'"):
        load_model("lm-eval:hff,pretrained=x")
    with pytest.raises(ModelError, match="does not exist"):
        load_model("lm-eval:hf,pretrained=/no/such/model")
    hf.close()
    m.close()
