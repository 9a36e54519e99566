"""``load_model(spec)``: the one place a spec string becomes a backend (imports are lazy, so an
optional backend that is not installed costs nothing until it is asked for)."""
from __future__ import annotations

from longctx.models.base import Model
from longctx.models.spec import parse_spec


def load_model(spec: str) -> Model:
    s = parse_spec(spec)
    if s.scheme == "hf":
        from longctx.models.hf import HFModel

        return HFModel.from_spec(s)
    if s.scheme == "openai":
        from longctx.models.openai_compat import OpenAIModel

        return OpenAIModel.from_spec(s)
    if s.scheme == "vllm":
        from longctx.models.vllm_engine import VLLMModel

        return VLLMModel.from_spec(s)
    if s.scheme == "lm-eval":
        from longctx.models.lm_eval_model import LMEvalModel

        return LMEvalModel.from_spec(s)
    from longctx.models.zoo.model import ZooModel

    return ZooModel.from_spec(s)
