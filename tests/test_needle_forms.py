"""``benchmarks/zoo/needle_forms.py``: its rows score only the answer, its MQAR warm-up rows are Zoology's task on
byte ids, and a run records its warm-up and its held-out curve."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks.zoo.needle_forms import mqar_byte_batch, needle_batch
from longctx.models.zoo import checkpoint
from longctx.models.zoo.trunk import EOS, PAD
from longctx.tasks.mqar import IGNORE

ROOT = Path(__file__).resolve().parents[1]


def test_needle_rows_score_the_asked_value_and_eos_only():
    x, y = needle_batch("ruler", 4, 512, "seed")
    assert x.shape == y.shape == (4, 512)
    for ids, targets in zip(x.tolist(), y.tolist()):
        scored = [(i, t) for i, t in enumerate(targets) if t != IGNORE]
        answer = bytes(t for _, t in scored[:-1]).decode()
        assert scored[-1][1] == EOS and answer.startswith(" ") and answer.endswith(".") and answer[1:-1].isdigit()
        assert answer[1:-1] in bytes(b for b in ids[:scored[0][0]] if b < 256).decode()   # the needle is in the row


def test_a_single_needle_row_holds_one_number_and_asks_it():
    x, y = needle_batch("ruler", 8, 512, "seed", n_needles=1)
    for ids, targets in zip(x.tolist(), y.tolist()):
        first = next(i for i, t in enumerate(targets) if t != IGNORE)
        text = bytes(b for b in ids[:first] if b < 256).decode()
        answer = bytes(t for t in targets if t != IGNORE and t < 256).decode()[1:-1]
        assert text.count("special magic numbers for") == 1 and answer in text


def test_mqar_warm_up_rows_are_byte_ids_padded_to_the_row():
    x, y = mqar_byte_batch(3, 512, seed=0)
    assert x.shape == y.shape == (3, 512)
    assert (x[:, 128:] == PAD).all() and (y[:, 128:] == IGNORE).all() and (x[:, :128] < 256).all()
    values = y[y != IGNORE]
    assert len(values) > 0 and ((values >= 128) & (values < 256)).all()


def test_a_cpu_run_records_its_warm_up_and_curve(tmp_path):
    cmd = [sys.executable, "-m", "benchmarks.zoo.needle_forms", "--arch", "dense", "--forms", "echo", "--lr", "3e-3",
           "--warm", "2", "--steps", "4", "--probe-every", "2", "--size", "tiny", "--test", "100", "--batch", "2",
           "--device", "cpu", "--out", str(tmp_path)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = json.loads((tmp_path / "needle_forms.json").read_text())["runs"]
    assert run["warm_mqar_steps"] == 2 and run["steps"] == 4 and [s for s, _ in run["exact_curve"]] == [2, 4]


def test_a_curriculum_run_records_its_single_needle_steps(tmp_path):
    cmd = [sys.executable, "-m", "benchmarks.zoo.needle_forms", "--arch", "dense", "--forms", "ruler", "--lr", "3e-3",
           "--single-first", "2", "--steps", "3", "--size", "tiny", "--test", "100", "--batch", "2",
           "--device", "cpu", "--out", str(tmp_path)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = json.loads((tmp_path / "needle_forms.json").read_text())["runs"]
    assert run["single_first"] == 2 and run["needles"] == 2 and run["steps"] == 3 and run["seed"] == 0


def test_another_seed_trains_another_model_and_keeps_its_own_state(tmp_path):
    def run(seed: int) -> dict:
        out = tmp_path / f"out{seed}"
        cmd = [sys.executable, "-m", "benchmarks.zoo.needle_forms", "--arch", "dense", "--forms", "ruler", "--lr", "3e-3",
               "--steps", "2", "--size", "tiny", "--test", "100", "--batch", "2", "--seed", str(seed),
               "--state", str(tmp_path / "state"), "--device", "cpu", "--out", str(out)]
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads((out / "needle_forms.json").read_text())["runs"][0]

    first, second = run(0), run(1)
    assert first["seed"] == 0 and second["seed"] == 1 and first["loss_log"] != second["loss_log"]
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == ["dense-ruler-0.003-0-s1.pt", "dense-ruler-0.003-0.pt"]


def test_a_row_too_short_for_its_needles_is_refused():
    with pytest.raises(ValueError, match="more than 128"):
        needle_batch("ruler", 1, 128, "seed")


def test_ship_writes_a_loadable_8bit_checkpoint_whose_card_is_the_run(tmp_path):
    cmd = [sys.executable, "-m", "benchmarks.zoo.needle_forms", "--arch", "dense", "--forms", "ruler", "--needles", "1",
           "--steps", "2", "--size", "tiny", "--test", "100", "--batch", "2", "--device", "cpu",
           "--ship", str(tmp_path / "init"), "--out", str(tmp_path / "out")]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    model, card = checkpoint.load(tmp_path / "init" / "dense")
    (run,) = json.loads((tmp_path / "out" / "needle_forms.json").read_text())["runs"]
    assert card["weights"] == "int8-rowwise" and card["from"] == "scratch" and card["data"]["needles"] == 1
    assert card["steps"] == run["steps"] == 2 and card["held_out_exact"] == run["exact"]
    assert card["tokens_seen"] == 2 * 2 * 512 and card["recipe"]["lr"] == run["lr"]


def test_ship_refuses_two_runs_of_one_architecture(tmp_path):
    cmd = [sys.executable, "-m", "benchmarks.zoo.needle_forms", "--arch", "dense", "--lr", "1e-3,3e-3", "--forms", "ruler",
           "--ship", str(tmp_path / "init"), "--out", str(tmp_path / "out")]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 2 and "one checkpoint an architecture" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "init").exists()


def test_replacing_the_needle_changes_its_digits_only_and_a_model_that_reads_it_falls_to_chance():
    import random

    import torch

    from benchmarks.zoo.needle_length import distances
    from benchmarks.zoo.needle_reads import digit_hits, replace_needle
    x, y = needle_batch("ruler", 6, 300, "reads", split="eval", n_needles=1)
    swapped = replace_needle(x, y, random.Random(0))
    changed = (swapped != x).nonzero().tolist()
    assert len(changed) == 6 * 7   # seven digits a row, every one of them changed
    for r, d in enumerate(distances(x, y)):
        at = int((y[r] != IGNORE).nonzero()[0]) - d
        assert [c for rr, c in changed if rr == r] == list(range(at, at + 7))

    class Copier(torch.nn.Module):   # predicts each answer digit from the needle itself, as a reading model does
        def __init__(self):
            super().__init__()
            self.where = torch.nn.Parameter(torch.zeros(1))   # digit_hits puts the rows on the model's device

        def forward(self, ids):
            logits = torch.zeros(*ids.shape, 300)
            for r, d in enumerate(distances(x, y)):
                first = int((y[r] != IGNORE).nonzero()[0])
                for j in range(7):
                    logits[r, first + 1 + j, ids[r, first - d + j]] = 1   # the answer opens with a space
            return logits
    assert [k for k, _ in digit_hits(Copier(), x, y)] == [7] * 6
    assert [k for k, _ in digit_hits(Copier(), swapped, y)] == [0] * 6


def test_route_hits_finds_the_needle_block_in_every_row_when_ssa_routes_to_every_block(tmp_path):
    """``route_hits`` counts the rows whose answer attends to the needle's block: an ssa whose ``top_blocks`` covers
    every block must score 100% in every layer and head, and one that routes to a single block far less."""
    from dataclasses import replace

    from benchmarks.zoo.route_hits import score
    from longctx.models.zoo import registry

    shares = {}
    for top in (1, 16):
        cfg = registry.config("ssa", "tiny")
        cfg = replace(cfg, mixer={**cfg.mixer, "block": 32, "top_blocks": top, "window": 32})
        torch.manual_seed(0)
        checkpoint.save(tmp_path / f"ssa{top}", registry.build(cfg), {"architecture": "ssa", "config": cfg.to_dict()})
        result = score(tmp_path / f"ssa{top}", 512, 16)
        assert result["rows"] > 0 and 0.0 <= result["digits_right"] <= 1.0
        shares[top] = [s for layer in result["needle_block_chosen"] for s in layer]
    assert all(s == 1.0 for s in shares[16])
    assert sum(shares[1]) / len(shares[1]) < 0.5
