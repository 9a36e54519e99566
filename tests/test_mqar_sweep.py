"""``benchmarks/zoo/mqar_sweep.py``: each run is a two-layer zoo model with the mixer knobs asked for,
trained on MQAR and scored on held-out sequences, its result kept in the sweep's JSON."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

import benchmarks.zoo.mqar_sweep as sweep_mod
from benchmarks.zoo.mqar_sweep import mqar_batch, parse_knobs, recall_config, train_recall

ROOT = Path(__file__).resolve().parents[1]


def test_knobs_parse_as_numbers_and_override_the_mixers_own():
    assert parse_knobs("conv=0,d_state=16,trunc=1.5,attention=ssa") == {"conv": 0, "d_state": 16, "trunc": 1.5,
                                                                        "attention": "ssa"}
    assert recall_config("linear", 64, 64, 512).mixer["conv"] == 4        # the published short convolution
    cfg = recall_config("linear", 64, 64, 512, knobs={"conv": 0})
    assert cfg.mixer["conv"] == 0 and (cfg.n_layers, cfg.d_model, cfg.vocab_size) == (2, 64, 512)
    assert recall_config("swa", 64, 256, 8192).mixer["window"] == 64     # a quarter of the sequence


def test_a_two_run_cpu_sweep_writes_each_result_with_its_knobs(tmp_path):
    cmd = [sys.executable, "-m", "benchmarks.zoo.mqar_sweep", "--arch", "linear", "--widths", "32", "--seq-len", "32",
           "--pairs", "2", "--vocab", "64", "--steps", "3", "--batch", "4", "--test", "250", "--lr", "1e-3,1e-2",
           "--knobs", "conv=2", "--seed", "3", "--jobs", "2", "--device", "cpu", "--out", str(tmp_path)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    sweep = json.loads((tmp_path / "mqar_sweep.json").read_text())
    assert sweep["failed"] == [] and sorted(r["lr"] for r in sweep["runs"]) == [1e-3, 1e-2]
    assert all(r["knobs"]["conv"] == 2 and r["steps"] == 3 and r["seed"] == 3 and 0 <= r["accuracy"] <= 1
               for r in sweep["runs"])
    assert "best lr of each cell" in done.stdout


def test_a_stopped_run_resumes_from_its_state_to_the_uninterrupted_result(tmp_path, monkeypatch):
    """A run cut off by ``stop_at`` after 3 of 6 steps, then run again with the same ``state`` file, ends with the
    parameters and losses of one that was never stopped (same batches, same schedule, optimizer state kept)."""
    cfg = recall_config("dense", 32, 32, 64)
    batch_at = lambda s: mqar_batch(s, 4, 32, 2, 64)   # noqa: E731
    whole, whole_log = train_recall(cfg, batch_at, 6, 1e-2, "cpu", warmup=2)
    clock = iter(range(100))
    monkeypatch.setattr(sweep_mod.time, "time", lambda: next(clock))
    state = tmp_path / "run.pt"
    _, cut = train_recall(cfg, batch_at, 6, 1e-2, "cpu", warmup=2, stop_at=2.5, state=state)
    assert cut[-1] == {"step": 3, "loss": None, "stopped": True}
    monkeypatch.undo()
    resumed, log = train_recall(cfg, batch_at, 6, 1e-2, "cpu", warmup=2, state=state)
    assert log == whole_log
    for a, b in zip(whole.parameters(), resumed.parameters()):
        torch.testing.assert_close(a, b)
    _, again = train_recall(cfg, batch_at, 6, 1e-2, "cpu", warmup=2, state=state)   # finished: nothing to train
    assert again == whole_log


def test_dsa_indexer_learns_from_its_auxiliary_loss_as_in_the_trainer():
    """dsa's indexer sees the input with the gradient stopped, so only the auxiliary loss can train it: after a few
    ``train_recall`` steps its weights have moved (before, the recall runs left it at its initialisation)."""
    cfg = recall_config("dsa", 32, 64, 128)
    torch.manual_seed(0)
    fresh = {k: v.clone() for k, v in sweep_mod.registry.build(cfg).state_dict().items() if "index" in k}
    assert fresh
    model, _ = train_recall(cfg, lambda s: mqar_batch(s, 4, 64, 2, 128), 3, 1e-2, "cpu", warmup=1)
    moved = [k for k, v in model.state_dict().items() if k in fresh and not torch.equal(v, fresh[k])]
    assert moved


def test_card_mqar_refuses_runs_of_two_setups(tmp_path):
    run = {"arch": "s4", "seq_len": 64, "pairs": 4, "vocab": 512, "n_layers": 2, "d_model": 64, "steps": 2000,
           "batch": 64, "lr": 3e-3, "accuracy": 0.25}
    (tmp_path / "a.json").write_text(json.dumps({"runs": [run, {**run, "pairs": 16}]}))
    r = subprocess.run([sys.executable, "-m", "benchmarks.zoo.card_mqar", str(tmp_path / "a.json"), "--ship",
                        str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2 and "one setup" in r.stderr and "Traceback" not in r.stderr
