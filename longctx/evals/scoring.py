"""Per-record scoring with each task's published metric.

RULER (``string_match_all``, ``string_match_part``) as RULER publishes them: case-insensitive
substring tests of each reference in the prediction; ``all`` is the fraction of references found,
``part`` is 1 if any reference is found. (lm-eval's RULER port computes ``part`` as a fraction,
so its QA scores differ from RULER's; we follow RULER.) MRCR uses OpenAI's published grader.
"""
from __future__ import annotations

from typing import Callable

from longctx.evals.errors import EvalError
from longctx.tasks.sample import Sample


def string_match_all(prediction: str, answers: list[str]) -> float:
    pred = prediction.lower()
    return sum(a.lower() in pred for a in answers) / len(answers) if answers else 0.0


def string_match_part(prediction: str, answers: list[str]) -> float:
    pred = prediction.lower()
    return float(any(a.lower() in pred for a in answers))


def mrcr(prediction: str, sample: Sample) -> float:
    from longctx.tasks.mrcr import grade_mrcr

    return grade_mrcr(prediction, sample.answers[0], sample.meta["random_prefix"])


METRICS: dict[str, Callable[[str, Sample], float]] = {
    "string_match_all": lambda p, s: string_match_all(p, s.answers),
    "string_match_part": lambda p, s: string_match_part(p, s.answers),
    "mrcr": mrcr,
}


def score(prediction: str, sample: Sample) -> dict[str, float]:
    """``{metric_name: value in [0, 1]}`` for the sample's own metric."""
    try:
        fn = METRICS[sample.metric]
    except KeyError:
        raise EvalError(f"sample {sample.id} names unknown metric {sample.metric!r}") from None
    return {sample.metric: fn(prediction.strip(), sample)}
