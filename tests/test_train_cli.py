"""``evals train`` end to end on the CPU at tiny size: data from tasks/, checkpoints with cards,
the loss log, and a run interrupted mid-way that resumes to the same weights as an unbroken one."""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

from longctx.evals.cli import app
from longctx.models.zoo import checkpoint, trainer

ARGS = ["train", "--tasks", "niah_single_1,decay_distance", "--size", "tiny", "--seq-len", "600", "--rows", "12", "--steps", "4", "--batch", "2",
        "--warmup", "1", "--save-every", "2", "--device", "cpu", "--no-progress"]


@pytest.fixture(autouse=True)
def sample_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALS_CACHE", str(tmp_path / "cache"))


def train_cli(out, arch="dense", catch=True):
    return CliRunner().invoke(app, [*ARGS, "--arch", arch, "--out", str(out)], catch_exceptions=catch)


def test_train_writes_checkpoints_cards_and_loss_log(tmp_path):
    r = train_cli(tmp_path, "dense,mamba2")
    assert r.exit_code == 0, r.output
    for arch in ("dense", "mamba2"):
        _, card = checkpoint.load(tmp_path / arch)
        assert card["architecture"] == arch and card["steps"] == 4
        assert card["tokens_seen"] == 4 * 2 * 600
        assert card["data"]["split"] == "train" and card["data"]["tasks"]
        last = json.loads((tmp_path / arch / "loss.jsonl").read_text().splitlines()[-1])
        assert last["step"] == 4 and math.isfinite(last["loss"]) and math.isfinite(last["answer_loss"])


def test_unknown_architecture_exits_with_a_one_line_error(tmp_path):
    r = train_cli(tmp_path, "transformerxl")
    assert r.exit_code != 0
    assert "unknown zoo architecture" in str(r.exception or r.output)


def test_interrupted_run_resumes_to_the_same_weights(tmp_path, monkeypatch):
    assert train_cli(tmp_path / "whole").exit_code == 0
    real = trainer.lr_at

    class Crash(Exception):
        pass

    def crash_at_step_3(step, recipe):
        if step == 3:
            raise Crash
        return real(step, recipe)

    monkeypatch.setattr(trainer, "lr_at", crash_at_step_3)
    with pytest.raises(Crash):
        train_cli(tmp_path / "broken", catch=False)
    monkeypatch.setattr(trainer, "lr_at", real)
    assert json.loads((tmp_path / "broken" / "dense" / "trainer.json").read_text())["state"]["step"] == 2
    assert train_cli(tmp_path / "broken").exit_code == 0
    a, _ = checkpoint.load(tmp_path / "whole" / "dense")
    b, card = checkpoint.load(tmp_path / "broken" / "dense")
    assert card["steps"] == 4
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        torch.testing.assert_close(x, y, msg=name)


def test_copy_phase_first_then_the_task_phase_starts_from_its_weights(tmp_path):
    r = CliRunner().invoke(app, [*ARGS, "--arch", "dense", "--out", str(tmp_path), "--copy-steps", "2", "--copy-len", "64"])
    assert r.exit_code == 0, r.output
    copy_model, copy_card = checkpoint.load(tmp_path / "dense-copy64")
    assert copy_card["steps"] == 2 and copy_card["data"]["seq_len"] == 64 and not copy_card["data"]["tasks"]
    assert copy_card["recipe"]["batch"] == 4
    _, card = checkpoint.load(tmp_path / "dense")
    assert card["init"]["from"] == "dense-copy64" and card["init"]["steps"] == 2 and card["steps"] == 4
    rerun = CliRunner().invoke(app, [*ARGS, "--arch", "dense", "--out", str(tmp_path), "--copy-steps", "2", "--copy-len", "64"])
    assert rerun.exit_code == 0, rerun.output  # both phases complete: resuming changes nothing
    again, _ = checkpoint.load(tmp_path / "dense-copy64")
    for (name, x), (_, y) in zip(copy_model.state_dict().items(), again.state_dict().items()):
        torch.testing.assert_close(x, y, msg=name)


def test_stop_after_saves_early_and_the_same_command_resumes(tmp_path):
    stopped = CliRunner().invoke(app, [*ARGS, "--arch", "dense,mamba2", "--out", str(tmp_path), "--stop-after", "0"])
    assert stopped.exit_code == 0, stopped.output
    assert "resume" in stopped.output
    _, card = checkpoint.load(tmp_path / "dense")
    assert card["steps"] == 0 and not (tmp_path / "mamba2").exists()
    resumed = CliRunner().invoke(app, [*ARGS, "--arch", "dense,mamba2", "--out", str(tmp_path)])
    assert resumed.exit_code == 0, resumed.output
    for arch in ("dense", "mamba2"):
        assert checkpoint.load(tmp_path / arch)[1]["steps"] == 4


@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None,
                    reason="torch.compile on the CPU needs a C++ compiler")
def test_compiled_forward_trains_to_the_same_weights(tmp_path):
    for name, extra in (("eager", []), ("compiled", ["--compile"])):
        r = CliRunner().invoke(app, [*ARGS, "--arch", "dense", "--steps", "2", "--out", str(tmp_path / name), *extra])
        assert r.exit_code == 0, r.output
    a, _ = checkpoint.load(tmp_path / "eager" / "dense")
    b, _ = checkpoint.load(tmp_path / "compiled" / "dense")
    step = trainer.Recipe().lr  # Adam moves a weight by up to one learning rate per step, so float32 rounding of a
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):  # near-zero gradient shows as a
        torch.testing.assert_close(x, y, rtol=1e-4, atol=0.01 * step, msg=name)     # small fraction of that step


def test_length_phase_continues_the_task_phase_with_position_skips(tmp_path):
    r = CliRunner().invoke(app, [*ARGS, "--arch", "dense", "--length-steps", "2", "--pose-span", "5000", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    task = checkpoint.read_card(tmp_path / "dense-task")
    _, card = checkpoint.load(tmp_path / "dense")
    assert task["recipe"]["pose_span"] == 0 and task["steps"] == 4
    assert card["recipe"]["pose_span"] == 5000 and card["steps"] == 2 and card["init"]["from"] == "dense-task"
    assert card["recipe"]["lr"] == pytest.approx(task["recipe"]["lr"] / 4)


def test_help_lists_every_zoo_architecture():
    """`evals train --help` names the architectures without importing torch; the list must stay the registry's."""
    from longctx.evals import train
    from longctx.models.zoo import registry

    assert [a.strip() for a in train.ARCHS.split(",")] == list(registry.ARCHS)


def test_init_continues_from_an_earlier_run_and_its_card_keeps_the_chain(tmp_path):
    assert train_cli(tmp_path / "first").exit_code == 0
    r = CliRunner().invoke(app, [*ARGS, "--arch", "dense", "--out", str(tmp_path / "second"), "--steps", "2",
                                 "--init", str(tmp_path / "first")])
    assert r.exit_code == 0, r.output
    _, card = checkpoint.load(tmp_path / "second" / "dense")
    assert card["steps"] == 2 and card["init"]["from"] == "dense" and card["init"]["steps"] == 4
    assert card["init"]["recipe"]["steps"] == 4
    fine = CliRunner().invoke(app, [*ARGS, "--arch", "dense", "--out", str(tmp_path / "third"), "--steps", "0",
                                    "--length-steps", "2", "--init", str(tmp_path / "second")])
    assert fine.exit_code == 0, fine.output
    _, card = checkpoint.load(tmp_path / "third" / "dense")
    assert not (tmp_path / "third" / "dense-task").exists()
    assert card["steps"] == 2 and card["recipe"]["pose_span"] > 0
    assert card["init"]["from"] == "dense" and card["init"]["init"]["steps"] == 4


def test_init_without_a_checkpoint_of_the_architecture_exits_2_with_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "longctx.evals", *ARGS, "--arch", "dense", "--out", str(tmp_path / "run"),
                        "--init", str(tmp_path / "empty")], capture_output=True, text=True)
    assert r.returncode == 2 and "no checkpoint of dense" in r.stderr and "Traceback" not in r.stderr


def test_a_two_phase_checkpoint_puts_its_training_and_mqar_evidence_in_the_run_manifest_and_on_the_board(tmp_path):
    """A board compares trained-in-suite models only with their budgets in view: `evals run` records the
    checkpoint's phases (oldest first) and totals in the manifest, and the board entry carries them; so with the
    MQAR evidence that ``card_mqar`` puts on the card."""
    from longctx.evals.leaderboard import SCHEMA_PATH, build_board
    import jsonschema

    assert train_cli(tmp_path / "first").exit_code == 0
    r = CliRunner().invoke(app, [*ARGS, "--arch", "dense", "--out", str(tmp_path / "second"), "--steps", "0",
                                 "--length-steps", "2", "--init", str(tmp_path / "first")])
    assert r.exit_code == 0, r.output
    run = {"seq_len": 64, "pairs": 4, "vocab": 512, "n_layers": 2, "d_model": 64, "steps": 2000, "batch": 64,
           "knobs": {}}
    (tmp_path / "mqar.json").write_text(json.dumps({"runs": [{**run, "arch": "dense", "lr": 3e-3, "accuracy": 0.98},
                                                             {**run, "arch": "dense", "lr": 1e-2, "accuracy": 0.25}]}))
    subprocess.run([sys.executable, "-m", "benchmarks.zoo.card_mqar", str(tmp_path / "mqar.json"),
                    "--ship", str(tmp_path / "second")], check=True, capture_output=True)
    spec = f"zoo:dense@{tmp_path / 'second' / 'dense'}"
    run = CliRunner().invoke(app, ["run", "niah_single_1", "--ctx", "1k", "-n", "1", "--model", spec,
                                   "--out", str(tmp_path / "results"), "--no-cache"])
    assert run.exit_code == 0, run.output
    (manifest,) = (tmp_path / "results").glob("*/manifest.json")
    training = json.loads(manifest.read_text())["training"]
    assert training["steps"] == 6 and training["tokens_seen"] == 6 * 2 * 600
    assert [(p["steps"], p["pose_span"] > 0) for p in training["phases"]] == [(4, False), (2, True)]
    board = build_board([tmp_path / "results"], "zoo")
    jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text())).validate(board)
    assert board["entries"][0]["training"] == training
    mqar = json.loads(manifest.read_text())["mqar"]
    assert (mqar["accuracy"], mqar["dense_accuracy"], mqar["setup"]["lr"]) == (0.98, 0.98, 3e-3)
    assert [t["lr"] for t in mqar["tried"]] == [3e-3, 1e-2] and mqar["dense_tried"] == [0.98, 0.25]
    assert board["entries"][0]["mqar"] == mqar
