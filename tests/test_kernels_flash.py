"""Flash-family kernels (dense, sliding window, block-sparse, decode) against the float64 reference.

CPU: the Triton kernels run under ``TRITON_INTERPRET=1`` (set in conftest.py) at small,
odd shapes in float32. GPU (``TRITON_INTERPRET=0 pytest tests/test_kernels_flash.py``): the same tests at
larger shapes in bfloat16 and float16.
"""

import pytest
import torch

from longctx.kernels.flash import block_sparse_attention, decode_attention, fixed_pattern, flash_attention
from longctx.kernels.flash import reference
from longctx.kernels.backend import use_triton
from kernel_checks import GPU, rel_err  # tests/fixtures, on sys.path via conftest

DEV = "cuda" if GPU else "cpu"
DTYPES = [torch.bfloat16, torch.float16] if GPU else [torch.float32]
TOL = {torch.float32: 1e-5, torch.bfloat16: 2e-2, torch.float16: 5e-3}
SCALE = 16 if GPU else 1  # GPU runs multiply T by this


def qkv(B, H, H_kv, T, D, dtype, S=None):
    q = torch.randn(B, H, T, D, device=DEV, dtype=dtype)
    k = torch.randn(B, H_kv, S or T, D, device=DEV, dtype=dtype)
    v = torch.randn(B, H_kv, S or T, D, device=DEV, dtype=dtype)
    assert use_triton(q), "kernels would fall back to the reference: TRITON_INTERPRET was not set before import"
    return q, k, v


DENSE = [
    pytest.param(1, 4, 2, 77, 64, None, id="B1-H4-Hkv2-T77-D64"),
    pytest.param(2, 2, 1, 130, 64, 33, id="B2-H2-Hkv1-T130-D64-window33"),
    pytest.param(1, 2, 2, 65, 128, None, id="B1-H2-T65-D128"),
    pytest.param(1, 2, 1, 45, 128, 100, id="B1-H2-Hkv1-T45-D128-window100"),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("B,H,H_kv,T,D,window", DENSE)
def test_dense_and_window(poison, B, H, H_kv, T, D, window, dtype):
    q, k, v = qkv(B, H, H_kv, T * SCALE, D, dtype)
    out = flash_attention(q, k, v, window=window)
    assert rel_err(out, reference.attention_ref(q, k, v, window=window)) < TOL[dtype]


def random_blocks(B, H, nqb, width, gen):
    """Random key-block lists (unsorted, -1 padded, one repeat per row); some rows lack their diagonal block."""
    idx = torch.full((B, H, nqb, width), -1, dtype=torch.int64)
    for b in range(B):
        for h in range(H):
            for i in range(nqb):
                pick = torch.randperm(i + 1, generator=gen)[: int(torch.randint(1, width + 1, (1,), generator=gen))]
                idx[b, h, i, : len(pick)] = pick
    idx[..., -1] = idx[..., 0]  # a repeated block must count once
    return idx.to(DEV)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("B,H,H_kv,T,D,bs", [
    pytest.param(1, 2, 1, 97, 64, 16, id="B1-H2-Hkv1-T97-D64-bs16"),
    pytest.param(2, 2, 2, 70, 128, 32, id="B2-H2-T70-D128-bs32"),
])
def test_block_sparse(poison, B, H, H_kv, T, D, bs, dtype):
    T *= SCALE
    bs = bs * 4 if GPU else bs
    q, k, v = qkv(B, H, H_kv, T, D, dtype)
    gen = torch.Generator().manual_seed(int(torch.randint(0, 2**31, (1,))))
    idx = random_blocks(B, H, -(-T // bs), 4, gen)
    out = block_sparse_attention(q, k, v, idx, block_size=bs)
    assert rel_err(out, reference.attention_ref(q, k, v, mask=reference.block_mask(idx, T, bs))) < TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("Tq,S,window,chunk", [
    pytest.param(1, 130, None, 40, id="Tq1-S130-chunk40"),
    pytest.param(3, 101, 17, 64, id="Tq3-S101-window17"),
])
def test_decode(poison, Tq, S, window, chunk, dtype):
    q, k, v = qkv(2, 4, 2, Tq, 64, dtype, S=S * SCALE * 4)
    out = decode_attention(q, k, v, window=window, chunk=chunk)
    assert rel_err(out, reference.attention_ref(q, k, v, window=window)) < TOL[dtype]


@pytest.mark.parametrize("local,stride,sinks", [(2, 3, 1), (1, None, 0), (3, 2, 2)])
def test_fixed_pattern_matches_its_definition(poison, local, stride, sinks):
    T, bs = 150, 16
    idx = fixed_pattern(1, 2, T, bs, local=local, stride=stride, sinks=sinks, device=DEV)
    nqb = -(-T // bs)
    i, j = torch.arange(nqb)[:, None], torch.arange(nqb)[None, :]
    want = (j <= i) & ((j < sinks) | (j > i - local) | (((i - j) % stride == 0) if stride else False))
    rows = torch.where(idx[0, 0] < 0, nqb, idx[0, 0]).long().cpu()
    got = torch.zeros(nqb, nqb + 1, dtype=torch.bool).scatter_(1, rows, True)
    assert torch.equal(got[:, :nqb], want)
    q, k, v = qkv(1, 2, 1, T, 64, DTYPES[0])
    out = block_sparse_attention(q, k, v, idx, block_size=bs)
    assert rel_err(out, reference.attention_ref(q, k, v, mask=reference.block_mask(idx, T, bs))) < TOL[DTYPES[0]]


def test_window_equal_to_length_is_dense(poison):
    q, k, v = qkv(1, 2, 2, 50, 64, DTYPES[0])
    assert rel_err(flash_attention(q, k, v, window=50), flash_attention(q, k, v).to(torch.float64)) < TOL[DTYPES[0]]


@pytest.mark.parametrize("call,match", [
    (lambda q, k, v: flash_attention(q, k, v, window=0), "window"),
    (lambda q, k, v: flash_attention(q, k, v, window=-3), "window"),
    (lambda q, k, v: flash_attention(q[0], k, v), "q must be 4-D"),
    (lambda q, k, v: flash_attention(q, k[:, :, :10], v[:, :, :10]), "k length"),
    (lambda q, k, v: flash_attention(q, k.half(), v.half()), "k dtype"),
    (lambda q, k, v: flash_attention(q.int(), k, v), "q must be float"),
    (lambda q, k, v: flash_attention(q, k.to("meta"), v), "k is on"),
    (lambda q, k, v: flash_attention(q[:, :3], k, v), "H_kv=2 must divide"),
    (lambda q, k, v: block_sparse_attention(q, k, v, torch.zeros(1, 4, 9, 2, dtype=torch.int64)), "block_idx"),
    (lambda q, k, v: block_sparse_attention(q, k, v, torch.zeros(1, 4, 2, 2), block_size=32), "block_idx must be int"),
    (lambda q, k, v: block_sparse_attention(q, k, v, torch.zeros(1, 4, 2, 2, dtype=torch.int32), 48), "block_size"),
    (lambda q, k, v: decode_attention(q, k[:, :, :5], v[:, :, :5]), "shorter"),
    (lambda q, k, v: fixed_pattern(1, 4, 40, 16, local=0), "local"),
    (lambda q, k, v: fixed_pattern(1, 4, 40, 16, stride=0), "stride"),
])
def test_bad_input_names_the_argument(call, match):
    q, k, v = (torch.randn(1, h, 40, 64) for h in (4, 2, 2))
    with pytest.raises(ValueError, match=match):
        call(q, k, v)
