"""``benchmarks/zoo/adapt.py`` refuses, before any training, what its workers would fail on later: checkpoints
whose config is no longer the registry's, malformed per-architecture rates and unknown tasks."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.zoo.adapt import stale_inits
from longctx.models.zoo import checkpoint, registry

ROOT = Path(__file__).resolve().parents[1]


def _ship(folder: Path, arch: str, size: str = "tiny", **mixer) -> None:
    cfg = registry.config(arch, size)
    model = registry.build(cfg)
    checkpoint.save(folder / arch, model, {"architecture": arch, "config": {**cfg.to_dict(), "mixer": {**cfg.mixer, **mixer}}})


def test_a_checkpoint_of_an_older_config_is_named_with_what_differs(tmp_path):
    _ship(tmp_path, "dense")
    _ship(tmp_path, "linear", conv=0)   # as the shipped linear, trained before the short convolution was its default
    stale = stale_inits(["dense", "linear", "mamba2"], tmp_path, "tiny")
    assert len(stale) == 2
    assert stale[0].startswith("linear: mixer") and "'conv': 0" in stale[0] and "'conv': 4" in stale[0]
    assert stale[1] == f"mamba2: no checkpoint in {tmp_path}"


def test_bad_rates_and_tasks_exit_2_before_anything_runs(tmp_path):
    for flag, bad in (("--lr-for", "mamba1=fast"), ("--lr-for", "nosucharch=1e-3"), ("--tasks", "niah_single_9")):
        run = subprocess.run([sys.executable, "-m", "benchmarks.zoo.adapt", flag, bad, "--out", str(tmp_path)],
                             cwd=ROOT, capture_output=True, text=True)
        assert run.returncode == 2 and flag in run.stderr.replace("\n", " ") and "Traceback" not in run.stderr
    assert not any(tmp_path.iterdir())


def test_stale_checkpoints_exit_2_naming_them(tmp_path):
    _ship(tmp_path / "init", "linear", "small", conv=0)
    run = subprocess.run([sys.executable, "-m", "benchmarks.zoo.adapt", "--arch", "linear", "--init", str(tmp_path / "init"),
                          "--out", str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "linear: mixer {'chunk': 128, 'conv': 0} (registry: {'chunk': 128, 'conv': 4})" in " ".join(run.stderr.split())
    assert json.loads((tmp_path / "init" / "linear" / "card.json").read_text())["config"]["mixer"]["conv"] == 0
