"""``lm-eval:NAME[,ARGS]``: any model lm-evaluation-harness can load from its registry
(``hf``, ``vllm``, ``local-completions``, ...), driven through its ``generate_until``.

ARGS are lm-eval's own ``key=value`` model arguments (``pretrained=PATH,dtype=float32,
batch_size=4``), passed to ``create_from_arg_string`` unchanged, except three of ours:

* ``template=chat|plain``: default ``chat`` when the lm-eval model has a tokenizer with a chat
  template (rendered by lm-eval's ``apply_chat_template``, i.e. the tokenizer's own template),
  else ``plain`` (``models/prompting.py``). The assistant prefill is appended in both cases.
* ``max_context=N``: default lm-eval's ``max_length`` of the model.
* ``tokenizer=SPEC``: the tasks tokenizer spec that sizes prompts; default ``hf:PATH`` when
  NAME is ``hf`` and ``pretrained`` is a local directory (``hf:PATH/FILE.gguf`` with lm-eval's
  ``gguf_file=FILE.gguf``).

Decoding is greedy (``do_sample=False``, ``temperature=0``) and stops at the model's EOS.
lm-eval's HF backend left-truncates a context that does not fit ``max_length - max_new_tokens``;
this adapter refuses such a prompt with ModelError first when the model has ``tok_encode``
(the HF backends do), since a truncated prompt gives a wrong score.

lm-eval is an optional extra: ``pip install 'longctx-evals[lm-eval]'``.
"""
from __future__ import annotations

import difflib
from pathlib import Path

from longctx.models.base import Completion, Request
from longctx.models.errors import ModelError
from longctx.models.prompting import has_chat_template, parse_count, plain_prompt
from longctx.models.spec import ModelSpec

OURS = ("template", "max_context", "tokenizer")
INSTALL_HINT = "lm-eval is not installed: pip install 'longctx-evals[lm-eval]'"


def lm_eval_args(spec: ModelSpec) -> str:
    """lm-eval's model argument string: the spec's options minus ours, in spec order."""
    return ",".join(f"{k}={v}" for k, v in spec.options.items() if k not in OURS)


def gen_kwargs(request: Request) -> dict:
    """``generate_until`` arguments for one request: greedy, its token budget, EOS as the stop."""
    return {"until": [], "max_gen_toks": request.max_new_tokens, "do_sample": False, "temperature": 0.0}


def default_tokenizer_spec(spec: ModelSpec) -> str | None:
    if "tokenizer" in spec.options:
        return spec.options["tokenizer"]
    path = spec.options.get("pretrained")
    if spec.target == "hf" and path and Path(path).expanduser().is_dir():
        folder = Path(path).expanduser().resolve()
        gguf = spec.options.get("gguf_file")
        return f"hf:{folder / gguf}" if gguf else f"hf:{folder}"
    return None


def import_lm_eval():
    try:
        from lm_eval.api.instance import Instance
        from lm_eval.api.registry import get_model
    except ImportError:
        raise ModelError(INSTALL_HINT) from None
    return get_model, Instance


class LMEvalModel:
    """An lm-eval ``LM`` behind the ``Model`` protocol."""

    def __init__(self, spec: ModelSpec):
        get_model, self._Instance = import_lm_eval()
        self.spec = spec.raw
        path = spec.options.get("pretrained")
        if path and spec.target == "hf" and not Path(path).expanduser().exists():
            raise ModelError(f"model path {path!r} does not exist")
        try:
            cls = get_model(spec.target)
        except ImportError as e:
            raise ModelError(f"lm-eval's {spec.target!r} backend needs a package that is not installed ({e}); "
                             "pip install 'longctx-evals[lm-eval]'") from None
        except (ValueError, KeyError):
            from lm_eval.api.registry import model_registry

            names = sorted(model_registry.keys()) if hasattr(model_registry, "keys") else []
            close = difflib.get_close_matches(spec.target, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ModelError(f"lm-eval has no model named {spec.target!r}{hint}") from None
        try:
            self.lm = cls.create_from_arg_string(lm_eval_args(spec), {})
        except Exception as e:  # lm-eval raises whatever its backend raises
            raise ModelError(f"lm-eval could not load {spec.raw!r}: {type(e).__name__}: {e}") from None
        self.tokenizer_spec = default_tokenizer_spec(spec)
        chat = has_chat_template(getattr(self.lm, "tokenizer", None))
        self.template = spec.options.get("template") or ("chat" if chat else "plain")
        if self.template not in ("chat", "plain") or (self.template == "chat" and not chat):
            raise ModelError(f"option template={self.template!r}: use 'plain', or 'chat' with a model whose tokenizer has one")
        if "max_context" in spec.options:
            self.max_context = parse_count("max_context", spec.options["max_context"])
        elif isinstance(getattr(self.lm, "max_length", None), int):
            self.max_context = self.lm.max_length
        else:
            raise ModelError(f"lm-eval model {spec.target!r} does not say its max length; pass max_context=N")

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> "LMEvalModel":
        return cls(spec)

    def context(self, request: Request) -> str:
        """The context string handed to ``generate_until`` (template and prefill included)."""
        if self.template == "chat":
            return self.lm.apply_chat_template(request.messages) + (request.prefill or "")
        return plain_prompt(request)

    def count_prompt_tokens(self, request: Request) -> int:
        text = self.context(request)
        encode = getattr(self.lm, "tok_encode", None)
        return len(encode(text)) if encode else len(text.encode("utf-8"))

    def generate(self, batch: list[Request]) -> list[Completion]:
        contexts = [self.context(r) for r in batch]
        counts = [self.count_prompt_tokens(r) for r in batch]
        if hasattr(self.lm, "tok_encode"):
            for n, r in zip(counts, batch):
                if n + r.max_new_tokens > self.max_context:
                    raise ModelError(f"a prompt of {n} tokens plus {r.max_new_tokens} new tokens does not fit "
                                     f"max_context={self.max_context}; lm-eval would truncate it silently")
        instances = [self._Instance(request_type="generate_until", doc={}, arguments=(c, gen_kwargs(r)), idx=i)
                     for i, (c, r) in enumerate(zip(contexts, batch))]
        texts = self.lm.generate_until(instances, disable_tqdm=True)
        return [Completion(text=t, prompt_tokens=n) for t, n in zip(texts, counts)]

    def close(self) -> None:
        self.lm = None
