"""``vllm:PATH[,key=value...]``: vLLM's offline engine on a local model directory.

vLLM is an optional extra (``pip install 'longctx-evals[vllm]'``, CUDA only) and is imported
only when this backend is loaded. It is NOT exercised in this project's tests or CI (its
wheel cannot be installed there): the tests cover the option mapping (``engine_kwargs``,
``sampling_kwargs``, pure functions) and the error paths.

Options (anything else is an error): ``tensor_parallel_size=N``, ``max_model_len=N``
(``128k``; the runner passes the largest ctx of a run; default: the config's context
length), ``dtype=auto|bfloat16|float16|float32``, ``gpu_memory_utilization=0.9`` (0 < x <= 1),
``enforce_eager=true|false``, ``seed=N``, ``template=chat|plain``.

Prompts are rendered here with the model's own tokenizer (same rules as ``models/hf.py``:
the tokenizer's chat template plus the prefill, or the plain template) and handed to vLLM
as token ids, so ``count_prompt_tokens`` is exact. Decoding is greedy (temperature 0).
"""
from __future__ import annotations

from pathlib import Path

from longctx.models.base import Completion, Request
from longctx.models.errors import ModelError
from longctx.models.hf import DTYPES, config_max_context, load_causal_config, load_hf_tokenizer
from longctx.models.prompting import check_options, has_chat_template, parse_bool, parse_count, render
from longctx.models.spec import ModelSpec

OPTIONS = ("tensor_parallel_size", "max_model_len", "dtype", "gpu_memory_utilization", "enforce_eager", "seed",
           "template")
INSTALL_HINT = "vLLM is not installed: pip install 'longctx-evals[vllm]' (needs a CUDA machine)"


def engine_kwargs(spec: ModelSpec, default_max_len: int | None = None) -> dict:
    """Spec options -> keyword arguments of ``vllm.LLM`` (``template`` is ours and left out)."""
    o = spec.options
    check_options(spec.raw, o, OPTIONS)
    path = str(Path(spec.target).expanduser().resolve())
    kw: dict = {"model": path, "tokenizer": path, "trust_remote_code": False,
                "tensor_parallel_size": parse_count("tensor_parallel_size", o.get("tensor_parallel_size", "1"))}
    if "max_model_len" in o:
        kw["max_model_len"] = parse_count("max_model_len", o["max_model_len"])
    elif default_max_len:
        kw["max_model_len"] = default_max_len
    dtype = o.get("dtype", "auto").lower()
    if dtype != "auto" and dtype not in DTYPES:
        raise ModelError(f"option dtype={o['dtype']!r} is not auto, bfloat16, float16 or float32")
    kw["dtype"] = DTYPES.get(dtype, "auto")
    if "gpu_memory_utilization" in o:
        try:
            util = float(o["gpu_memory_utilization"])
        except ValueError:
            util = -1.0
        if not 0 < util <= 1:
            raise ModelError(f"option gpu_memory_utilization={o['gpu_memory_utilization']!r} must be in (0, 1]")
        kw["gpu_memory_utilization"] = util
    if "enforce_eager" in o:
        kw["enforce_eager"] = parse_bool("enforce_eager", o["enforce_eager"])
    if "seed" in o:
        if not o["seed"].isdigit():
            raise ModelError(f"option seed={o['seed']!r} is not a non-negative integer")
        kw["seed"] = int(o["seed"])
    return kw


def sampling_kwargs(request: Request) -> dict:
    """Keyword arguments of ``vllm.SamplingParams`` for one request: greedy, its token budget."""
    return {"temperature": 0.0, "top_p": 1.0, "max_tokens": request.max_new_tokens, "skip_special_tokens": True}


def import_vllm():
    try:
        import vllm
    except ImportError:
        raise ModelError(INSTALL_HINT) from None
    return vllm


class VLLMModel:
    """vLLM's ``LLM`` engine behind the ``Model`` protocol; prompts go in as token ids."""

    def __init__(self, spec: str, tokenizer, template: str, max_context: int, llm, sampling_params_cls):
        self.spec, self.tokenizer, self.template, self.max_context = spec, tokenizer, template, max_context
        self.tokenizer_spec = f"hf:{Path(tokenizer.name_or_path).resolve()}"
        self.llm, self._sampling = llm, sampling_params_cls

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> "VLLMModel":
        path = Path(spec.target).expanduser().resolve()
        config = load_causal_config(path)
        kwargs = engine_kwargs(spec, default_max_len=config_max_context(config))
        tokenizer = load_hf_tokenizer(path)
        template = spec.options.get("template") or ("chat" if has_chat_template(tokenizer) else "plain")
        if template not in ("chat", "plain") or (template == "chat" and not has_chat_template(tokenizer)):
            raise ModelError(f"option template={template!r}: use 'plain', or 'chat' with a tokenizer that has one")
        if "max_model_len" not in kwargs:
            raise ModelError(f"the config in {path} declares no context length; pass max_model_len=N in the spec")
        vllm = import_vllm()
        try:
            llm = vllm.LLM(**kwargs)
        except Exception as e:
            raise ModelError(f"vLLM could not start on {path}: {e}") from None
        return cls(spec.raw, tokenizer, template, kwargs["max_model_len"], llm, vllm.SamplingParams)

    def encode(self, request: Request) -> list[int]:
        r = render(self.tokenizer, request, self.template)
        return self.tokenizer(r.text, add_special_tokens=r.add_special_tokens)["input_ids"]

    def count_prompt_tokens(self, request: Request) -> int:
        return len(self.encode(request))

    def generate(self, batch: list[Request]) -> list[Completion]:
        prompts = [{"prompt_token_ids": self.encode(r)} for r in batch]
        for p in prompts:
            if len(p["prompt_token_ids"]) > self.max_context:
                raise ModelError(f"a prompt of {len(p['prompt_token_ids'])} tokens does not fit "
                                 f"max_model_len={self.max_context}; prompts are never truncated")
        params = [self._sampling(**sampling_kwargs(r)) for r in batch]
        outs = self.llm.generate(prompts, params, use_tqdm=False)
        return [Completion(text=o.outputs[0].text, prompt_tokens=len(p["prompt_token_ids"]),
                           output_tokens=len(o.outputs[0].token_ids)) for o, p in zip(outs, prompts)]

    def close(self) -> None:
        self.llm = None
