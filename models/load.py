"""``load_model(spec)``: the one place a spec string becomes a backend (imports are lazy, so an
optional backend that is not installed costs nothing until it is asked for)."""
from __future__ import annotations

from models.base import Model
from models.spec import parse_spec


def load_model(spec: str) -> Model:
    s = parse_spec(spec)
    if s.scheme == "hf":
        from models.hf import HFModel

        return HFModel.from_spec(s)
    if s.scheme == "openai":
        from models.openai_compat import OpenAIModel

        return OpenAIModel.from_spec(s)
    if s.scheme == "vllm":
        from models.vllm_engine import VLLMModel

        return VLLMModel.from_spec(s)
    if s.scheme == "lm-eval":
        from models.lm_eval_model import LMEvalModel

        return LMEvalModel.from_spec(s)
    from models.zoo.model import ZooModel

    return ZooModel.from_spec(s)
