"""``benchmarks/zoo/plot_needle_curves.py`` draws every run of the JSONs it is given, each labelled by what sets it
apart (needles, curriculum, rate, seed)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.zoo.plot_needle_curves import label

ROOT = Path(__file__).resolve().parents[1]


def run(arch: str, **extra) -> dict:
    log = [{"step": 50, "loss": 1.6}, {"step": 100, "loss": 0.4}, {"step": 100, "probe": 0.5}]
    return {"arch": arch, "form": "ruler", "lr": 1e-3, "steps": 100, "exact": 0.5, "loss_log": log, **extra}


def test_labels_tell_runs_apart():
    assert label(run("dense")).startswith("2 needles, ruler, lr 0.001, 100 steps: 50% exact")
    assert label(run("dense", needles=1, seed=2)).startswith("1 needle, ruler, lr 0.001, 100 steps, seed 2")
    assert label(run("dense", needles=2, single_first=40)).startswith("1 needle for 40 steps, then 2")


def test_a_plot_is_drawn_from_the_json(tmp_path):
    data = tmp_path / "runs.json"
    data.write_text(json.dumps({"runs": [run("dense"), run("linear", needles=1), run("linear", needles=1, seed=1)]}))
    out = tmp_path / "curves.png"
    done = subprocess.run([sys.executable, "-m", "benchmarks.zoo.plot_needle_curves", str(data), "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
