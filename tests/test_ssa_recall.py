"""SSA's routing finds planted needles as ``evals probe`` plants them (16 per head, key = 2 * q_t): the
PyTorch path of ``ssa_select`` with its default settings at n = 64K, D = 128 on the CPU (about 10 s).
Run: ``pytest tests/test_ssa_recall.py -q``."""
import pytest
import torch

from longctx.kernels.ssa import select as ssa_mod

N, D, H, NEEDLES = 65536, 128, 2, 16


def needle_recall(seed: int = 0, **kw) -> float:
    """Share of needles (one per query block, in the second half, 256..n/2 tokens behind their query t)
    whose key block the selector keeps for t's block; ``kw`` goes to ``ssa_select``."""
    g = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(1, H, N, D, generator=g) for _ in range(2))
    qb = torch.stack([torch.randperm(N // 128, generator=g)[:NEEDLES] + N // 128 for _ in range(H)])  # [H, NEEDLES]
    t = qb * 64 + torch.randint(0, 64, (H, NEEDLES), generator=g)
    d = torch.randint(256, N // 2, (H, NEEDLES), generator=g)
    heads = torch.arange(H)[:, None]
    k[0, heads, t - d] = 2 * q[0, heads, t]
    idx = ssa_mod.ssa_select(q, k, **kw)[0, heads, qb]  # [H, NEEDLES, K]
    return (idx == ((t - d) // 64)[..., None]).any(-1).float().mean().item()


@pytest.fixture
def torch_path(monkeypatch):
    monkeypatch.setattr(ssa_mod, "use_triton", lambda t: False)


def test_default_selection_finds_the_needles(torch_path):
    assert needle_recall() == 1.0
