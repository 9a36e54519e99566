"""SSA's routing finds planted needles (key = 2 * q_t, as ``evals probe`` plants them): the PyTorch path
of ``ssa_select`` with its default settings at n = 64K, D = 128 on the CPU (about 10 s).
Run: ``pytest tests/test_ssa_recall.py -q``."""
import pytest
import torch

from kernels.ssa import select as ssa_mod

N, D, NEEDLES = 65536, 128, 64


def needle_recall(seed: int = 0, **kw) -> float:
    """Share of needles (key = 2 * q_t, one per query block, 256..n/2 tokens behind t) whose block is selected."""
    g = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(1, 1, N, D, generator=g) for _ in range(2))
    qb = torch.randperm(N // 128, generator=g)[:NEEDLES] + N // 128  # query blocks in the second half
    t = qb * 64 + torch.randint(0, 64, (NEEDLES,), generator=g)
    d = torch.randint(256, N // 2, (NEEDLES,), generator=g)
    k[0, 0, t - d] = 2 * q[0, 0, t]
    idx = ssa_mod.ssa_select(q, k, **kw)[0, 0, qb]
    return ((idx == ((t - d) // 64)[:, None]).any(-1)).float().mean().item()


@pytest.fixture
def torch_path(monkeypatch):
    monkeypatch.setattr(ssa_mod, "use_triton", lambda t: False)


def test_default_selection_finds_the_needles(torch_path):
    assert needle_recall() >= 63 / 64
