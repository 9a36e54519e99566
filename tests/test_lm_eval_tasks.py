"""lm-eval runs the suite's tasks from the include path ``tasks/lm_eval`` (skipped where lm-eval is absent).

An in-process LM stands in for the model (lm-eval's own API, no network): it answers each prompt
with the matching sample's answer, so the scores show the whole path (docs, prompts, per-sample
budgets, chat turns, metrics) is wired, and it records what lm-eval sent it.
"""
from __future__ import annotations

import json

import pytest

lm_eval = pytest.importorskip("lm_eval", reason="lm-eval is not installed (pip install -e '.[lm-eval]')")

from lm_eval import simple_evaluate  # noqa: E402
from lm_eval.api.model import LM  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402

from longctx.tasks.cache import generate_samples  # noqa: E402
from longctx.tasks.lm_eval import INCLUDE_PATH  # noqa: E402
from longctx.tasks.lm_eval.task import score  # noqa: E402
from longctx.tasks.tokenizers import ByteTokenizer  # noqa: E402

TASKS = ("mrcr_2needle", "decay_multifact", "niah_single_1")


class Oracle(LM):
    """Renders chats as JSON; answers with the sample whose final user turn the chat ends with."""

    def __init__(self, samples):
        super().__init__()
        self.samples = samples
        self.sent: list[tuple[str, dict]] = []

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        out = []
        for r in requests:
            ctx, gen = r.args
            self.sent.append((ctx, gen))
            last = next(m["content"] for m in reversed(json.loads(ctx)) if m["role"] == "user")
            s = next(s for s in self.samples if s.chat()[-1]["content"] == last)
            out.append(s.answers[0] if s.metric == "mrcr" else " ".join(s.answers))
        return out

    def apply_chat_template(self, chat_history, add_generation_prompt: bool = True) -> str:
        return json.dumps(chat_history)

    @property
    def tokenizer_name(self) -> str:
        return "oracle"

    def loglikelihood(self, requests):
        raise NotImplementedError

    def loglikelihood_rolling(self, requests):
        raise NotImplementedError


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    import os

    os.environ["EVALS_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    samples = [s for t in TASKS for s in generate_samples(t, 4096, 3, 0, ByteTokenizer())]
    lm = Oracle(samples)
    tm = TaskManager(include_path=str(INCLUDE_PATH), include_defaults=False,
                     metadata={"tokenizer": "byte", "max_seq_lengths": [4096], "samples": 3, "seed": 0})
    results = simple_evaluate(model=lm, tasks=[f"longctx_{t}" for t in TASKS], task_manager=tm,
                              apply_chat_template=True)
    return samples, lm, results["results"]


def test_lm_eval_scores_the_tasks(run):
    samples, lm, results = run
    assert results["longctx_mrcr_2needle"]["mrcr,none"] == 1.0
    assert results["longctx_mrcr_2needle"]["mrcr@4096,none"] == 1.0
    assert results["longctx_decay_multifact"]["string_match_all,none"] == 1.0
    assert results["longctx_niah_single_1"]["string_match_all,none"] == 1.0
    assert len(lm.sent) == len(samples) == 9


def test_every_task_has_an_include_file():
    from longctx.tasks.registry import GROUPS

    # every generated task; mrcr_official reads the user's parquet files and is run with `evals run` only
    assert {p.stem for p in INCLUDE_PATH.glob("longctx_*.yaml")} == {f"longctx_{n}" for n in GROUPS["all"]}
    for group in ("ruler", "mrcr", "decay"):
        text = (INCLUDE_PATH / f"group_longctx_{group}.yaml").read_text()
        assert [line.strip()[2:] for line in text.splitlines() if line.startswith("  - ")] == \
            [f"longctx_{n}" for n in GROUPS[group]]


def test_lm_eval_sends_the_turns_and_each_samples_budget(run):
    samples, lm, _ = run
    by_last = {s.chat()[-1]["content"]: s for s in samples}
    for ctx, gen in lm.sent:
        chat = json.loads(ctx)
        s = by_last[next(m["content"] for m in reversed(chat) if m["role"] == "user")]
        assert gen["max_gen_toks"] == s.max_new_tokens and gen["do_sample"] is False
        if s.answer_prefix:  # prefill as the start of the assistant turn
            assert chat == [*s.chat(), {"role": "assistant", "content": s.answer_prefix}]
        else:  # MRCR: every turn of the conversation, in order
            assert chat == s.chat() and len(chat) > 3


def test_score_matches_the_suite_metrics():
    s = next(iter(generate_samples("mrcr_2needle", 4096, 1, 0, ByteTokenizer(), use_cache=False)))
    assert score(s, s.answers[0]) == 1.0 and score(s, "nope") == 0.0


def test_plain_prompts_without_a_chat_template(tmp_path, monkeypatch):
    from longctx.tasks.lm_eval.task import LongCtxTask

    monkeypatch.setenv("EVALS_CACHE", str(tmp_path))
    meta = {"tokenizer": "byte", "max_seq_lengths": [4096], "samples": 1}
    mrcr = LongCtxTask(config={"task": "longctx_mrcr_2needle", "metadata": meta})
    doc = mrcr.test_docs()[0]
    s = json.loads(doc["sample"])
    text = mrcr.fewshot_context(doc, 0)
    assert text.startswith("User: " + s["messages"][0]["content"] + "\n\nAssistant: " + s["messages"][1]["content"])
    assert text.endswith(s["messages"][-1]["content"] + "\n\nAssistant:")
    decay = LongCtxTask(config={"task": "longctx_decay_distance", "metadata": meta})
    doc = decay.test_docs()[0]
    s = json.loads(doc["sample"])
    assert decay.fewshot_context(doc, 0) == s["input"] + " " + s["answer_prefix"]
