"""`evals leaderboard`: a board built from results folders carries what makes each number
reproducible, validates against leaderboards/schema.json, computes the summaries users compare on,
refuses to merge scores on different sample sets, and names the failing field of a bad board."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from longctx.evals.errors import EvalError
from longctx.evals.leaderboard import SCHEMA_PATH, build_board, load_board, merge_boards, summarise, write_board
from synthetic_results import write_bench, write_model

CTXS = (4096, 8192, 16384, 32768)


def _results(root: Path, salt: str = "", tokenizer: str = "byte") -> Path:
    write_model(root, "zoo:ssa@tiny", {"niah_single_1": dict(zip(CTXS, (0.95, 0.9, 0.8, 0.6))), "decay": dict(zip(CTXS, (0.9, 0.85, 0.7, 0.5)))},
                tokenizer=tokenizer, salt=salt)
    write_model(root, "hf:/m/Llama-3.1-8B,attn=dense", {"niah_single_1": dict(zip(CTXS, (1.0, 0.95, 0.9, 0.9))), "decay": dict(zip(CTXS, (1.0, 0.95, 0.9, 0.85)))},
                tokenizer=tokenizer, salt=salt)
    return root


def test_board_carries_reproducibility_fields_and_validates(tmp_path):
    bench = write_bench(tmp_path / "bench.json", {"ssa": 1.2, "sdpa_flash": 2.0})
    board = build_board([_results(tmp_path / "r")], "main", bench=bench)
    path = write_board(board, tmp_path / "boards")
    on_disk = json.loads(path.read_text())
    jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text())).validate(on_disk)
    assert on_disk["schema_version"] == "1.0" and path.name == "main.json"
    ssa = next(e for e in on_disk["entries"] if e["model"] == "zoo:ssa@tiny")
    assert ssa["architecture"] == "ssa" and ssa["attention"] == "ssa" and ssa["tokenizer"] == "byte"
    assert ssa["source"] == {"scheme": "zoo", "target": "ssa@tiny", "revision": None, "weight_hash": None}
    assert ssa["run"]["command"].startswith("evals run --model zoo:ssa@tiny")
    assert ssa["run"]["git_hash"] == "0123abc" and ssa["run"]["seeds"] == [0] and ssa["run"]["generation"]["greedy"] is True
    cell = ssa["tasks"]["niah_single_1"]["scores"]["8192"]
    assert cell["score"] == 0.9 and cell["n"] == 20 and cell["stderr"] == pytest.approx((0.9 * 0.1 / 20) ** 0.5)
    assert len(cell["sample_set_hash"]) == 64 and ssa["tasks"]["niah_single_1"]["version"] == "1"
    assert ssa["bench"]["exponent"] == 1.2 and len(ssa["bench"]["points"]) == 4
    assert on_disk["bench"]["exponents"]["sdpa_flash"]["exponent"] == 2.0  # the reference stays on the board
    dense = next(e for e in on_disk["entries"] if e["model"].startswith("hf:"))
    assert dense["bench"] is None  # no bench kernel named 'dense' in this file
    # ssa's RULER-style average: 92.5, 87.5, 75, 55 -> effective length 8k at RULER's 85.6
    assert ssa["summary"]["effective_length"] == 8192
    assert dense["summary"]["effective_length"] == 32768


def test_a_curve_whose_task_set_changes_with_length_lists_the_tasks_per_length(tmp_path):
    """The zoo's board joins six-task runs at 1K-8K with single-needle runs beyond; each length's average
    must say which tasks it covers, and a merge must keep that."""
    write_model(tmp_path / "r", "zoo:hybrid", {"niah_single_1": dict(zip(CTXS, (1.0, 1.0, 1.0, 1.0))),
                                               "niah_multikey_1": dict(zip(CTXS[:2], (0.2, 0.1)))})
    board = build_board([tmp_path / "r"], "main")
    summary = board["entries"][0]["summary"]
    assert summary["ruler_average"] == {"4096": 0.6, "8192": 0.55, "16384": 1.0, "32768": 1.0}
    assert summary["ruler_average_tasks"] == {"4096": ["niah_multikey_1", "niah_single_1"], "8192": ["niah_multikey_1", "niah_single_1"],
                                              "16384": ["niah_single_1"], "32768": ["niah_single_1"]}
    # the one-task lengths are not points of the two-task curve: the summary uses 4K and 8K only
    assert summary["summary_lengths"] == [4096, 8192] and summary["effective_length"] is None
    assert summary["mean_score"] == pytest.approx(0.575)
    merged = merge_boards([board], "merged")
    assert merged["entries"][0]["summary"]["ruler_average_tasks"] == summary["ruler_average_tasks"]
    assert merged["entries"][0]["summary"]["summary_lengths"] == [4096, 8192]


def test_average_without_a_summary_file_is_over_ruler_tasks_only(tmp_path):
    """Results merged by hand (no summary.json, as the zoo's) average RULER's tasks, as the runner does:
    decay and MRCR cells at the same lengths stay out of the RULER-style average."""
    folder = write_model(tmp_path / "r", "zoo:x", {"niah_single_1": {4096: 1.0, 8192: 0.5},
                                                   "decay_distance": {4096: 0.0, 16384: 0.0}, "mrcr_2needle": {8192: 0.0}})
    (folder / "summary.json").unlink()
    summary = build_board([tmp_path / "r"], "main")["entries"][0]["summary"]
    assert summary["ruler_average"] == {"4096": 1.0, "8192": 0.5}
    assert summary["ruler_average_tasks"] == {"4096": ["niah_single_1"], "8192": ["niah_single_1"]}


def test_summaries():
    s = summarise({4096: 0.8, 8192: 0.8, 16384: 0.8}, 85.6)
    assert s["auc"] == pytest.approx(0.8) and s["effective_length"] is None and s["mean_score"] == pytest.approx(0.8)
    # equal steps in log2: the normalised trapezoid of 1.0, 0.5, 0.0 is 0.5; unequal steps weigh by log2 span
    assert summarise({4096: 1.0, 8192: 0.5, 16384: 0.0}, 85.6)["auc"] == pytest.approx(0.5)
    assert summarise({4096: 1.0, 8192: 1.0, 32768: 0.0}, 85.6)["auc"] == pytest.approx((1.0 + 0.5 * 2) / 3)
    assert summarise({4096: 0.856, 8192: 0.9}, 85.6)["effective_length"] == 8192  # at the threshold counts
    assert summarise({4096: 0.5}, 85.6) == {"mean_score": 0.5, "effective_length": None, "auc": 0.5}


def test_merge_same_samples_then_refuse_different_ones(tmp_path):
    a = build_board([_results(tmp_path / "a")], "a")
    write_model(tmp_path / "b", "zoo:mamba2", {"niah_single_1": dict(zip(CTXS, (0.9, 0.6, 0.3, 0.1)))})
    b = build_board([tmp_path / "b"], "b")
    merged = merge_boards([a, b], "ab")
    assert [e["model"] for e in merged["entries"]] == ["hf:/m/Llama-3.1-8B,attn=dense", "zoo:ssa@tiny", "zoo:mamba2"]
    assert merge_boards([merged, a], "again")["entries"] == merged["entries"]  # the same rows twice merge to one
    write_model(tmp_path / "c", "zoo:rwkv", {"niah_single_1": {8192: 0.5}}, salt="other seed")
    c = build_board([tmp_path / "c"], "c")
    with pytest.raises(EvalError, match=r"refusing 'zoo:rwkv' on niah_single_1 at ctx 8192: its sample-set hash .* differs from the board's"):
        merge_boards([merged, c], "bad")
    write_model(tmp_path / "d", "hf:/m/Qwen2.5-7B", {"niah_single_1": {8192: 0.7}}, tokenizer="qwen", salt="own tokenizer")
    other_tok = build_board([tmp_path / "d"], "d")
    assert len(merge_boards([a, other_tok], "tok")["entries"]) == 3  # samples sized to another tokenizer have their own hash
    rerun = build_board([_results(tmp_path / "e", salt="rerun")], "e")
    with pytest.raises(EvalError, match="already on board 'twice' with different results"):
        merge_boards([a, rerun], "twice")
    with pytest.raises(EvalError, match="refusing 'zoo:rwkv'"):
        build_board([tmp_path / "a", tmp_path / "c"], "mixed")

def test_bad_board_names_the_failing_field(tmp_path):
    board = build_board([_results(tmp_path / "r")], "main")
    board["entries"][1]["tasks"]["decay"]["scores"]["4096"]["score"] = 1.5
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(board))
    with pytest.raises(EvalError, match=r"fails the leaderboard schema at field entries/1/tasks/decay/scores/4096/score: 1.5 is greater than the maximum"):
        load_board(path)
    del board["entries"][1]["tasks"]["decay"]["scores"]["4096"]["score"]
    path.write_text(json.dumps(board))
    with pytest.raises(EvalError, match=r"field entries/1/tasks/decay/scores/4096: 'score' is a required property"):
        load_board(path)


def test_results_without_manifest_or_hash_are_refused(tmp_path):
    folder = write_model(tmp_path / "r", "zoo:dense", {"niah_single_1": {4096: 1.0}})
    metrics = folder / "niah_single_1" / "4k" / "metrics.json"
    m = json.loads(metrics.read_text())
    del m["sample_set_hash"]
    metrics.write_text(json.dumps(m))
    with pytest.raises(EvalError, match="no sample_set_hash"):
        build_board([folder], "x")
    (folder / "manifest.json").unlink()
    with pytest.raises(EvalError, match="no manifest.json"):
        build_board([folder], "x")


@pytest.mark.slow
def test_cli_build_merge_publish(tmp_path):
    results = _results(tmp_path / "r")
    run = lambda *args: subprocess.run([sys.executable, "-m", "longctx.evals", "leaderboard", *args], capture_output=True, text=True)  # noqa: E731
    built = run("build", "--results", str(results), "--name", "main", "--out", str(tmp_path / "lb"))
    assert built.returncode == 0, built.stderr
    published = run("publish", str(tmp_path / "lb" / "main.json"))
    assert published.returncode == 0, published.stderr
    page = (tmp_path / "lb" / "index.html").read_text()
    assert "<script src=" not in page and "http://" not in page.replace("http://www.w3.org", "")  # nothing fetched from a network
    assert "data:image/png;base64," in page  # per-model plot embedded
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    (pictures / "length.png").write_bytes(b"\x89PNG")
    served = run("publish", str(tmp_path / "lb" / "main.json"), "--out", str(tmp_path / "site"), "--plots", str(pictures))
    assert served.returncode == 0, served.stderr
    assert (tmp_path / "site" / "plots" / "length.png").read_bytes() == b"\x89PNG"  # the folder serves as is
    assert '"src": "plots/length.png"' in (tmp_path / "site" / "index.html").read_text()
    bad = tmp_path / "lb" / "broken.json"
    bad.write_text('{"schema_version": "1.0", "name": "x"')
    refused = run("merge", str(tmp_path / "lb" / "main.json"), str(bad))
    assert refused.returncode == 2 and "not valid JSON" in refused.stderr and "Traceback" not in refused.stderr


def test_board_names_both_task_versions_when_cells_mix_them(tmp_path):
    """A task whose cells came from two generator versions (e.g. cwe 1 at 8K, 2 at 2K) says so."""
    folder = write_model(tmp_path / "r", "zoo:ssa@tiny", {"cwe": dict(zip(CTXS, (0.5, 0.4, 0.3, 0.2)))})
    cell = folder / "cwe" / "4k" / "metrics.json"
    cell.write_text(json.dumps({**json.loads(cell.read_text()), "task_version": "2"}))
    entry = build_board([tmp_path / "r"], "mixed")["entries"][0]
    assert entry["tasks"]["cwe"]["version"] == "1,2"
    cell.write_text(json.dumps({**json.loads(cell.read_text()), "task_version": "10"}))
    entry = build_board([tmp_path / "r"], "mixed")["entries"][0]
    assert entry["tasks"]["cwe"]["version"] == "1,10"  # in number order, not as text
    cell = folder / "cwe" / "8k" / "metrics.json"
    cell.write_text(json.dumps({**json.loads(cell.read_text()), "task_version": "9"}))
    assert build_board([tmp_path / "r"], "mixed")["entries"][0]["tasks"]["cwe"]["version"] == "1,9,10"
