"""Conformance with NVIDIA/RULER's own prompt writers (checked against commit c3f5e3b, 2026-07-22).

For every RULER task, at 4K and 128K, under the byte tokenizer and a BPE tokenizer: the prompt
(input plus answer prefix, as RULER's base template sends it) equals RULER's template for the task's
configuration filled with the sample's own context, keys and values, character for character; and
the context is made of whole units only (noise lines, essay sentences, distractor needles, list
items, documents), so no prompt ends in a cut unit. The templates below are RULER's
(``scripts/data/synthetic/constants.py``) and the formatting steps restate its scripts
(``niah.py``, ``variable_tracking.py``, ``common_words_extraction.py``, ``freq_words_extraction.py``,
``qa.py``) independently of the suite's generators.

Run: pytest tests/test_ruler_conformance.py -q
"""
from __future__ import annotations

import re
from collections import Counter

import pytest
from small_bpe import train_small_bpe

from longctx.tasks.haystack import NOISE, essay_haystack, one_line
from longctx.tasks.qa_synthetic import synthetic_pool
from longctx.tasks.ruler import RULER_TASKS
from longctx.tasks.tokenizers import ByteTokenizer, load_tokenizer

RULER = {
    "niah": ("Some special magic {type_needle_v} are hidden within the following text. Make sure to memorize it. "
             "I will quiz you about the {type_needle_v} afterwards.\n{context}\nWhat are all the special magic "
             "{type_needle_v} for {query} mentioned in the provided text?",
             " The special magic {type_needle_v} for {query} mentioned in the provided text are"),
    "variable_tracking": ("Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n"
                          "{context}\nQuestion: Find all variables that are assigned the value {query} in the text "
                          "above.",
                          " Answer: According to the chain(s) of variable assignment in the text above, {num_v} "
                          "variables are assigned the value {query}, they are: "),
    "common_words_extraction": ("Below is a numbered list of words. In these words, some appear more often than "
                                "others. Memorize the ones that appear most often.\n{context}\nQuestion: What are "
                                "the 10 most common words in the above list?",
                                " Answer: The top 10 words that appear most often in the list are:"),
    "freq_words_extraction": ("Read the following coded text and track the frequency of each coded word. Find the "
                              "three most frequently appeared coded words. {context}\nQuestion: Do not provide any "
                              "explanation. Please ignore the dots '....'. What are the three most frequently "
                              "appeared words in the above coded text?",
                              " Answer: According to the coded text above, the three most frequently appeared "
                              "words are:"),
    "qa": ("Answer the question based on the given documents. Only give me the answer and do not output any other "
           "words.\n\nThe following are given documents.\n\n{context}\n\nAnswer the question based on the given "
           "documents. Only give me the answer and do not output any other words.\n\nQuestion: {query}",
           " Answer:"),
}
NEEDLE = "One of the special magic {type_needle_v} for {key} is: {value}."
CTXS = [4096, 131072]


@pytest.fixture(scope="module")
def bpe(tmp_path_factory):
    return load_tokenizer(f"hf:{train_small_bpe(tmp_path_factory.mktemp('bpe') / 'tokenizer.json')}")


@pytest.fixture(scope="module", params=["byte", "bpe"])
def tok(request, bpe):
    return ByteTokenizer() if request.param == "byte" else bpe


def base_prompt(task: str, **fields) -> str:
    """RULER's base template: the task template and the answer prefix, formatted together (prepare.py)."""
    template, prefix = RULER[task]
    return (template + prefix).format(**fields)


def split_prefix(task: str, text: str) -> tuple[str, str]:
    """RULER's cut of the answer prefix: at the last occurrence of its first 10 characters."""
    at = text.rfind(RULER[task][1][:10])
    return text[:at], text[at:]


def sample(name: str, ctx: int, tok):
    return next(RULER_TASKS[name].generate(ctx, 1, 0, tok))


def _between(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].rsplit(end, 1)[0]


# --- niah ------------------------------------------------------------------------------------------

def ruler_niah(cfg, context: str, keys: list[str]) -> str:
    """niah.py: the singular rewrite when one value of one key is asked, then the format."""
    template, prefix = RULER["niah"]
    template += prefix
    kind = cfg.value
    if cfg.num_queries * cfg.num_values == 1:
        template = template.replace("Some", "A").replace("are all", "is").replace("are", "is")
        template = template.replace("answers", "answer")
        kind = kind[:-1]
    query = ", ".join(keys[:-1]) + ", and " + keys[-1] if len(keys) > 1 else keys[0]
    return template.format(type_needle_v=kind, context=context, query=query)


def essay_units() -> set[str]:
    return {u.strip() for u in one_line(essay_haystack()).units}


@pytest.mark.parametrize("ctx", CTXS)
@pytest.mark.parametrize("name", [n for n in RULER_TASKS if n.startswith("niah")])
def test_niah_prompt_is_rulers(name, ctx, tok):
    cfg = RULER_TASKS[name].config
    s = sample(name, ctx, tok)
    context = s.input.split("\n", 1)[1].rsplit("\nWhat ", 1)[0]
    assert s.input + s.answer_prefix == ruler_niah(cfg, context, s.meta["query_keys"])
    assert split_prefix("niah", s.input + s.answer_prefix) == (s.input, s.answer_prefix)
    needles = s.meta["needles"]
    assert all(n == NEEDLE.format(type_needle_v=cfg.value, key=k, value=v) for n, (k, v) in
               zip(needles, (re.fullmatch(r"One of the special magic \w+ for (\S+) is: (\S+)\.", n).groups()
                             for n in needles)))
    if cfg.haystack == "noise":  # every line the noise block or a needle
        lines = context.split("\n")
        assert Counter(lines) == Counter({NOISE: len(lines) - len(needles), **{n: 1 for n in needles}})
    elif cfg.haystack == "needle":  # every line a whole needle (distractors included)
        lines = context.split("\n")
        assert all(re.fullmatch(r"One of the special magic \w+ for \S+ is: \S+\.", line) for line in lines)
        assert all(lines.count(n) == 1 for n in needles)
    else:  # whole essay sentences and whole needles, joined by single spaces
        rest = context
        for n in needles:
            assert rest.count(n) == 1
            rest = rest.replace(n, "\0")
        pieces = [p.strip() for p in rest.split("\0")]
        sentences = [x.strip() for p in pieces for x in re.findall(r"[^.?!]+[.?!]", p)]
        assert "".join(sentences).replace(" ", "") == "".join(pieces).replace(" ", "")
        assert set(sentences) <= essay_units() and context.endswith((".", "?", "!"))
        assert "  " not in context and "\n" not in context


# --- vt --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ctx", CTXS)
def test_vt_prompt_is_rulers(ctx, tok):
    s = sample("vt", ctx, tok)
    full = s.input + s.answer_prefix
    example, task = full.split("\n\n" + RULER["variable_tracking"][0][:20], 1)
    task = RULER["variable_tracking"][0][:20] + task
    ex_context = _between(example, "following text.\n\n", "\nQuestion:")
    ex_value = re.search(r"VAR [A-Z]{3} = (\d{5})$", ex_context, re.M).group(1)
    ex_names = example.rsplit("they are: ", 1)[1].lstrip(" ").split(" ")
    # the one-shot example: RULER's whole prompt, one more space, its answer, a newline (then "\n" + task)
    assert example + "\n" == base_prompt("variable_tracking", context=ex_context, query=ex_value, num_v=5) + \
        " " + " ".join(ex_names) + "\n"
    context = _between(task, "following text.\n\n", "\nQuestion:")
    assert task == base_prompt("variable_tracking", context=context, query=s.meta["value"], num_v=5)
    assert split_prefix("variable_tracking", full) == (s.input, s.answer_prefix)
    for ctx_text, width, value, names in ((ex_context, 3, ex_value, ex_names),
                                           (context, 5, s.meta["value"], s.answers)):
        lines = ctx_text.split("\n")
        chain = [line for line in lines if line != NOISE]
        assert chain == [f"VAR {names[0]} = {value}"] + [f"VAR {b} = VAR {a} " for a, b in zip(names, names[1:])]
        assert all(len(n) == width for n in names)


# --- cwe -------------------------------------------------------------------------------------------

def numbered(listing: str) -> list[str]:
    items = re.findall(r"(\d+)\. (\S+)", listing)
    assert [int(i) for i, _ in items] == list(range(1, len(items) + 1))
    assert " ".join(f"{i}. {w}" for i, w in items) == listing
    return [w for _, w in items]


@pytest.mark.parametrize("ctx", [2048] + CTXS)
def test_cwe_prompt_is_rulers(ctx, tok):
    s = sample("cwe", ctx, tok)
    full = s.input + s.answer_prefix
    head = RULER["common_words_extraction"][0][:30]
    example, task = full.split("\n" + head, 1)
    task = head + task
    ex_list = _between(example, "appear most often.\n", "\nQuestion:")
    ex_answer = example.rsplit("are: ", 1)[1] if "are: " in example else example.rsplit("are:", 1)[1].lstrip()
    assert example == base_prompt("common_words_extraction", context=ex_list) + " " + ex_answer
    listing = _between(task, "appear most often.\n", "\nQuestion:")
    assert task == base_prompt("common_words_extraction", context=listing)
    assert split_prefix("common_words_extraction", full) == (s.input, s.answer_prefix)
    # RULER's example: 40 words (10 x10, 30 x3) from 4096 tokens, 20 words (10 x3, 10 x1) below
    ex_counts = Counter(numbered(ex_list))
    common_n, uncommon_n = (3, 1) if ctx < 4096 else (10, 3)
    assert sorted(ex_counts.values(), reverse=True) == [common_n] * 10 + [uncommon_n] * (10 if ctx < 4096 else 30)
    assert sorted(numbered(ex_answer)) == sorted(w for w, n in ex_counts.items() if n == common_n)
    # the list: every common word freq_common times, every other word all freq_uncommon times
    counts = Counter(numbered(listing))
    assert {w: counts[w] for w in s.answers} == {w: s.meta["freq_common"] for w in s.answers}
    assert set(n for w, n in counts.items() if w not in s.answers) == {s.meta["freq_uncommon"]}
    assert s.meta["freq_uncommon"] == (1 if ctx < 4096 else 3)
    if ctx >= 16384:
        assert s.meta["freq_common"] == 30  # RULER's own numbers where they fit


# --- fwe -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ctx", CTXS)
def test_fwe_prompt_is_rulers(ctx, tok):
    s = sample("fwe", ctx, tok)
    full = s.input + s.answer_prefix
    context = _between(full, "most frequently appeared coded words. ", "\nQuestion:")
    assert full == base_prompt("freq_words_extraction", context=context)
    assert split_prefix("freq_words_extraction", full) == (s.input, s.answer_prefix)
    words = context.split(" ")
    assert all(w == "..." or re.fullmatch(r"[a-z]{6}", w) for w in words)
    assert len(set(words)) <= (ctx - 50) // 50 == s.meta["vocab_size"]  # RULER's vocabulary size
    top = [w for w, _ in Counter(w for w in words if w != "...").most_common(3)]
    assert top == s.answers


# --- qa --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ctx", CTXS)
@pytest.mark.parametrize("name", ["qa_1", "qa_2"])
def test_qa_prompt_is_rulers(name, ctx, tok):
    s = sample(name, ctx, tok)
    full = s.input + s.answer_prefix
    context = _between(full, "The following are given documents.\n\n", "\n\nAnswer the question based")
    docs = re.split(r"(?:^|\n\n)Document \d+:\n", context)[1:]
    assert context == "\n\n".join(f"Document {i + 1}:\n{d}" for i, d in enumerate(docs))
    assert full == base_prompt("qa", context=context, query=s.meta["question"])
    assert split_prefix("qa", full) == (s.input, s.answer_prefix)
    assert set(docs) <= set(synthetic_pool("eval").docs)  # whole documents, the last one too
    assert all(g in docs for g in s.meta["needles"])
