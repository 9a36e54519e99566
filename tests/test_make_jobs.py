"""``benchmarks/zoo/make.py --jobs``: architectures trained at once, one process each, sharing one data
file in the run folder; each is finished, logged and scored as when trained alone."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.zoo.make import parse_rates
from longctx.models.zoo import checkpoint

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_jobs_train_each_architecture_in_its_own_process_and_score_it(tmp_path):
    runs, results = tmp_path / "runs", tmp_path / "results"
    cmd = [sys.executable, "-m", "benchmarks.zoo.make", "--arch", "dense,s4", "--jobs", "2", "--steps", "2",
           "--copy-steps", "0", "--length-steps", "0", "--rows", "4", "--batch", "2", "--seq-len", "600",
           "--tasks", "niah_single_1", "--lm-fraction", "0.5", "--samples", "1", "--out", str(runs), "--results", str(results)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    for arch in ("dense", "s4"):
        assert checkpoint.read_card(runs / arch)["steps"] == 2
        log = (runs / f"train-{arch}.log").read_text()   # its own log, ending with its summary table
        assert f"│ {arch} " in log and "2/2" in log
    assert len(list(runs.glob("data-*.safetensors"))) == 1 and not list(runs.glob("*.tmp"))
    assert len(list(results.glob("*/summary.json"))) == 2   # both scored at the training length


def test_lr_takes_a_rate_then_one_per_named_architecture():
    assert parse_rates("2e-3") == (2e-3, {})
    assert parse_rates("2e-3,mamba2=1e-2,linear=5e-3") == (2e-3, {"mamba2": 1e-2, "linear": 5e-3})
    with pytest.raises(SystemExit, match="ARCH one of"):
        parse_rates("2e-3,mamba3=1e-2")
