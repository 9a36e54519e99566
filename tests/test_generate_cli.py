"""`evals tasks` and `evals generate`: the catalog, files on disk, a user's own haystack, bad input."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from longctx.tasks.registry import TASKS


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALS_CACHE", str(tmp_path / "cache"))


def test_tasks_json_lists_the_catalog(evals_cli):
    code, out, _ = evals_cli(["tasks", "--json"])
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and len([r for r in rows.values() if r["group"] == "ruler"]) == 13
    assert rows["qa_1"]["metric"] == "string_match_part" and rows["niah_single_1"]["answer_budget"] == 128
    assert {"mrcr_8needle", "decay_distance"} <= set(rows)


def test_tasks_say_which_ruler_tasks_differ_from_rulers_data_and_how(evals_cli):
    code, out, _ = evals_cli(["tasks", "--json"])
    rows = {r["name"]: r for r in json.loads(out)}
    assert all(rows[n]["data_vs_ruler"] for n in rows if rows[n]["group"] == "ruler")
    assert "--haystack FILE|DIR" in rows["niah_single_2"]["data_vs_ruler"]
    assert "--set source=" in rows["qa_1"]["data_vs_ruler"] and "SQuAD" in rows["qa_1"]["data_vs_ruler"]
    assert "HotpotQA" in rows["qa_2"]["data_vs_ruler"] and rows["mrcr_2needle"]["data_vs_ruler"] == ""


def test_tasks_piped_prints_each_name_whole_on_its_own_line(evals_cli):
    code, out, _ = evals_cli(["tasks"])   # captured: stdout is not a terminal
    lines = out.splitlines()
    assert code == 0 and lines[0].split("\t")[:3] == ["name", "group", "metric"]
    assert [line.split("\t")[0] for line in lines[1:]] == list(TASKS)
    assert all(len(line.split("\t")) == 7 for line in lines)


@pytest.mark.slow
def test_evals_tasks_through_a_shell_pipe_is_found_by_grep():
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(f"{sys.executable} -m longctx.evals tasks | grep -w niah_single_1", shell=True, cwd=root,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("niah_single_1\truler\t"), done.stderr


def test_generate_jsonl_and_hf_dataset(tmp_path, evals_cli):
    code, _, err = evals_cli(["generate", "vt,decay_distance", "--ctx", "2k,4k", "-n", "2", "--out", str(tmp_path / "d")])
    assert code == 0, err
    rows = [json.loads(line) for line in (tmp_path / "d" / "vt-4k.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(r["ctx"] == 4096 and r["prompt_tokens"] + 30 <= 4096 for r in rows)
    code, _, err = evals_cli(["generate", "vt", "--ctx", "2k", "-n", "2", "--format", "hf", "--out", str(tmp_path / "h")])
    from datasets import load_from_disk

    assert code == 0 and len(load_from_disk(str(tmp_path / "h" / "vt-2k"))) == 2


def test_a_users_haystack_file_is_the_filler_and_its_content_keys_the_cache(tmp_path, evals_cli):
    hay = tmp_path / "hay.txt"
    hay.write_text("Zebras graze quietly near the old lighthouse. " * 5 + "The harbour wakes before dawn. " * 5)
    args = ["generate", "niah_single_2", "--ctx", "1k", "-n", "1", "--haystack", str(hay), "--out", str(tmp_path / "a")]
    assert evals_cli(args)[0] == 0
    first = json.loads((tmp_path / "a" / "niah_single_2-1k.jsonl").read_text())
    assert "Zebras graze" in first["input"]
    hay.write_text("Kettles whistle in the mountain hut at noon. " * 10)  # same path, new content
    args[-1] = str(tmp_path / "b")
    assert evals_cli(args)[0] == 0
    second = json.loads((tmp_path / "b" / "niah_single_2-1k.jsonl").read_text())
    assert "Kettles whistle" in second["input"] and "Zebras" not in second["input"]


@pytest.mark.parametrize("args, says", [
    (["generate", "vt", "--ctx", "0"], "positive"),
    (["generate", "niah_single_1", "--ctx", "100"], "use a larger --ctx"),
    (["generate", "niah_single_2", "--ctx", "1k", "--haystack", "/no/such/file.txt"], "does not exist"),
    (["generate", "vt", "--ctx", "1k", "--split", "test"], "--split"),
    (["generate", "rular", "--ctx", "1k"], "did you mean 'ruler'"),
])
def test_bad_input_exits_2_with_one_line(args, says, tmp_path, evals_cli):
    code, _, err = evals_cli([*args, "--out", str(tmp_path)])
    assert code == 2 and says in err and "Traceback" not in err, err


def test_empty_haystack_file_exits_2(tmp_path, evals_cli):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    code, _, err = evals_cli(["generate", "niah_single_2", "--ctx", "1k", "--haystack", str(empty), "--out", str(tmp_path)])
    assert code == 2 and "empty.txt" in err
