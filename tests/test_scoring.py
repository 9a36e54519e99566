"""RULER metrics and aggregation on hand-checked cases."""
import math

from longctx.evals.aggregate import mean_stderr, metrics_for, ruler_average, sample_set_hash
from longctx.evals.scoring import string_match_all, string_match_part


def test_string_match_all_is_the_fraction_of_references_found_case_insensitive():
    assert string_match_all("The numbers are 123 and 456.", ["123", "456", "789"]) == 2 / 3
    assert string_match_all("APPLE pie", ["apple"]) == 1.0
    assert string_match_all("nothing here", ["apple"]) == 0.0


def test_string_match_part_is_one_if_any_reference_is_found_not_a_fraction():
    # lm-eval's port would give 1/3 here; RULER gives 1
    assert string_match_part("Paris", ["paris", "Lyon", "Nice"]) == 1.0
    assert string_match_part("Rome", ["paris", "Lyon"]) == 0.0


def test_mean_and_standard_error_by_hand():
    m = mean_stderr([1.0, 0.0, 1.0, 1.0])
    assert m["n"] == 4 and m["mean"] == 0.75
    # sample std = sqrt(((.25^2)*3 + .75^2)/3) = 0.5; stderr = 0.5/2
    assert math.isclose(m["stderr"], 0.25)
    assert mean_stderr([0.5])["stderr"] == 0.0


def test_breakdowns_by_depth_sorted_numerically():
    records = [{"score": s, "meta": {"depth": d}} for s, d in [(1, 100), (0, 5), (1, 5), (1, 50)]]
    m = metrics_for(records)
    assert list(m["by_depth"]) == ["5", "50", "100"]
    assert m["by_depth"]["5"]["mean"] == 0.5 and "by_distance" not in m


def test_ruler_average_uses_only_tasks_present_and_says_which():
    cells = {"niah_single_1": {4096: {"mean": 1.0}}, "vt": {4096: {"mean": 0.5}, 8192: {"mean": 0.0}}}
    avg, used = ruler_average(cells, ["niah_single_1", "vt", "cwe"])
    assert avg == {4096: 0.75, 8192: 0.0}
    assert used[8192] == ["vt"]


def test_sample_set_hash_ignores_order():
    assert sample_set_hash(["b", "a"]) == sample_set_hash(["a", "b"]) != sample_set_hash(["a"])


def test_ruler_metrics_read_the_reply_through_postprocess_pred():
    from longctx.evals.scoring import postprocess_pred

    # RULER maps [\x00-\x1f] to "\n" after stripping: a tab or carriage return reads as a line break
    assert postprocess_pred("  1234\t5678\r\n") == "1234\n5678"
    assert string_match_all("alpha\tbeta", ["alpha\nbeta"]) == 1.0
    assert string_match_all("alpha\tbeta", ["alpha\tbeta"]) == 0.0
    assert string_match_part("x\x00y", ["x\ny"]) == 1.0


def test_an_empty_reference_list_is_a_clear_error_not_a_zero():
    import pytest

    from longctx.evals.errors import EvalError
    from longctx.evals.scoring import score
    from longctx.tasks.errors import TaskError
    from longctx.tasks.sample import make_sample

    with pytest.raises(TaskError, match="no reference answers"):
        string_match_all("anything", [])
    s = make_sample(id="s", task="niah_single_1", ctx=4096, tokenizer="byte", answers=[], metric="string_match_all",
                    max_new_tokens=8, prompt_tokens=1, input="q")
    with pytest.raises(EvalError, match="no reference answers"):
        score("anything", s)


def test_the_lm_eval_adapter_scores_as_the_runner_does():
    import pytest

    pytest.importorskip("lm_eval", reason="lm-eval is not installed")
    from longctx.evals.scoring import score
    from longctx.tasks.lm_eval.task import score as adapter_score
    from longctx.tasks.sample import make_sample

    ruler = make_sample(id="r", task="niah_single_1", ctx=4096, tokenizer="byte", answers=["12\n34"],
                        metric="string_match_all", max_new_tokens=8, prompt_tokens=1, input="q")
    mrcr = make_sample(id="m", task="mrcr_2needle", ctx=4096, tokenizer="byte", answers=["Xy12345678hi"], metric="mrcr",
                       max_new_tokens=8, prompt_tokens=1, messages=[{"role": "user", "content": "q"}],
                       meta={"random_prefix": "Xy12345678"})
    for reply in [" 12\t34 ", "1234", " Xy12345678hi", "Xy12345678hi\n", "Xy12345678hi"]:
        for s in (ruler, mrcr):
            assert adapter_score(s, reply) == score(reply, s)[s.metric]


def test_the_summary_table_shows_two_decimals_as_ruler_reports():
    import io

    from rich.console import Console

    from longctx.evals.summary import summary_table

    summary = {"model": "m", "tasks": {"vt": {"4096": {"mean": 0.123456, "stderr": 0.01, "n": 3}},
                                       "cwe": {"4096": {"mean": 0.5, "stderr": 0.0, "n": 3}}}}
    out = io.StringIO()
    Console(file=out, width=200).print(summary_table(summary, [4096], ["vt", "cwe"]))
    assert "12.35 ± 1.00 (n=3)" in out.getvalue() and "31.17" in out.getvalue().split("RULER average")[1]


def test_ruler_metrics_agree_with_rulers_evaluate_on_random_replies():
    """RULER's evaluate.py restated (postprocess_pred, then string_match_all / string_match_part over a
    task, x100 rounded to 2 decimals) against ours averaged, on replies full of control characters."""
    import random
    import re

    def ruler_post(p):
        return re.sub(r"[\x00-\x1f]", "\n", p.strip()).strip()

    def ruler_all(preds, refs):
        return round(sum(sum(r.lower() in p.lower() for r in ref) / len(ref) for p, ref in zip(preds, refs))
                     / len(preds) * 100, 2)

    def ruler_part(preds, refs):
        return round(sum(max(r.lower() in p.lower() for r in ref) for p, ref in zip(preds, refs)) / len(preds) * 100, 2)

    rng = random.Random(0)
    alphabet = "ab12 \t\r\n\x0bAB"
    for _ in range(200):
        refs = [["".join(rng.choices(alphabet, k=rng.randint(1, 3))) for _ in range(rng.randint(1, 3))] for _ in range(5)]
        preds = ["".join(rng.choices(alphabet, k=rng.randint(0, 12))) for _ in range(5)]
        ours_all = sum(string_match_all(p, r) for p, r in zip(preds, refs)) / 5
        ours_part = sum(string_match_part(p, r) for p, r in zip(preds, refs)) / 5
        assert round(ours_all * 100, 2) == ruler_all([ruler_post(p) for p in preds], refs)
        assert round(ours_part * 100, 2) == ruler_part([ruler_post(p) for p in preds], refs)
