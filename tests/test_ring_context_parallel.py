"""The zoo's dense model with its attention layers run through ring attention (``--context-parallel 2``),
launched with torchrun as 2 gloo processes on the CPU: the logits equal the single-process forward.

Run: ``pytest tests/test_ring_context_parallel.py -q``.
"""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from longctx.models.errors import ModelError
from longctx.models.zoo import checkpoint, registry
from longctx.models.zoo.context_parallel import ContextShard, sharded


@pytest.fixture(scope="module")
def dense_ckpt(tmp_path_factory):
    torch.manual_seed(3)
    model = registry.build(registry.config("dense", "tiny"))
    folder = tmp_path_factory.mktemp("dense")
    checkpoint.save(folder, model, {"steps": 0})
    return folder, model.eval()


def _launch(*args: str, nproc: int = 2) -> subprocess.CompletedProcess:
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    return subprocess.run([*torchrun, "-m", "longctx.models.zoo.context_parallel", *args], capture_output=True, text=True,
                          timeout=240, check=False)


@pytest.mark.slow
def test_two_processes_give_the_single_process_logits(dense_ckpt, tmp_path):
    folder, model = dense_ckpt
    out = tmp_path / "logits.pt"
    # 61 tokens: not a multiple of 2 * world, so the padding path runs too
    p = _launch("--model", f"zoo:dense@{folder},device=cpu", "--context-parallel", "2", "--tokens", "61",
                "--out", str(out))
    assert p.returncode == 0, p.stderr[-3000:]
    got = torch.load(out)
    with torch.no_grad():
        want = model(got["ids"])
    assert got["logits"].shape == want.shape == (1, 61, model.cfg.vocab_size)
    torch.testing.assert_close(got["logits"], want, rtol=1e-5, atol=1e-5)
    assert '"world": 2' in p.stdout


@pytest.mark.slow
def test_context_parallel_without_as_many_processes_exits_2():
    p = subprocess.run([sys.executable, "-m", "longctx.models.zoo.context_parallel", "--model", "zoo:dense,init=random,size=tiny",
                        "--context-parallel", "2", "--tokens", "8"], capture_output=True, text=True, timeout=120,
                       check=False)
    assert p.returncode == 2 and "launch with torchrun --standalone --nproc-per-node 2" in p.stderr
    assert "Traceback" not in p.stderr


def test_only_the_dense_architecture_is_split():
    swa = registry.build(registry.config("swa", "tiny"))
    with pytest.raises(ModelError, match="dense model only; zoo:swa"), sharded(swa, ContextShard(0, 2, 8)):
        pass


def test_each_rank_rotates_its_tokens_by_their_global_positions():
    assert ContextShard(0, 2, 8).positions(torch.device("cpu")).tolist() == [0, 1, 6, 7]
    assert ContextShard(1, 2, 8).positions(torch.device("cpu")).tolist() == [2, 3, 4, 5]
