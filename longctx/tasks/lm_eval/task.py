"""An lm-eval task class that runs any of this suite's tasks inside lm-eval (``pip install lm-eval``).

Samples come from ``tasks.cache.generate_samples`` (cached on disk, so lm-eval does not regenerate
them at every load), sized to the tokenizer named in the metadata. One YAML file per task in this
folder points here; run them with the include path:

    lm_eval --model hf --model_args pretrained=/models/llama --include_path tasks/lm_eval \\
        --tasks longctx_mrcr_2needle,longctx_decay_distance --apply_chat_template \\
        --metadata '{"max_seq_lengths": [4096, 8192], "samples": 50, "seed": 0}'

Metadata keys: ``max_seq_lengths`` (ctx values, default ``[4096]``), ``tokenizer`` (a suite
tokenizer spec: ``byte``, ``hf:PATH``, ``tiktoken:NAME``; default ``hf:`` + the model's local
``pretrained`` path), ``samples`` (default 100), ``seed`` (0), ``split`` (``eval``),
``answer_prefix`` (true: append each task's answer prefix as the start of the reply).

Each sample's own ``max_new_tokens`` is its generation budget. MRCR conversations go to the
model's chat template turn by turn with ``--apply_chat_template``; without it they are joined as
``User:``/``Assistant:`` text. Scores are each task's metric (RULER's ``string_match_all`` /
``string_match_part``, MRCR's grader) overall and per ctx (``<metric>@<ctx>``). The template
tokens are not measured here (lm-eval owns the model), so prompts are sized to the ctx minus the
answer budget only; leave a margin below the model's window. Tested with lm-eval 0.4.13.
"""
from __future__ import annotations

import json
from typing import Any

import datasets
from lm_eval.api.instance import Instance
from lm_eval.api.task import ConfigurableTask

from longctx.tasks.cache import generate_samples
from longctx.tasks.errors import TaskError
from longctx.tasks.metrics import score_sample
from longctx.tasks.registry import get_task
from longctx.tasks.sample import Sample
from longctx.tasks.tokenizers import load_tokenizer

PREFIX = "longctx_"


def score(sample: Sample, prediction: str) -> float:
    """The sample's published metric on the raw reply, as ``evals.scoring`` gives it (see ``tasks.metrics``)."""
    return score_sample(prediction, sample)


def tokenizer_spec(meta: dict[str, Any]) -> str:
    if meta.get("tokenizer"):
        return str(meta["tokenizer"])
    if meta.get("pretrained"):
        return f"hf:{meta['pretrained']}"
    raise TaskError("longctx tasks need a tokenizer to size prompts: pass --metadata '{\"tokenizer\": \"hf:PATH\"}' "
                    "or a local model path as pretrained=PATH")


def load_docs(longctx_task: str, max_seq_lengths: list[int] | int = 4096, samples: int = 100, seed: int = 0,
              split: str = "eval", **meta: Any) -> dict[str, datasets.Dataset]:
    """The ``test`` split: one row per sample (its JSON), for every ctx in ``max_seq_lengths``."""
    tok = load_tokenizer(tokenizer_spec(meta))
    ctxs = [max_seq_lengths] if isinstance(max_seq_lengths, int) else list(max_seq_lengths)
    rows = [{"sample": json.dumps(s.to_dict(), ensure_ascii=False), "ctx": s.ctx}
            for c in ctxs for s in generate_samples(longctx_task, int(c), int(samples), int(seed), tok, split=split)]
    return {"test": datasets.Dataset.from_list(rows)}


def _sample(doc: dict[str, Any]) -> Sample:
    return Sample.from_dict(json.loads(doc["sample"]))


class LongCtxTask(ConfigurableTask):
    """A suite task as an lm-eval ``generate_until`` task (the YAML's ``task`` is ``longctx_<name>``)."""

    VERSION = 1

    def __init__(self, config: dict[str, Any] | None = None):
        cfg = dict(config or {})
        meta = dict(cfg.get("metadata") or {})
        name = meta.get("longctx_task") or str(cfg["task"]).removeprefix(PREFIX)
        task = get_task(name)
        meta["longctx_task"] = name
        ctxs = meta.get("max_seq_lengths", 4096)
        ctxs = [ctxs] if isinstance(ctxs, int) else list(ctxs)
        self.metric = task.metric
        self.use_prefix = bool(meta.get("answer_prefix", True))
        metrics = [self.metric] + [f"{self.metric}@{c}" for c in ctxs]
        super().__init__(config={
            "task": cfg.get("task", PREFIX + name),
            "output_type": "generate_until",
            "custom_dataset": load_docs,
            "test_split": "test",
            "doc_to_text": lambda doc: _sample(doc).chat()[-1]["content"],
            "doc_to_target": lambda doc: _sample(doc).answers[0],
            "process_results": self.process_results,
            "metric_list": [{"metric": m, "aggregation": "mean", "higher_is_better": True} for m in metrics],
            "generation_kwargs": {"until": [], "do_sample": False, "max_gen_toks": task.answer_budget},
            "metadata": {**meta, "version": task.version},
        })

    def fewshot_context(self, doc: dict[str, Any], num_fewshot: int, system_instruction: str | None = None,
                        apply_chat_template: bool = False, fewshot_as_multiturn: bool = False,
                        chat_template: Any = None, gen_prefix: str | None = None) -> str:
        """The sample's turns through the model's chat template (or as plain text), plus its answer prefix."""
        s = _sample(doc)
        messages = ([{"role": "system", "content": system_instruction}] if system_instruction else []) + s.chat()
        prefix = s.answer_prefix if self.use_prefix else ""
        if apply_chat_template and chat_template:
            if prefix:
                return chat_template([*messages, {"role": "assistant", "content": prefix}], add_generation_prompt=False)
            return chat_template(messages, add_generation_prompt=True)
        if len(messages) == 1:
            text = messages[0]["content"]
        else:
            text = "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages) + "\n\nAssistant:"
        return f"{text} {prefix}" if prefix else text

    def construct_requests(self, doc: dict[str, Any], ctx: str, **kwargs: Any) -> Instance:
        kwargs.pop("apply_chat_template", None)
        kwargs.pop("chat_template", None)
        gen = {"until": [], "do_sample": False, "max_gen_toks": _sample(doc).max_new_tokens}
        return Instance(request_type="generate_until", doc=doc, arguments=(ctx, gen), idx=0, **kwargs)

    def process_results(self, doc: dict[str, Any], results: list[str]) -> dict[str, float]:
        s = _sample(doc)
        value = score(s, results[0])
        return {self.metric: value, f"{self.metric}@{s.ctx}": value}
