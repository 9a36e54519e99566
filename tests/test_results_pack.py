"""`evals results pack / unpack` and `evals leaderboard build --results FILE`: a published board keeps one compact
per-sample file instead of thousands of result files, and rebuilds from it exactly as from the folder."""
from __future__ import annotations

import filecmp
import gzip
import json
from pathlib import Path

import pytest

from longctx.evals.errors import EvalError
from longctx.evals.leaderboard import build_board
from longctx.evals.results_pack import pack, read_pack
from synthetic_results import write_model

REPO = Path(__file__).resolve().parents[1]
CTXS = (4096, 8192)


def _without_time(board: dict) -> dict:
    return {k: v for k, v in board.items() if k != "created"}


def _results(root: Path) -> Path:
    write_model(root, "zoo:ssa@tiny", {"niah_single_1": dict(zip(CTXS, (0.95, 0.6))), "decay": dict(zip(CTXS, (0.9, 0.5)))})
    write_model(root, "zoo:dense", {"niah_single_1": dict(zip(CTXS, (1.0, 0.9)))})
    (root / "zoo_dense" / "runs.jsonl").write_text('{"command": "evals run \\u2028 x"}\n{"command": "y"}')  # no final newline
    return root


def _same_tree(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    return not mismatch and not errors and all(_same_tree(a / d, b / d) for d in cmp.common_dirs)


def test_board_from_the_pack_equals_the_board_from_the_folder_and_unpack_gives_the_folder_back(tmp_path, evals_cli):
    folder = _results(tmp_path / "r")
    packed = tmp_path / "main.samples.jsonl.gz"
    code, out, err = evals_cli(["results", "pack", str(folder), "-o", str(packed)])
    assert code == 0, err
    assert _without_time(build_board([packed], "main")) == _without_time(build_board([folder], "main"))
    one_model = tmp_path / "one.samples.jsonl.gz"
    pack(folder / "zoo_dense", one_model)  # a single model's folder packs and builds as well
    assert build_board([one_model], "x")["entries"][0]["model"] == "zoo:dense"
    code, out, err = evals_cli(["results", "unpack", str(packed), "-o", str(tmp_path / "back")])
    assert code == 0, err
    assert _same_tree(folder, tmp_path / "back")  # byte for byte, the line without a final newline included
    code, out, err = evals_cli(["results", "unpack", str(packed), "-o", str(tmp_path / "back")])
    assert code == 2 and "already exists" in err and "Traceback" not in err


def test_a_pack_has_one_row_per_sample_and_the_same_folder_packs_to_the_same_bytes(tmp_path):
    folder = _results(tmp_path / "r")
    pack(folder, tmp_path / "a.jsonl.gz")
    pack(folder, tmp_path / "b.jsonl.gz")
    assert (tmp_path / "a.jsonl.gz").read_bytes() == (tmp_path / "b.jsonl.gz").read_bytes()
    rows = [json.loads(line) for line in gzip.open(tmp_path / "a.jsonl.gz", "rt", encoding="utf-8")]
    samples = [r for r in rows if r["path"] == "zoo_dense/niah_single_1/4k/samples.jsonl"]
    assert [r["record"] for r in samples] == list(range(20))  # write_model's 20 samples, one row each
    assert samples[0]["model_dir"] == "zoo_dense" and samples[0]["task"] == "niah_single_1" and samples[0]["ctx"] == "4k"
    assert json.loads(samples[0]["text"])  # each row's text is that sample's record
    metrics = [r for r in rows if r["path"].endswith("metrics.json")]
    assert all(r["record"] is None for r in metrics) and len(metrics) == 6


def test_bad_packs_are_one_line_errors(tmp_path):
    with pytest.raises(EvalError, match="does not exist"):
        build_board([tmp_path / "missing.samples.jsonl.gz"], "x")
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(b"not gzip")
    with pytest.raises(EvalError, match="not a packed results file"):
        read_pack(broken)
    with pytest.raises(EvalError, match="must end in"):
        pack(_results(tmp_path / "r"), tmp_path / "x.parquet")


@pytest.mark.slow
def test_the_shipped_zoo_board_rebuilds_from_its_packed_samples():
    board = json.loads((REPO / "leaderboards" / "zoo.json").read_text())
    rebuilt = build_board([REPO / "leaderboards" / "zoo.samples.jsonl.gz"], "zoo", threshold=board["threshold"])
    assert _without_time(rebuilt) == _without_time(board)
