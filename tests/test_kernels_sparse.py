"""DSA, SSA and HyperAttention kernels against their float64 references, selectors index-exact.

CPU: Triton under ``TRITON_INTERPRET=1`` (set in conftest.py), small odd shapes, float32.
GPU (``TRITON_INTERPRET=0 pytest tests/test_kernels_sparse.py``): larger shapes, bfloat16 attention.
"""
import dataclasses

import pytest
import torch

from longctx.kernels.dsa import dsa_attention, dsa_select, lightning_indexer, sparse_attention
from longctx.kernels.dsa import reference as dsa_ref
from longctx.kernels.backend import use_triton
from longctx.kernels.hyper import hyper_attention
from longctx.kernels.hyper.lsh import make_plan
from longctx.kernels.hyper.reference import hyper_ref
from longctx.kernels.ssa import ssa_attention, ssa_select
from longctx.kernels.ssa import reference as ssa_ref
from kernel_checks import GPU, rel_err  # tests/fixtures, on sys.path via conftest

DEV = "cuda" if GPU else "cpu"
DT = torch.bfloat16 if GPU else torch.float32
TOL = 2e-2 if GPU else 1e-5
SCALE = 8 if GPU else 1


def qkv(B, H, H_kv, T, D, dtype=DT):
    q, k, v = (torch.randn(B, h, T, D, device=DEV, dtype=dtype) for h in (H, H_kv, H_kv))
    assert use_triton(q), "kernels would fall back to the reference: TRITON_INTERPRET was not set before import"
    return q, k, v


def indexer_inputs(B, HI, T, DI):
    """Positive q_idx, k_idx: every relu term is active, so no two keys tie at score 0."""
    qi = torch.rand(B, HI, T, DI, device=DEV)
    ki = torch.rand(B, T, DI, device=DEV)
    w = torch.randn(B, T, HI, device=DEV)
    return qi, ki, w


# ---- DSA ----

@pytest.mark.parametrize("B,HI,T,DI,topk", [
    pytest.param(2, 3, 97, 32, 40, id="B2-HI3-T97-DI32-k40"),
    pytest.param(1, 2, 70, 64, 70, id="B1-HI2-T70-DI64-k=n"),
])
def test_dsa_indexer_and_selection_exact(poison, B, HI, T, DI, topk):
    T *= SCALE
    qi, ki, w = indexer_inputs(B, HI, T, DI)
    ref = dsa_ref.indexer_ref(qi, ki, w)
    got = lightning_indexer(qi, ki, w)
    finite = torch.isfinite(ref)
    assert torch.equal(torch.isfinite(got), finite)
    assert rel_err(got[finite], ref[finite]) < 1e-5
    sel = dsa_select(qi, ki, w, topk, chunk_elems=B * T * 40).long()  # several row chunks
    want = dsa_ref.select_ref(qi, ki, w, topk)
    # tie-free rows: the k-th and (k+1)-th reference scores differ by more than fp32 rounding can move them
    top = ref.topk(min(topk + 1, T), dim=-1).values
    gap = top[..., topk - 1] - top[..., -1] if topk < T else torch.full_like(top[..., 0], float("inf"))
    clear = (gap > 1e-5 * top[..., :1].abs().squeeze(-1).clamp_min(1.0)) | ~torch.isfinite(gap)
    assert clear.float().mean() > 0.95
    assert torch.equal(sel[clear], want[clear])


def test_dsa_selection_redoes_rows_the_sampled_threshold_misjudges(monkeypatch):
    """Every 4th key scores far above the rest, so the sampled threshold keeps too few keys: those rows are
    recomputed exactly, and the answer is still the reference's."""
    from longctx.kernels.dsa import ops

    redone = []
    real = ops._exact_row
    monkeypatch.setattr(ops, "_exact_row", lambda *a: redone.append(a[3]) or real(*a))
    qi, ki, w = indexer_inputs(1, 2, 90 * SCALE, 32)
    w = w.abs()
    ki[:, ::4] *= 4
    sel = dsa_select(qi, ki, w, 24, sample_step=4).long()
    assert len(redone) > 10
    assert torch.equal(sel, dsa_ref.select_ref(qi, ki, w, 24))


@pytest.mark.parametrize("B,HI,T,DI,topk,step,tiles", [
    # 4 rows per program (the last program of a chunk part-filled), 2 word steps per row, several slot steps
    pytest.param(1, 2, 139, 32, 20, 4, {}, id="B1-HI2-T139-DI32-k20-step4"),  # T not a multiple of the tiles
    pytest.param(1, 3, 75, 32, 72, 1, {}, id="B1-HI3-T75-DI32-k72-near-n"),
    # the GPU's shape, one row per program (2 word steps of 64 keys per row)
    pytest.param(1, 2, 75, 32, 20, 4, {"rows": 1, "rows_words": 2}, id="rows1-B1-HI2-T75-DI32-k20-step4"),
])
def test_dsa_selection_exact_past_the_cap(monkeypatch, B, HI, T, DI, topk, step, tiles):
    """The selection equals the reference on tie-free rows, with rows past the candidate cap (thresholds from the
    sample, sure keys and a rescored band) and several row chunks."""
    from longctx.kernels.dsa import ops

    monkeypatch.setattr(ops, "INTERP_TILES", dataclasses.replace(ops.INTERP_TILES, **tiles))
    monkeypatch.setattr(ops, "TILES", dataclasses.replace(ops.TILES, **tiles))
    T *= SCALE
    qi, ki, w = indexer_inputs(B, HI, T, DI)
    sel = dsa_select(qi, ki, w, topk, chunk_elems=B * T * 200, sample_step=step).long()
    ref = dsa_ref.indexer_ref(qi, ki, w)
    top = ref.topk(min(topk + 1, T), dim=-1).values
    gap = top[..., topk - 1] - top[..., -1] if topk < T else torch.full_like(top[..., 0], float("inf"))
    clear = (gap > 1e-5 * top[..., :1].abs().squeeze(-1).clamp_min(1.0)) | ~torch.isfinite(gap)
    assert clear.float().mean() > 0.95
    assert torch.equal(sel[clear], dsa_ref.select_ref(qi, ki, w, topk)[clear])


@pytest.mark.parametrize("B,H,H_kv,T,D,K", [
    pytest.param(1, 4, 2, 45, 64, 20, id="B1-H4-Hkv2-T45-D64-k20"),
    pytest.param(1, 2, 1, 33, 128, 33, id="B1-H2-Hkv1-T33-D128-k33"),
])
def test_dsa_attention(poison, B, H, H_kv, T, D, K):
    T *= SCALE
    q, k, v = qkv(B, H, H_kv, T, D)
    qi, ki, w = indexer_inputs(B, 2, T, 32)
    out = dsa_attention(q, k, v, qi, ki, w, topk=K)
    assert rel_err(out, dsa_ref.dsa_ref(q, k, v, qi, ki, w, K)) < TOL


def test_dsa_sparse_attention_with_given_indices(poison):
    q, k, v = qkv(1, 2, 2, 40, 64)
    idx = torch.stack([torch.randperm(t + 1)[:8].sort().values if t >= 7 else
                       torch.cat([torch.arange(t + 1), torch.full((7 - t,), -1)]) for t in range(40)])[None]
    out = sparse_attention(q, k, v, idx.to(DEV))
    assert rel_err(out, dsa_ref.sparse_attention_ref(q, k, v, idx.to(DEV))) < TOL


# ---- SSA ----

SSA = [
    pytest.param(1, 4, 2, 300, 64, 16, dict(topk=3, beam=2, fanout=2, local=2, top_cap=4, top_beam=3), id="B1-H4-Hkv2-T300-bs16-4levels"),
    pytest.param(2, 2, 1, 130, 32, 16, dict(topk=2, beam=2, fanout=3, local=1, top_cap=2), id="B2-H2-Hkv1-T130-D32-fanout3"),
    pytest.param(1, 2, 1, 200, 64, 16, {"topk": 2, "beam": 2, "fanout": 2, "local": 1, "top_cap": 3,
                                         "top_beam": None, "bases": 1, "trunc": 0.0},
                 id="B1-H2-Hkv1-T200-D64-v2-rule"),
    pytest.param(1, 4, 2, 300, 64, 16, dict(topk=2, beam=3, fanout=2, local=1, top_cap=4, top_beam=3, exact=5,
                                                                                 trunc=1.0, trunc_from=1),
                 id="B1-H4-Hkv2-T300-bs16-exact5-trunc_from1"),
    pytest.param(1, 3, 1, 333, 64, 16, dict(topk=2, beam=3, fanout=2, local=1, top_cap=5, top_beam=4, exact=4,
                                            trunc=(1.0, 1.25, 1.5, 2.0), qnorm=True),
                 id="B1-H3-Hkv1-T333-bs16-exact4-trunc_per_level-qnorm"),
    pytest.param(2, 2, 2, 190, 32, 32, dict(topk=2, beam=2, fanout=3, local=2, top_cap=2, trunc=(0.0, 1.5), qnorm=True),
                 id="B2-H2-Hkv2-T190-D32-bs32-trunc_leaves0-qnorm"),
]


@pytest.mark.parametrize("B,H,H_kv,T,D,bs,kw", SSA)
def test_ssa_selection_exact(B, H, H_kv, T, D, bs, kw):
    q, k, _ = qkv(B, H, H_kv, T, D, torch.float32)
    assert torch.equal(ssa_select(q, k, bs, **kw).long().cpu(), ssa_ref.select_ref(q.cpu(), k.cpu(), bs, **kw))


@pytest.mark.parametrize("B,H,H_kv,T,D,bs,kw", SSA)
def test_ssa_attention(poison, B, H, H_kv, T, D, bs, kw):
    q, k, v = qkv(B, H, H_kv, T, D)
    out = ssa_attention(q, k, v, bs, **kw)
    ref = ssa_ref.attention_ref(q, k, v, mask=ssa_ref.block_mask(ssa_select(q, k, bs, **kw), T, bs))
    assert rel_err(out, ref) < TOL


@pytest.mark.parametrize("bases", [1, 2])
def test_ssa_bounds_cover_every_key(bases):
    """A node's bound q+ . kmax + q- . kmin over the bases' channels is at least bases * (q . k) for every
    key under it, at every level (one Quest bound per orthonormal basis)."""
    k = torch.randn(300, 32, dtype=torch.float64)
    q = torch.randn(5, 32, dtype=torch.float64)
    qx = q @ ssa_ref.basis(32, bases)
    for lvl, (hi, lo) in enumerate(ssa_ref.hierarchy_ref(k, 16, 3, 2, bases)):
        span = 16 * 3**lvl
        for node in range(hi.shape[0]):
            bound = torch.maximum(qx * hi[node], qx * lo[node]).sum(1)
            assert (bound[:, None] >= bases * q @ k[node * span:(node + 1) * span].T - 1e-12).all()


def test_ssa_basis_is_orthonormal():
    """Each of the bases' D x D blocks is orthonormal, the first the identity."""
    r = ssa_ref.basis(64, 2)
    assert torch.equal(r[:, :64], torch.eye(64, dtype=torch.float64))
    torch.testing.assert_close(r[:, 64:].T @ r[:, 64:], torch.eye(64, dtype=torch.float64))


def test_ssa_routes_to_a_strong_match():
    """A key block that matches one query far better than anything else is selected for that query."""
    q, k, _ = qkv(1, 1, 1, 512, 64, torch.float32)
    k[0, 0, 100] = q[0, 0, 500] * 8
    idx = ssa_select(q, k, 16, topk=2, beam=2, fanout=4, local=1, top_cap=4)
    assert 100 // 16 in idx[0, 0, 500 // 16].tolist()


def test_ssa_second_pass_keeps_the_exact_best_leaf():
    """With ``exact``, a leaf the bounds rank low but whose keys hold the best q . k is kept: one faint-norm
    key aligned with a query beats blocks whose bounds are inflated by large random keys."""
    q, k, _ = qkv(1, 1, 1, 1024, 64, torch.float32)
    k[0, 0, :1000] *= 1.6  # every other leaf gets wide bounds
    k[0, 0, 130] = q[0, 0, 1000] * 2.0
    qb, leaf = 1000 // 16, 130 // 16
    kw = dict(topk=2, beam=16, fanout=4, local=1, top_cap=16, top_beam=16)
    got = ssa_select(q, k, 16, exact=64, **kw)[0, 0, qb].tolist()
    assert leaf in got
    assert torch.equal(ssa_select(q, k, 16, exact=64, **kw).long().cpu(), ssa_ref.select_ref(q.cpu(), k.cpu(), 16, exact=64, **kw))


# ---- HyperAttention ----

@pytest.mark.parametrize("B,H,H_kv,T,D,bs,m", [
    pytest.param(1, 4, 2, 130, 64, 32, 40, id="B1-H4-Hkv2-T130-D64-bs32-m40"),
    pytest.param(2, 2, 1, 77, 128, 16, 20, id="B2-H2-Hkv1-T77-D128-bs16-m20"),
])
def test_hyper_attention(poison, B, H, H_kv, T, D, bs, m):
    T *= SCALE
    bs = bs * 2 if GPU else bs
    q, k, v = qkv(B, H, H_kv, T, D)
    seed = int(torch.randint(0, 1000, (1,)))
    out = hyper_attention(q, k, v, bs, m, n_bits=4, seed=seed)
    assert rel_err(out, hyper_ref(q, k, v, make_plan(q, k, bs, m, 4, seed), bs)) < TOL


def test_hyper_is_causal():
    """Huge values after position 40 leave every output before it unchanged (no weight on a future key)."""
    q, k, v = qkv(1, 2, 2, 64, 64)
    v2 = v.clone()
    v2[:, :, 40:] = 1e4
    a = hyper_attention(q, k, v, 16, 16, n_bits=3, seed=1)
    b = hyper_attention(q, k, v2, 16, 16, n_bits=3, seed=1)
    assert torch.equal(a[:, :, :40], b[:, :, :40])
    assert b[:, :, 40:].abs().amax() > 100


# ---- bad input ----

@pytest.mark.parametrize("call,match", [
    (lambda q, k, v, qi, ki, w: dsa_attention(q, k, v, qi, ki, w, topk=41), "topk=41 is larger"),
    (lambda q, k, v, qi, ki, w: dsa_attention(q, k, v, qi, ki, w, topk=0), "topk"),
    (lambda q, k, v, qi, ki, w: dsa_select(qi, ki[:, :5], w), "k_idx"),
    (lambda q, k, v, qi, ki, w: dsa_select(qi, ki, w[..., :1]), "w must be"),
    (lambda q, k, v, qi, ki, w: dsa_select(qi, ki, w, 8, chunk_elems=1 << 31), "chunk_elems"),
    (lambda q, k, v, qi, ki, w: lightning_indexer(qi.int(), ki, w), "q_idx must be float"),
    (lambda q, k, v, qi, ki, w: sparse_attention(q, k, v, torch.zeros(1, 40, 4)), "idx must be int"),
    (lambda q, k, v, qi, ki, w: ssa_attention(q, k, v, 16, topk=3, local=0), "local"),
    (lambda q, k, v, qi, ki, w: ssa_attention(q, k, v, 16, topk=50), "topk=50"),
    (lambda q, k, v, qi, ki, w: ssa_select(q, k[..., :32], 16, topk=2), "k must be"),
    (lambda q, k, v, qi, ki, w: ssa_select(q, k, 16, topk=2, bases=3), "bases"),
    (lambda q, k, v, qi, ki, w: ssa_select(q, k, 16, topk=2, trunc=-1.0), "trunc"),
    (lambda q, k, v, qi, ki, w: ssa_select(q, k, 16, topk=2, top_beam=0), "top_beam"),
    (lambda q, k, v, qi, ki, w: ssa_select(q, k, 16, topk=4, exact=3), "exact"),
    (lambda q, k, v, qi, ki, w: ssa_select(q, k, 16, topk=2, trunc_from=0), "trunc_from"),
    (lambda q, k, v, qi, ki, w: ssa_select(q, k, 16, topk=2, trunc=(1.0, -1.0)), "trunc"),
    (lambda q, k, v, qi, ki, w: ssa_select(q, k, 16, topk=2, trunc=()), "trunc"),
    (lambda q, k, v, qi, ki, w: ssa_select(q, k, 16, topk=2, qnorm=1), "qnorm"),
    (lambda q, k, v, qi, ki, w: hyper_attention(q, k, v, 16, n_samples=41), "n_samples=41 is larger"),
    (lambda q, k, v, qi, ki, w: hyper_attention(q, k, v, 24, n_samples=8), "block_size"),
    (lambda q, k, v, qi, ki, w: hyper_attention(q, k.double(), v, 16, n_samples=8), "k must be float"),
])
def test_bad_input_names_the_argument(call, match):
    q, k, v = (torch.randn(1, h, 40, 64) for h in (4, 2, 2))
    qi, ki, w = torch.rand(1, 2, 40, 32), torch.rand(1, 40, 32), torch.randn(1, 40, 2)
    with pytest.raises(ValueError, match=match):
        call(q, k, v, qi, ki, w)
