"""The RULER catalog: its 13 tasks by name, each a row of the published variant table.

Names, templates, answer prefixes, answer budgets (niah 128, vt 30, cwe 120, fwe 50, qa 32 tokens)
and metrics follow RULER (Hsieh et al., 2024). ``string_match_all`` is the fraction of references
found in the prediction; ``string_match_part`` (qa) is 1 if any reference is found, both
case-insensitive (lm-eval's port computes ``string_match_part`` as a fraction, so its QA scores
differ). Families live in ``niah.py``, ``vt.py``, ``cwe_fwe.py`` and ``qa.py``.

    from longctx.tasks.ruler import RULER_TASKS
    samples = list(RULER_TASKS["niah_single_2"].generate(4096, 10, 0, load_tokenizer("byte")))
    deeper = RULER_TASKS["niah_single_2"].replace(depth=50, haystack="essays.txt")
"""
from __future__ import annotations

from longctx.tasks.cwe_fwe import CWEConfig, CWETask, FWEConfig, FWETask
from longctx.tasks.niah import NiahConfig, NiahTask
from longctx.tasks.qa import QAConfig, QATask
from longctx.tasks.ruler_base import RulerTask
from longctx.tasks.vt import VTConfig, VTTask

ALL, PART = "string_match_all", "string_match_part"

NIAH_VARIANTS: dict[str, NiahConfig] = {
    "niah_single_1": NiahConfig(haystack="noise", key="words", value="numbers"),
    "niah_single_2": NiahConfig(haystack="essay", key="words", value="numbers"),
    "niah_single_3": NiahConfig(haystack="essay", key="words", value="uuids"),
    "niah_multikey_1": NiahConfig(haystack="essay", key="words", value="numbers", num_keys=4),
    "niah_multikey_2": NiahConfig(haystack="needle", key="words", value="numbers"),
    "niah_multikey_3": NiahConfig(haystack="needle", key="uuids", value="uuids"),
    "niah_multivalue": NiahConfig(haystack="essay", key="words", value="numbers", num_values=4),
    "niah_multiquery": NiahConfig(haystack="essay", key="words", value="numbers", num_queries=4),
}

_NIAH_WHAT = {
    "niah_single_1": "one number needle in repeated noise sentences",
    "niah_single_2": "one number needle in essay text",
    "niah_single_3": "one uuid needle in essay text",
    "niah_multikey_1": "one of 4 number needles with different keys, in essay text",
    "niah_multikey_2": "one number needle among a haystack of distractor needles",
    "niah_multikey_3": "one uuid-keyed uuid needle among distractor needles",
    "niah_multivalue": "all 4 values of one key, in essay text",
    "niah_multiquery": "the values of 4 keys at once, in essay text",
}

RULER_TASKS: dict[str, RulerTask] = {
    **{name: NiahTask(name, f"NIAH: {_NIAH_WHAT[name]}", cfg, ALL, 128) for name, cfg in NIAH_VARIANTS.items()},
    "vt": VTTask("vt", "variable tracking: every variable of a 4-hop assignment chain in noise", VTConfig(), ALL, 30),
    "cwe": CWETask("cwe", "common words extraction: the 10 most common words of a numbered list",
                   CWEConfig(), ALL, 120),
    "fwe": FWETask("fwe", "frequent words extraction: the 3 most frequent coded words (Zipf alpha 2)",
                   FWEConfig(), ALL, 50),
    "qa_1": QATask("qa_1", "single-hop QA over documents with distractors (synthetic unless a SQuAD path)",
                   QAConfig(hops=1), PART, 32),
    "qa_2": QATask("qa_2", "two-hop QA over documents with distractors (synthetic unless a HotpotQA path)",
                   QAConfig(hops=2), PART, 32),
}

_ESSAY = ("generated English essays instead of Paul Graham's (which cannot be fetched offline); "
          "--haystack FILE|DIR uses the originals")
_WORDS = "keys from the suite's word lists (eval split) instead of wonderwords' adjective-noun pairs"

# How each RULER task's default data differs from RULER's own (FIDELITY.md has the full table)
DATA_VS_RULER: dict[str, str] = {
    "niah_single_1": _WORDS,
    "niah_single_2": f"{_ESSAY}; {_WORDS}",
    "niah_single_3": f"{_ESSAY}; {_WORDS}",
    "niah_multikey_1": f"{_ESSAY}; {_WORDS}",
    "niah_multikey_2": f"{_WORDS}; distractor needles from a fixed pool of 10,000",
    "niah_multikey_3": "distractor needles from a fixed pool of 10,000",
    "niah_multivalue": f"{_ESSAY}; {_WORDS}",
    "niah_multiquery": f"{_ESSAY}; {_WORDS}",
    "vt": "variable names and values drawn from the eval split",
    "cwe": "words from the suite's English word list (eval split) instead of wonderwords' lists",
    "fwe": "coded words drawn from the eval split",
    "qa_1": "synthetic single-hop documents and questions instead of SQuAD; --set source=SQUAD.json uses SQuAD",
    "qa_2": "synthetic two-hop documents and questions instead of HotpotQA; --set source=HOTPOT.json uses HotpotQA",
}
