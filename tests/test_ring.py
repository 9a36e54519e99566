"""Ring attention across processes on the CPU (gloo) equals single-device causal attention (float64).

Run: ``pytest tests/test_ring.py -q``. One spawn of ``world`` processes runs every case and saves
each rank's output shard; the tests unshard them and compare with the reference.
"""
from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from longctx.kernels.ring import ring_attention, zigzag_shard, zigzag_unshard
from longctx.kernels.ring.reference import causal_attention_ref

# (id, B, H, H_kv, chunk, D, dtype): n = 2 * world * chunk tokens, chunk odd
CASES = [
    ("B1-H4-Hkv2-c3-D16-f64", 1, 4, 2, 3, 16, torch.float64),
    ("B2-H2-Hkv2-c5-D16-f64", 2, 2, 2, 5, 16, torch.float64),
    ("B1-H6-Hkv1-c7-D8-f64", 1, 6, 1, 7, 8, torch.float64),
    ("B1-H4-Hkv2-c9-D16-f32", 1, 4, 2, 9, 16, torch.float32),
]
WORLDS = (2, 3)


def _inputs(case: tuple, world: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    _, B, H, H_kv, chunk, D, dtype = case
    g = torch.Generator().manual_seed(100 * CASES.index(case) + world)
    n = 2 * world * chunk
    return tuple(torch.randn(B, h, n, D, generator=g, dtype=torch.float64).to(dtype) for h in (H, H_kv, H_kv))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        shards = {}
        for case in CASES:
            q, k, v = (zigzag_shard(x, rank, world) for x in _inputs(case, world))
            shards[case[0]] = ring_attention(q, k, v)
        torch.save(shards, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module", params=WORLDS, ids=lambda w: f"world{w}")
def ring_outputs(request, tmp_path_factory) -> tuple[int, dict[str, torch.Tensor]]:
    world, out = request.param, tmp_path_factory.mktemp("ring")
    mp.spawn(_worker, args=(world, _free_port(), str(out)), nprocs=world, join=True)
    per_rank = [torch.load(out / f"rank{r}.pt") for r in range(world)]
    return world, {name: zigzag_unshard([p[name] for p in per_rank]) for name in per_rank[0]}


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_ring_equals_single_device(ring_outputs, case):
    world, outputs = ring_outputs
    q, k, v = _inputs(case, world)
    ref = causal_attention_ref(q, k, v)
    got = outputs[case[0]]
    assert got.shape == q.shape and got.dtype == q.dtype
    tol = 1e-12 if q.dtype == torch.float64 else 1e-5
    err = ((got.double() - ref).norm() / ref.norm()).item()
    assert err < tol, f"relative error {err:.2e} against single-device causal attention"


def test_one_process_without_group_equals_reference():
    q, k, v = _inputs(CASES[0], 1)
    torch.testing.assert_close(ring_attention(q, k, v), causal_attention_ref(q, k, v), rtol=1e-12, atol=1e-12)


def test_zigzag_round_trip_and_balance():
    x = torch.arange(24.0).view(1, 1, 24, 1)
    shards = [zigzag_shard(x, r, 3) for r in range(3)]
    assert shards[0].flatten().tolist() == [0, 1, 2, 3, 20, 21, 22, 23]  # chunks 0 and 5 of 6
    assert torch.equal(zigzag_unshard(shards), x)


def test_world_that_does_not_divide_sequence_is_refused():
    with pytest.raises(ValueError, match=r"n=10 is not divisible by 2\*world=4"):
        zigzag_shard(torch.zeros(1, 1, 10, 4), 0, 2)
    with pytest.raises(ValueError, match="local length T=5 is odd"):
        ring_attention(*(torch.zeros(1, 2, 5, 4) for _ in range(3)))
    with pytest.raises(ValueError, match="H % H_kv"):
        ring_attention(torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4))
