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
    _ship(tmp_path, "linear", conv=0)   # a linear trained before the short convolution was its default
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


def test_results_scored_from_a_ship_folder_become_the_package_model_only_if_the_weights_are_the_shipped_ones(tmp_path):
    """``as_shipped`` writes ``zoo:ARCH@SHIP/ARCH`` runs as ``zoo:ARCH`` (spec replaced in every file, the card's MQAR
    evidence in the manifest) when the ship folder's weights equal the package's byte for byte, and refuses otherwise."""
    import shutil

    from longctx.models.zoo.model import CHECKPOINTS

    scored = "zoo:dense@/remote/ship/dense"
    run = tmp_path / "results" / "zoo_dense_remote_ship_dense"
    (run / "niah_single_1" / "1k").mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({"model": scored, "mqar": None}))
    (run / "niah_single_1" / "1k" / "samples.jsonl").write_text(json.dumps({"model": scored, "score": 1.0}) + "\n")
    shutil.copytree(CHECKPOINTS / "dense", tmp_path / "ship" / "dense")
    args = [sys.executable, "-m", "benchmarks.zoo.as_shipped", str(tmp_path / "results"), "--ship",
            str(tmp_path / "ship"), "--scored-from", "/remote/ship", "--out", str(tmp_path / "out")]
    r = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    manifest = json.loads((tmp_path / "out" / "zoo_dense" / "manifest.json").read_text())
    card = json.loads((CHECKPOINTS / "dense" / "card.json").read_text())
    assert manifest["model"] == "zoo:dense" and manifest["mqar"] == card.get("mqar")
    sample = json.loads((tmp_path / "out" / "zoo_dense" / "niah_single_1" / "1k" / "samples.jsonl").read_text())
    assert sample == {"model": "zoo:dense", "score": 1.0}

    weights = tmp_path / "ship" / "dense" / "model.safetensors"
    flipped = bytearray(weights.read_bytes())
    flipped[-1] ^= 1
    weights.write_bytes(bytes(flipped))
    r = subprocess.run([*args[:-1], str(tmp_path / "out2")], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "is not the shipped dense" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out2").exists()
