"""Each task's published metric, applied to the reply the way the benchmark's own scorer reads it.

What "the reply" is differs per metric, and each rule below is the reference's:

- RULER (``string_match_all``, ``string_match_part``): RULER's ``postprocess_pred`` first strips the
  reply, maps every control character ``[\\x00-\\x1f]`` (tab, carriage return, ...) to a newline and
  strips again; then each reference is looked for, case-insensitively, as a substring. ``all`` is the
  fraction of references found, ``part`` is 1 when any is found (lm-eval's RULER port computes
  ``part`` as a fraction; RULER does not).
- MRCR (``mrcr``): OpenAI's grader reads the raw reply. It scores 0 unless the reply starts with the
  sample's random prefix (a leading space or newline is a miss), then gives the SequenceMatcher
  ratio of reply and answer with the prefix removed, trailing whitespace included.

Both ``evals.scoring`` (the runner's records) and the lm-eval adapter score through ``score_sample``.
"""
from __future__ import annotations

import re
from typing import Callable

from longctx.tasks.errors import TaskError
from longctx.tasks.sample import Sample

_CONTROL = re.compile(r"[\x00-\x1f]")


def postprocess_pred(prediction: str) -> str:
    """RULER's reading of a reply: stripped, control characters turned into newlines, stripped again."""
    return _CONTROL.sub("\n", prediction.strip()).strip()


def _references(answers: list[str]) -> list[str]:
    if not answers:
        raise TaskError("a RULER sample with no reference answers cannot be scored (its answers list is empty)")
    return answers


def string_match_all(prediction: str, answers: list[str]) -> float:
    """Fraction of ``answers`` found in the post-processed ``prediction``, case-insensitive."""
    pred = postprocess_pred(prediction).lower()
    refs = _references(answers)
    return sum(a.lower() in pred for a in refs) / len(refs)


def string_match_part(prediction: str, answers: list[str]) -> float:
    """1 when any of ``answers`` is found in the post-processed ``prediction``, case-insensitive."""
    pred = postprocess_pred(prediction).lower()
    return float(any(a.lower() in pred for a in _references(answers)))


def _mrcr(prediction: str, sample: Sample) -> float:
    """OpenAI's grader on the raw ``prediction``: no strip, so leading whitespace misses the prefix."""
    from longctx.tasks.mrcr import grade_mrcr

    return grade_mrcr(prediction, sample.answers[0], sample.meta["random_prefix"])


METRICS: dict[str, Callable[[str, Sample], float]] = {
    "string_match_all": lambda p, s: string_match_all(p, s.answers),
    "string_match_part": lambda p, s: string_match_part(p, s.answers),
    "mrcr": _mrcr,
}


def score_sample(prediction: str, sample: Sample) -> float:
    """The sample's own metric on the raw ``prediction`` (each metric reads it as its reference does)."""
    try:
        fn = METRICS[sample.metric]
    except KeyError:
        raise TaskError(f"sample {sample.id} names unknown metric {sample.metric!r}") from None
    return fn(prediction, sample)
