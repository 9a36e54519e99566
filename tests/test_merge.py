"""`evals merge`: results folders from several machines become one folder holding the union of their
complete cells; a cell measured on another sample set is refused (exit 2) and never overwritten;
partial cells stay out; merging again changes nothing; the merged folder builds a leaderboard."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from longctx.evals.leaderboard import build_board
from longctx.evals.merge import apply_merge, plan_merge
from synthetic_results import write_model

SSA, DENSE = "zoo:ssa", "zoo:dense"


def _source(root: Path, cells: dict[str, dict[str, dict[int, float]]], salt: str = "") -> Path:
    """A results folder as `evals run --out root` leaves it: per model its cells, manifest and runs.jsonl."""
    for spec, scores in cells.items():
        folder = write_model(root, spec, scores, n=10, salt=salt)
        (folder / "runs.jsonl").write_text((folder / "manifest.json").read_text() + "\n")
    return root


def _gpu(tmp: Path) -> Path:
    return _source(tmp / "gpu", {SSA: {"niah_single_1": {4096: 0.9, 8192: 0.8}}, DENSE: {"niah_single_1": {4096: 1.0}}})


def _cpu(tmp: Path, salt: str = "") -> Path:
    """Overlaps gpu at ssa/niah_single_1/8k (same samples unless ``salt``), adds cells gpu lacks."""
    return _source(tmp / "cpu", {SSA: {"niah_single_1": {8192: 0.8, 16384: 0.5}, "vt": {4096: 0.7}},
                                 DENSE: {"niah_single_1": {8192: 0.9}}}, salt)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _merge(sources: list[Path], into: Path, tags: list[str] | None = None):
    plan = plan_merge(sources, into, tags or [s.name for s in sources])
    apply_merge(plan)
    return plan


def test_two_sources_merge_into_their_union_and_the_board_has_every_cell(tmp_path):
    gpu, cpu, into = _gpu(tmp_path), _cpu(tmp_path), tmp_path / "results"
    plan = _merge([gpu, cpu], into)
    ssa, dense = plan.models["zoo_ssa"], plan.models["zoo_dense"]
    assert (len(ssa.added), ssa.same, ssa.conflicts, ssa.incomplete) == (4, 1, [], [])
    assert (len(dense.added), dense.same) == (2, 0)
    # a merged cell is the source's, byte for byte: `evals run` resumes from its samples.jsonl
    for rel in ("zoo_ssa/niah_single_1/8k", "zoo_ssa/vt/4k", "zoo_ssa/niah_single_1/16k"):
        src = gpu / rel if (gpu / rel).exists() else cpu / rel
        for f in ("samples.jsonl", "metrics.json"):
            assert (into / rel / f).read_bytes() == (src / f).read_bytes()
    folder = into / "zoo_ssa"
    assert json.loads((folder / "manifest.json").read_text()) == json.loads((gpu / "zoo_ssa/manifest.json").read_text())
    assert {p.name for p in folder.glob("manifest-*.json")} == {"manifest-gpu.json", "manifest-cpu.json"}
    assert len((folder / "runs.jsonl").read_text().splitlines()) == 2
    summary = json.loads((folder / "summary.json").read_text())  # rebuilt from the union, not a source's copy
    assert summary["tasks"]["niah_single_1"].keys() == {"4096", "8192", "16384"} and "vt" in summary["tasks"]
    board = build_board([into], "merged")
    cells = {e["model"]: {(t, c) for t, v in e["tasks"].items() for c in v["scores"]} for e in board["entries"]}
    assert cells == {SSA: {("niah_single_1", "4096"), ("niah_single_1", "8192"), ("niah_single_1", "16384"), ("vt", "4096")},
                     DENSE: {("niah_single_1", "4096"), ("niah_single_1", "8192")}}


def test_merging_again_changes_nothing(tmp_path):
    gpu, cpu, into = _gpu(tmp_path), _cpu(tmp_path), tmp_path / "results"
    _merge([gpu, cpu], into)
    before = _files(into)
    plan = _merge([gpu, cpu, gpu], into)
    assert _files(into) == before  # no runs.jsonl line twice, no manifest rewritten, no summary touched
    assert all(not m.added and not m.manifests and not m.runs_lines and not m.conflicts for m in plan.models.values())
    assert plan.models["zoo_ssa"].same == 2 + 3 + 2


def test_another_sample_set_is_a_conflict_that_leaves_the_cell_alone_and_exits_2(tmp_path, evals_cli):
    gpu, into = _gpu(tmp_path), tmp_path / "results"
    _merge([gpu], into)
    kept = _files(into / "zoo_ssa/niah_single_1/8k")
    cpu = _cpu(tmp_path, salt="other seed")
    code, out, err = evals_cli(["merge", str(cpu), "--into", str(into), "--tag", "cpu"])
    assert code == 2 and "Traceback" not in err
    assert str(cpu / "zoo_ssa/niah_single_1/8k/metrics.json") in err and str(into / "zoo_ssa/niah_single_1/8k/metrics.json") in err
    assert "1 conflict(s)" in err
    assert _files(into / "zoo_ssa/niah_single_1/8k") == kept
    assert (into / "zoo_ssa/vt/4k/metrics.json").is_file()  # the cells that do not conflict are merged
    assert "zoo_ssa" in out and "conflict" in out


def test_partial_cells_are_counted_and_never_copied(tmp_path):
    cpu = _cpu(tmp_path)
    metrics = cpu / "zoo_ssa/vt/4k/metrics.json"
    metrics.write_text(json.dumps({**json.loads(metrics.read_text()), "complete": False}))
    (cpu / "zoo_ssa/niah_single_1/16k/metrics.json").unlink()  # records only: a run killed mid-cell
    lone = write_model(cpu, "zoo:swa", {"niah_single_1": {4096: 0.5}})
    (lone / "niah_single_1/4k/metrics.json").unlink()
    into = tmp_path / "results"
    plan = _merge([cpu], into)
    assert len(plan.models["zoo_ssa"].incomplete) == 2 and len(plan.models["zoo_ssa"].added) == 1
    assert not (into / "zoo_ssa/vt/4k").exists() and not (into / "zoo_ssa/niah_single_1/16k").exists()
    assert not (into / "zoo_swa").exists()  # a model folder without a cell would break the board
    assert any("zoo_swa" in w for w in plan.warnings)
    build_board([into], "merged")


def test_a_tagged_manifest_is_never_overwritten_with_other_content(tmp_path, evals_cli):
    gpu, into = _gpu(tmp_path), tmp_path / "results"
    _merge([gpu], into, ["lane0"])
    man = gpu / "zoo_ssa/manifest.json"
    man.write_text(json.dumps({**json.loads(man.read_text()), "ended": "2026-11-24T00:00:00Z"}))
    kept = (into / "zoo_ssa/manifest-lane0.json").read_bytes()
    code, _, err = evals_cli(["merge", str(gpu), "--into", str(into), "--tag", "lane0"])
    assert code == 2 and "manifest-lane0.json" in err and "--tag" in err
    assert (into / "zoo_ssa/manifest-lane0.json").read_bytes() == kept
    code, _, err = evals_cli(["merge", str(gpu), "--into", str(into), "--tag", "lane0-b"])
    assert code == 0, err
    assert json.loads((into / "zoo_ssa/manifest-lane0-b.json").read_text())["ended"] == "2026-11-24T00:00:00Z"


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, evals_cli):
    gpu, cpu, into = _gpu(tmp_path), _cpu(tmp_path), tmp_path / "results"
    code, out, err = evals_cli(["merge", str(gpu), str(cpu), "--into", str(into), "--dry-run", "--json"])
    assert code == 0, err
    assert not into.exists()
    report = json.loads(out)
    assert report["dry_run"] and sorted(report["models"]["zoo_ssa"]["added"]) == ["niah_single_1/16k", "niah_single_1/4k",
                                                                                   "niah_single_1/8k", "vt/4k"]
    assert "would add" in err


def _bad_inputs(tmp: Path) -> list[tuple[list[str], str]]:
    gpu = _gpu(tmp)
    (tmp / "empty").mkdir()
    (tmp / "a-file").write_text("x")
    broken = _source(tmp / "broken", {SSA: {"vt": {4096: 0.5}}})
    (broken / "zoo_ssa/vt/4k/metrics.json").write_text('{"model": "zoo:ssa", "task"')
    return [([str(tmp / "nowhere"), "--into", str(tmp / "r")], "does not exist"),
            ([str(tmp / "empty"), "--into", str(tmp / "r")], "not a results folder"),
            ([str(gpu), "--into", str(tmp / "a-file")], "is a file"),
            ([str(broken), "--into", str(tmp / "r")], "metrics.json is not valid JSON")]


def test_bad_input_is_one_clear_line_and_exit_2(tmp_path, evals_cli):
    for args, says in _bad_inputs(tmp_path):
        code, _, err = evals_cli(["merge", *args])
        assert code == 2 and says in err and "Traceback" not in err, (args, err)
    assert not (tmp_path / "r").exists()  # bad input is found before anything is written


@pytest.mark.slow
def test_bad_input_from_the_real_command_line(tmp_path):
    args, says = _bad_inputs(tmp_path)[-1]
    p = subprocess.run([sys.executable, "-m", "longctx.evals", "merge", *args], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and says in p.stderr and "Traceback" not in p.stderr, p.stderr


@pytest.mark.parametrize("tags", [["a", "b"], ["bad/tag"]])
def test_tags_must_be_one_safe_name_per_source(tmp_path, tags):
    from longctx.evals.errors import EvalError

    with pytest.raises(EvalError, match="--tag"):
        plan_merge([_gpu(tmp_path)], tmp_path / "results", tags)
