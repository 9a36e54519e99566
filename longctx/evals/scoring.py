"""Per-record scoring: the sample's published metric on the model's raw reply.

The metrics and how each reads a reply (RULER's ``postprocess_pred``; OpenAI's MRCR grader on the
unstripped text) live in ``tasks.metrics``, shared with the lm-eval adapter; this module turns a
scoring mistake into the runner's error type.
"""
from __future__ import annotations

from longctx.evals.errors import EvalError
from longctx.tasks.errors import TaskError
from longctx.tasks.metrics import postprocess_pred, score_sample, string_match_all, string_match_part
from longctx.tasks.sample import Sample

__all__ = ["postprocess_pred", "score", "string_match_all", "string_match_part"]


def score(prediction: str, sample: Sample) -> dict[str, float]:
    """``{metric_name: value in [0, 1]}`` for the sample's own metric, on the reply as the model wrote it."""
    try:
        return {sample.metric: score_sample(prediction, sample)}
    except TaskError as e:
        raise EvalError(str(e)) from None
