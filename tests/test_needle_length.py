"""``benchmarks/zoo/needle_length.py``: the needle's distance is measured to the answer, and a ``needle_forms`` state
file is scored at rows longer than it was trained on."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.zoo.mqar_sweep import train_recall
from benchmarks.zoo.needle_forms import needle_batch
from benchmarks.zoo.needle_length import by_distance, distances
from longctx.models.zoo import registry

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("needles", [1, 2])
def test_distance_runs_from_the_asked_needles_value_to_the_answer(needles):
    x, y = needle_batch("ruler", 6, 1024, "d", split="eval", n_needles=needles)
    for ids, targets, d in zip(x.tolist(), y.tolist(), distances(x, y)):
        first = next(i for i, t in enumerate(targets) if t >= 0)
        value = bytes(t for t in targets[first:] if 47 < t < 58)
        assert bytes(ids[first - d:first - d + len(value)]) == value and 50 < d < 1024


def test_rows_split_by_quarter_of_the_width():
    rows = [(10, True), (20, False), (300, True), (1000, False)]
    assert by_distance(rows, 1024) == [(0.5, 2), (1.0, 1), (0.0, 0), (0.0, 1)]


def test_a_state_file_is_scored_at_each_width(tmp_path):
    state = tmp_path / "dense-ruler-0.003-0.pt"
    train_recall(registry.config("dense", "tiny"), lambda s: needle_batch("ruler", 2, 256, str(s), n_needles=1), 2,
                 3e-3, "cpu", state=state)
    out = tmp_path / "length.json"
    cmd = [sys.executable, "-m", "benchmarks.zoo.needle_length", str(state), "--size", "tiny", "--widths", "256,384",
           "--rows", "4", "--device", "cpu", "--out", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    (result,) = json.loads(out.read_text())["results"]
    assert set(result["by_width"]) == {"256", "384"} and all(len(rows) == 4 for rows in result["rows"].values())


def test_the_length_plot_is_drawn_from_the_json(tmp_path):
    rows = {"512": [[10, True], [300, False]], "1024": [[10, True], [900, True]]}
    data = tmp_path / "length.json"
    data.write_text(json.dumps({"results": [{"model": "linear-ruler-0.001-0", "by_width": {"512": 0.5, "1024": 1.0},
                                             "rows": rows}]}))
    out = tmp_path / "length.png"
    done = subprocess.run([sys.executable, "-m", "benchmarks.zoo.plot_needle_length", str(data), "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
