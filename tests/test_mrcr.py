"""MRCR: the published grader on hand-checked cases, conversation structure, token budgets, determinism,
the topic split, and the official-parquet loader."""
from __future__ import annotations

import json
from collections import Counter

import pytest
from small_bpe import train_small_bpe

from longctx.tasks.errors import TaskError
from longctx.tasks.mrcr import MRCR_TASKS, grade_mrcr, ordinal, token_bin
from longctx.tasks.mrcr_official import load_official
from longctx.tasks.mrcr_writing import FORMS, Ask, topics, write_reply
from longctx.tasks.sizing import tolerance
from longctx.tasks.tokenizers import ByteTokenizer, load_tokenizer


@pytest.fixture(scope="module")
def bpe(tmp_path_factory):
    return load_tokenizer(f"hf:{train_small_bpe(tmp_path_factory.mktemp('bpe') / 'tokenizer.json')}")


@pytest.fixture(scope="module", params=["byte", "bpe"])
def tok(request, bpe):
    return ByteTokenizer() if request.param == "byte" else bpe


# --- the grader -------------------------------------------------------------------------------

def test_grader_exact_match_is_one():
    assert grade_mrcr("aB3xY9kLm0A poem about owls", "aB3xY9kLm0A poem about owls", "aB3xY9kLm0") == 1.0


def test_grader_missing_prefix_is_zero():
    assert grade_mrcr("A poem about owls", "aB3xY9kLm0A poem about owls", "aB3xY9kLm0") == 0.0
    assert grade_mrcr(" aB3xY9kLm0A poem about owls", "aB3xY9kLm0A poem about owls", "aB3xY9kLm0") == 0.0
    assert grade_mrcr("ab3xY9kLm0A poem about owls", "aB3xY9kLm0A poem about owls", "aB3xY9kLm0") == 0.0


def test_grader_partial_is_sequence_matcher_ratio():
    # "abcd" vs "abce": 3 matching characters, ratio 2*3/(4+4)
    assert grade_mrcr("PFXabcd", "PFXabce", "PFX") == pytest.approx(0.75)
    # "ab" vs "abcd": 2 matches, 2*2/(2+4)
    assert grade_mrcr("PFXab", "PFXabcd", "PFX") == pytest.approx(4 / 6)
    # nothing after the prefix: no match
    assert grade_mrcr("PFX", "PFXabcd", "PFX") == 0.0


def test_token_bins_follow_the_published_edges():
    assert token_bin(4095) == "0-4k"
    assert token_bin(4096) == "4k-8k"
    assert token_bin(8191) == "4k-8k"
    assert token_bin(131071) == "64k-128k"
    assert token_bin(524288) == "512k-1m"
    assert token_bin(1048575) == "512k-1m"
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22)] == \
        ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd"]


# --- the conversation -------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(MRCR_TASKS))
@pytest.mark.parametrize("ctx,overhead", [(4096, 0), (8192, 7)])
def test_conversation_structure_and_budget(name, ctx, overhead, tok):
    for s in MRCR_TASKS[name].generate(ctx, 2, 0, tok, overhead=overhead):
        msgs, meta = s.messages, s.meta
        assert [m["role"] for m in msgs] == ["user", "assistant"] * (len(msgs) // 2) + ["user"]
        # needle asks: identical text, exactly n of them, and no other ask for the same form and topic
        needle_asks = {Ask(meta["form"], meta["topic"], p).text() for p in range(5)}
        ask_turns = [t - 1 for t in meta["needle_turns"]]
        assert len(ask_turns) == meta["n_needles"] == int(name.split("_")[1].removesuffix("needle"))
        assert {msgs[t]["content"] for t in ask_turns} == {meta["needle_ask"]}
        assert [i for i, m in enumerate(msgs[:-1]) if m["role"] == "user" and m["content"] in needle_asks] == ask_turns
        # every assistant reply is different
        replies = [m["content"] for m in msgs if m["role"] == "assistant"]
        assert len(set(replies)) == len(replies)
        # the answer is the prefix plus the i-th needle reply, and the final ask says so
        i = meta["desired_index"]
        assert meta["desired_turn"] == meta["needle_turns"][i - 1]
        assert s.answers == [meta["random_prefix"] + msgs[meta["desired_turn"]]["content"]]
        assert msgs[-1]["content"].startswith(f"Prepend {meta['random_prefix']} to the {ordinal(i)} (1 indexed) "
                                              f"{meta['form']} about {meta['topic']}.")
        assert len(meta["random_prefix"]) == 10 and meta["random_prefix"].isalnum()
        assert s.answer_prefix == "" and s.metric == "mrcr"
        assert grade_mrcr(s.answers[0], s.answers[0], meta["random_prefix"]) == 1.0
        # token counts: re-tokenized turn by turn; prompt + template + answer within tolerance of ctx
        counts = [len(tok.encode(m["content"])) for m in msgs]
        assert s.prompt_tokens == sum(counts)
        assert meta["needle_positions"] == [sum(counts[:t]) for t in meta["needle_turns"]]
        spent = s.prompt_tokens + overhead * len(msgs) + s.max_new_tokens
        assert ctx - tolerance(ctx) <= spent <= ctx
        assert s.max_new_tokens >= len(tok.encode(s.answers[0]))
        assert meta["bin"] == token_bin(s.prompt_tokens)


def test_too_small_ctx_is_a_task_error():
    with pytest.raises(TaskError, match="too small"):
        next(MRCR_TASKS["mrcr_8needle"].generate(1024, 1, 0, ByteTokenizer()))


def test_replies_are_distinct_and_alike_in_shape():
    import random

    rng = random.Random("distinct")
    for form in FORMS:
        replies = [write_reply(Ask(form, "owls"), rng) for _ in range(200)]
        assert len(set(replies)) == 200, form
    poems = [write_reply(Ask("email", "owls"), rng) for _ in range(20)]
    assert all(p.startswith("Subject: Owls\n\nDear ") for p in poems)


def test_topic_split_is_disjoint_and_train_samples_use_train_topics():
    ev, tr = set(topics("eval")), set(topics("train"))
    assert ev and tr and not ev & tr
    for s in MRCR_TASKS["mrcr_2needle"].generate(4096, 3, 0, ByteTokenizer(), split="train"):
        assert s.meta["topic"] in tr and s.meta["split"] == "train"
    for s in MRCR_TASKS["mrcr_2needle"].generate(4096, 3, 0, ByteTokenizer()):
        assert s.meta["topic"] in ev


# --- the official parquet files ---------------------------------------------------------------

def _official_rows() -> list[dict]:
    rows = []
    for n, k in ((2, 1), (4, 3)):
        msgs = []
        for j in range(n + 1):
            msgs += [{"role": "user", "content": "write a poem about tapirs" if j < n else "write a riddle about owls"},
                     {"role": "assistant", "content": f"Tapir poem number {j} with its own words {j * 7}."}]
        msgs.append({"role": "user", "content": f"Prepend Zx81Qq0pLm to the {k}th (1 indexed) poem about tapirs. "
                                                "Do not include any other text in your response."})
        rows.append({"prompt": json.dumps(msgs), "answer": "Zx81Qq0pLm" + msgs[2 * (k - 1) + 1]["content"],
                     "random_string_to_prepend": "Zx81Qq0pLm", "n_needles": n, "desired_msg_index": 2 * (k - 1) + 1,
                     "total_messages": len(msgs), "n_chars": sum(len(m["content"]) for m in msgs),
                     "date_added": "04-12-2025"})
    return rows


def test_official_parquet_loader(tmp_path, bpe):
    from datasets import Dataset

    folder = tmp_path / "mrcr" / "2needle"
    folder.mkdir(parents=True)
    Dataset.from_list(_official_rows()).to_parquet(str(folder / "2needle_0.parquet"))
    samples = load_official(tmp_path / "mrcr", bpe)
    assert len(samples) == 2
    s = samples[0]
    rows = _official_rows()
    assert s.messages == json.loads(rows[0]["prompt"]) and s.answers == [rows[0]["answer"]]
    assert s.metric == "mrcr" and s.meta["random_prefix"] == "Zx81Qq0pLm" and s.meta["n_needles"] == 2
    assert s.prompt_tokens == sum(len(bpe.encode(m["content"])) for m in s.messages)
    assert s.meta["bin"] == "0-4k" and s.ctx == 8192
    assert grade_mrcr(s.answers[0], s.answers[0], "Zx81Qq0pLm") == 1.0
    assert grade_mrcr(s.answers[0].removeprefix("Zx81Qq0pLm"), s.answers[0], "Zx81Qq0pLm") == 0.0
    assert [x.meta["n_needles"] for x in load_official(folder, bpe, n_needles=4)] == [4]
    assert load_official(folder, bpe, max_ctx=10) == []
    assert len(load_official(folder / "2needle_0.parquet", bpe, limit=1)) == 1


def test_official_loader_bad_input(tmp_path):
    from datasets import Dataset

    with pytest.raises(TaskError, match="does not exist"):
        load_official(tmp_path / "nope", ByteTokenizer())
    Dataset.from_list([{"prompt": "[]", "answer": "x"}]).to_parquet(str(tmp_path / "bad.parquet"))
    with pytest.raises(TaskError, match="lacks the MRCR columns"):
        load_official(tmp_path / "bad.parquet", ByteTokenizer())
    (tmp_path / "text.parquet").write_text("not parquet")
    with pytest.raises(TaskError, match="not a readable parquet"):
        load_official(tmp_path / "text.parquet", ByteTokenizer())


def test_needle_form_counts_are_balanced_enough():
    """Needle forms vary across samples (the needles are not always one form)."""
    forms = Counter(s.meta["form"] for s in MRCR_TASKS["mrcr_2needle"].generate(16384, 12, 0, ByteTokenizer()))
    assert len(forms) >= 4


def test_official_parquet_runs_through_evals_run_by_token_bin(tmp_path, tiny_llama_dir, evals_cli, monkeypatch):
    """`evals run mrcr_official --set path=...` serves the rows of the bin ending at ctx, graded by the MRCR grader."""
    import datasets

    monkeypatch.setenv("EVALS_CACHE", str(tmp_path / "cache"))
    msgs = [{"role": "user", "content": "write a poem about tea"}, {"role": "assistant", "content": "Steam and leaf."},
            {"role": "user", "content": "Prepend abc123 to the 1st (1 indexed) poem about tea."}]
    rows = [{"prompt": json.dumps(msgs), "answer": "abc123Steam and leaf.", "random_string_to_prepend": "abc123",
             "n_needles": 2, "desired_msg_index": 1, "total_messages": 3, "n_chars": 60}] * 3
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "mrcr.parquet"))
    out = tmp_path / "results"
    model = f"hf:{tiny_llama_dir},max_context=8192"  # the prompts are short; the first published bin ends at 8k
    code, stdout, err = evals_cli(["run", "mrcr_official", "--ctx", "8k", "--model", model, "-n", "2",
                                   "--set", f"path={tmp_path / 'mrcr.parquet'}", "--out", str(out), "--json"])
    assert code == 0, err
    cell = json.loads(stdout)["tasks"]["mrcr_official"]["8192"]
    assert cell["n"] == 2 and 0 <= cell["mean"] <= 1
    code, _, err = evals_cli(["run", "mrcr_official", "--ctx", "8k", "--model", model, "--out", str(out)])
    assert code == 2 and "--set path=" in err
    code, _, err = evals_cli(["run", "vt", "--ctx", "4k", "--set", "colour=red", "--out", str(out)])
    assert code == 2 and "colour" in err


# --- the grader through the runner's records ---------------------------------------------------

class _EchoAnswerModel:
    """Replies to each request with its sample's expected answer, wrapped as ``shape`` says.

    Stands in for a model so the runner's own scoring path sees a chosen reply, byte for byte."""

    spec, tokenizer_spec, template, max_context = "test:echo-answer", "byte", "plain", 1 << 30

    def __init__(self, answers: dict[str, str], shape: str):
        self.answers, self.shape = answers, shape

    def count_prompt_tokens(self, request):
        from longctx.models.prompting import plain_prompt

        return len(plain_prompt(request).encode("utf-8"))

    def generate(self, batch):
        from longctx.models.base import Completion

        return [Completion(self.shape.format(self.answers[r.meta["id"]]), output_tokens=1) for r in batch]

    def close(self):
        pass


@pytest.mark.parametrize("shape, expect", [
    ("{}", "one"),
    (" {}", "zero"),  # OpenAI: the reply must start with the prefix itself
    ("\n{}", "zero"),
    ("{}\n", "below-one"),  # the trailing newline stays in the ratio
    ("{} ", "below-one"),
], ids=["exact", "leading-space", "leading-newline", "trailing-newline", "trailing-space"])
def test_runner_records_score_the_raw_reply_as_openais_grader(tmp_path, shape, expect):
    from longctx.evals.runner import Job, Overhead, RunConfig, job_dir, run_job
    from longctx.evals.store import read_records

    task, ctx = "mrcr_2needle", 8192
    samples = list(MRCR_TASKS[task].generate(ctx, 3, 0, ByteTokenizer()))
    answers = {s.id: s.answers[0] for s in samples}
    model = _EchoAnswerModel(answers, shape)
    cfg = RunConfig([task], [ctx], 3, 0, tmp_path, use_cache=False)
    run_job(model, ByteTokenizer(), Job(task, ctx), cfg, Overhead(0, 0))
    records = read_records(job_dir(tmp_path, model.spec, Job(task, ctx)) / "samples.jsonl")
    assert len(records) == 3
    for r in records:
        prefix = r["meta"]["random_prefix"]
        assert r["prediction"] == shape.format(answers[r["id"]])
        assert {"one": r["score"] == 1.0, "zero": r["score"] == 0.0, "below-one": 0.9 < r["score"] < 1.0}[expect]
        assert r["score"] == grade_mrcr(r["prediction"], answers[r["id"]], prefix)


def test_scoring_reads_the_issue_cases_as_openai_does():
    from longctx.evals.scoring import score
    from longctx.tasks.sample import make_sample

    def sample(answer: str):
        return make_sample(id="m", task="mrcr_2needle", ctx=4096, tokenizer="byte", answers=[answer], metric="mrcr",
                           max_new_tokens=8, prompt_tokens=1, messages=[{"role": "user", "content": "q"}],
                           meta={"random_prefix": "Xy12345678"})

    s = sample("Xy12345678hello world")
    assert score(" Xy12345678hello world", s) == {"mrcr": 0.0}
    assert score("Xy12345678hello world\n", s)["mrcr"] == pytest.approx(22 / 23)  # 0.9565
    assert score("Xy12345678hello world", s) == {"mrcr": 1.0}
