"""``hf:PATH[,key=value...]``: a Hugging Face transformers causal LM read from a local directory
or a GGUF file (``hf:/models/smollm2.Q4_1.gguf``: config, tokenizer and weights come from the file,
dequantized on load; see ``models/gguf.py``).

Nothing is fetched from the hub (``local_files_only``). Options:

* ``device=cpu|cuda|cuda:1|mps``: default ``cuda`` when available, else ``cpu``.
* ``dtype=bfloat16|float16|float32``: default bfloat16 on CUDA (float16 where bf16 is not
  supported), float32 elsewhere.
* ``max_context=N`` (``8192``, ``128k``): default from the config (``max_position_embeddings``,
  ``n_positions``, ``max_seq_len``, ``seq_length``, ``max_sequence_length``, in that order).
* ``attn_implementation=sdpa|eager|flash_attention_2|...``: passed to ``from_pretrained``.
* ``attn=METHOD[:key=value...]``: an in-repo sparse attention registered with transformers
  (dense, swa, blocks, dsa, ssa, hyper; see ``models/attn_swap.py``), instead of attn_implementation.
* ``batch_size=N``: requests per forward batch (default 8) and ``max_batch_tokens=N``
  (default 131072): a batch is sorted by prompt length and cut into groups of at most
  ``batch_size`` requests whose padded prompt-plus-budget tokens stay within
  ``max_batch_tokens`` (a single request always runs), so padding stays small and a
  128K prompt runs alone; padding is on the left.
* ``template=chat|plain``: default ``chat`` when the tokenizer has a chat template, else ``plain``.

Prompt rules (see ``models/prompting.py``): ``chat`` renders the tokenizer's own chat template
with the generation prompt and appends the assistant prefill verbatim after it; ``plain``
joins the message contents with a blank line (``"\\n\\n"``) and, when there is a prefill,
appends ``"\\n" + prefill``. Decoding is greedy and stops at the tokenizer's / generation
config's EOS tokens; the EOS is not part of the returned text. Sampling settings a checkpoint's
``generation_config.json`` may carry (temperature, top_p, repetition_penalty, ...) are not used:
decoding is plain greedy. A prompt longer than
``max_context`` raises ModelError (never truncated); the generation budget is capped at
``max_context - prompt_tokens``.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from longctx.models.base import Completion, Request
from longctx.models.errors import ModelError
from longctx.models.gguf import is_gguf, source
from longctx.models.prompting import check_options, has_chat_template, parse_count, render
from longctx.models.spec import ModelSpec

if TYPE_CHECKING:  # imported lazily at run time: models.attn_swap imports torch
    from longctx.models.attn_swap import SparseConfig

OPTIONS = ("device", "dtype", "max_context", "attn_implementation", "attn", "batch_size", "max_batch_tokens", "template")
CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "max_sequence_length")
DTYPES = {"bfloat16": "bfloat16", "bf16": "bfloat16", "float16": "float16", "fp16": "float16",
          "half": "float16", "float32": "float32", "fp32": "float32", "float": "float32"}


@dataclass(frozen=True)
class HFOptions:
    device: str
    dtype: str
    max_context: int | None
    attn_implementation: str | None
    attn: SparseConfig | None
    batch_size: int
    max_batch_tokens: int
    template: str | None


def parse_options(spec: ModelSpec) -> HFOptions:
    """Spec options -> HFOptions, with the device and dtype defaults filled in."""
    import torch

    from longctx.models.attn_swap import parse_attn

    o = spec.options
    check_options(spec.raw, o, OPTIONS)
    device = o.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
    if "dtype" in o:
        if o["dtype"].lower() not in DTYPES:
            raise ModelError(f"option dtype={o['dtype']!r} is not one of {', '.join(sorted(set(DTYPES.values())))}")
        dtype = DTYPES[o["dtype"].lower()]
    elif device.startswith("cuda"):
        dtype = "bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "float16"
    else:
        dtype = "float32"
    if "attn" in o and "attn_implementation" in o:
        raise ModelError("give either attn=METHOD (an in-repo sparse attention) or attn_implementation=NAME, not both")
    template = o.get("template")
    if template not in (None, "chat", "plain"):
        raise ModelError(f"option template={template!r} must be 'chat' or 'plain'")
    return HFOptions(
        device=device,
        dtype=dtype,
        max_context=parse_count("max_context", o["max_context"]) if "max_context" in o else None,
        attn_implementation=o.get("attn_implementation"),
        attn=parse_attn(o["attn"]) if "attn" in o else None,
        batch_size=parse_count("batch_size", o["batch_size"]) if "batch_size" in o else 8,
        max_batch_tokens=parse_count("max_batch_tokens", o["max_batch_tokens"]) if "max_batch_tokens" in o else 131072,
        template=template,
    )


def config_max_context(config) -> int | None:
    """The context length a transformers config declares (text sub-config included), or None."""
    for cfg in (config, getattr(config, "text_config", None)):
        for key in CONTEXT_KEYS:
            value = getattr(cfg, key, None) if cfg is not None else None
            if isinstance(value, int) and value > 0:
                return value
    return None


def load_causal_config(path: Path):
    """The AutoConfig at ``path``; ModelError if it is missing or not a causal LM."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if not path.exists():
        raise ModelError(f"model path {str(path)!r} does not exist")
    if not is_gguf(path) and not (path / "config.json").is_file():
        raise ModelError(f"{path} holds no config.json; give the directory of a saved transformers model or a .gguf file")
    where, kw = source(path)
    try:
        config = AutoConfig.from_pretrained(where, local_files_only=True, **kw)
    except Exception as e:
        raise ModelError(f"cannot read the transformers config in {path}: {e}") from None
    if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ModelError(
            f"{path} holds a {config.model_type!r} model, which is not a causal language model "
            "transformers can generate with (AutoModelForCausalLM does not know it)"
        )
    return config


def load_hf_tokenizer(path: Path):
    """The model's own tokenizer from ``path`` (offline), padding on the left, a pad token set."""
    from transformers import AutoTokenizer

    where, kw = source(path)
    try:
        tok = AutoTokenizer.from_pretrained(where, local_files_only=True, **kw)
    except Exception as e:
        raise ModelError(f"cannot load the tokenizer in {path}: {e}") from None
    tok.padding_side = "left"
    if tok.pad_token_id is None:
        if tok.eos_token_id is None:
            raise ModelError(f"the tokenizer in {path} has neither a pad nor an EOS token to pad batches with")
        tok.pad_token = tok.eos_token
    return tok


class HFModel:
    """A local transformers causal LM behind the ``Model`` protocol (greedy, batched, left-padded)."""

    def __init__(self, spec: str, path: Path, opts: HFOptions):
        import torch
        from transformers import AutoModelForCausalLM, GenerationConfig
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # the runner draws its own progress bars
        config = load_causal_config(path)
        self.spec = spec
        self.path = path
        self.tokenizer = load_hf_tokenizer(path)
        self.tokenizer_spec = f"hf:{path}"
        chat = has_chat_template(self.tokenizer)
        if opts.template == "chat" and not chat:
            raise ModelError(f"template=chat asked for, but the tokenizer in {path} has no chat template")
        self.template = opts.template or ("chat" if chat else "plain")
        max_context = opts.max_context or config_max_context(config)
        if max_context is None:
            raise ModelError(f"the config in {path} declares no context length; pass max_context=N in the spec")
        self.max_context = max_context
        self.batch_size, self.max_batch_tokens = opts.batch_size, opts.max_batch_tokens
        self.device = opts.device
        where, gguf_kw = source(path)
        kwargs = {"dtype": getattr(torch, opts.dtype), "local_files_only": True, **gguf_kw}
        if opts.attn_implementation:
            kwargs["attn_implementation"] = opts.attn_implementation
        if opts.attn:
            from longctx.models.attn_swap import register

            kwargs["attn_implementation"] = register(opts.attn, config)
        try:
            self.model = AutoModelForCausalLM.from_pretrained(where, **kwargs).to(opts.device).eval()
        except Exception as e:
            raise ModelError(f"cannot load the model weights in {path} on {opts.device} ({opts.dtype}): {e}") from None
        self.eos_ids = self._eos_ids()
        self.generation_config = GenerationConfig(
            do_sample=False, eos_token_id=sorted(self.eos_ids) or None, pad_token_id=self.tokenizer.pad_token_id,
            bos_token_id=self.tokenizer.bos_token_id,
        )

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> "HFModel":
        path = Path(spec.target).expanduser().resolve()
        return cls(spec.raw, path, parse_options(spec))

    def _eos_ids(self) -> set[int]:
        ids = {self.tokenizer.eos_token_id} if self.tokenizer.eos_token_id is not None else set()
        gen_eos = getattr(self.model.generation_config, "eos_token_id", None)
        ids |= set(gen_eos) if isinstance(gen_eos, (list, tuple)) else ({gen_eos} if gen_eos is not None else set())
        return ids

    def encode(self, request: Request) -> list[int]:
        """Token ids the model sees for ``request`` (template and prefill included)."""
        r = render(self.tokenizer, request, self.template)
        return self.tokenizer(r.text, add_special_tokens=r.add_special_tokens)["input_ids"]

    def encode_text(self, text: str) -> list[int]:
        """Ids of raw prompt text (the completions endpoint): special tokens added unless it starts with BOS."""
        bos = self.tokenizer.bos_token
        return self.tokenizer(text, add_special_tokens=not (bos and text.startswith(bos)))["input_ids"]

    def count_prompt_tokens(self, request: Request) -> int:
        return len(self.encode(request))

    def generate(self, batch: list[Request]) -> list[Completion]:
        return self.generate_ids([self.encode(r) for r in batch], [r.max_new_tokens for r in batch])

    def generate_ids(self, prompts: list[list[int]], max_new_tokens: list[int]) -> list[Completion]:
        """Greedy completions of token-id prompts, in order; groups of similar length share a batch."""
        for ids in prompts:
            if not ids:
                raise ModelError("an empty prompt cannot be completed (the request has no text and the template adds none)")
            if len(ids) > self.max_context:
                raise ModelError(
                    f"a prompt of {len(ids)} tokens does not fit max_context={self.max_context} of {self.spec}; "
                    "prompts are never truncated"
                )
        budgets = [min(n, self.max_context - len(p)) for p, n in zip(prompts, max_new_tokens)]
        out: list[Completion | None] = [None] * len(prompts)
        for group in self._groups(prompts, budgets):
            for i, c in zip(group, self._generate_group([prompts[i] for i in group], [budgets[i] for i in group])):
                out[i] = c
        return out  # type: ignore[return-value]

    def _groups(self, prompts: list[list[int]], budgets: list[int]) -> list[list[int]]:
        """Indices sorted by prompt length, cut at ``batch_size`` requests or ``max_batch_tokens`` padded tokens."""
        groups: list[list[int]] = []
        group: list[int] = []
        width = 0
        for i in sorted(range(len(prompts)), key=lambda i: len(prompts[i])):
            w = max(width, len(prompts[i]) + budgets[i])
            if group and (len(group) == self.batch_size or w * (len(group) + 1) > self.max_batch_tokens):
                groups.append(group)
                group, w = [], len(prompts[i]) + budgets[i]
            group.append(i)
            width = w
        return groups + [group] if group else groups

    def _generate_group(self, prompts: list[list[int]], budgets: list[int]) -> list[Completion]:
        """One left-padded batch: ``input_ids [B, T]`` -> ``[B, T + max(budgets)]``, cut per row."""
        import torch

        width = max(len(p) for p in prompts)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=self.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device)
        steps = max(budgets)
        if steps > 0:
            with torch.inference_mode():
                config = copy.copy(self.generation_config)
                config.max_new_tokens = steps
                gen = self.model.generate(input_ids=ids, attention_mask=mask, generation_config=config)[:, width:].tolist()
        else:
            gen = [[] for _ in prompts]
        return [self._completion(row[:budget], len(p)) for row, budget, p in zip(gen, budgets, prompts)]

    def _completion(self, row: list[int], prompt_tokens: int) -> Completion:
        stop = next((k for k, t in enumerate(row) if t in self.eos_ids), None)
        kept = row if stop is None else row[:stop]
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        return Completion(text=text, prompt_tokens=prompt_tokens, output_tokens=len(row) if stop is None else stop + 1)

    def close(self) -> None:
        import torch

        self.model = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
