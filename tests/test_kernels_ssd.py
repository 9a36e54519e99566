"""Mamba-2 SSD scan and short causal conv against their naive float64 recurrences.

CPU: Triton under ``TRITON_INTERPRET=1`` at small, awkward shapes; CUDA: compiled, plus full-size ``gpu``
cases. Run: ``pytest tests/test_kernels_ssd.py -q``.
"""

import torch

import pytest
import torch.nn.functional as F

from kernel_checks import GPU  # tests/fixtures, on sys.path via conftest
import longctx.kernels.ssd as S
from longctx.kernels.linear import triton_chunk
from longctx.kernels.ssd import triton_conv
from longctx.kernels.ssd.reference import conv1d_reference, ssd_reference

DEV = "cuda" if GPU else "cpu"


@pytest.fixture(autouse=True)
def poison(monkeypatch):
    """Every buffer the kernels write starts as NaN, so an unwritten element fails the comparison."""
    monkeypatch.setattr(triton_chunk, "_alloc",
                        lambda shape, dtype, device: torch.full(shape, float("nan"), dtype=dtype, device=device))
    monkeypatch.setattr(triton_conv, "_alloc", lambda like: torch.full_like(like, float("nan")))


def make(B, H, G, T, P, N, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=gen)

    x, Bm, Cm = r(B, H, T, P), r(B, G, T, N), r(B, G, T, N)
    dt = F.softplus(r(B, H, T) - 1.0)
    A, D, h0 = -torch.rand(H, generator=gen) * 2 - 0.1, r(H), r(B, H, N, P)
    out = [t.to(DEV) for t in (x, dt, A, Bm, Cm, D, h0)]
    for i in (0, 3, 4):
        out[i] = out[i].to(dtype)
    return out


def rel(a, b):
    return float((a.double() - b.double()).norm() / b.double().norm())


def tol(dtype):
    if dtype == torch.bfloat16:
        return 3e-2
    return 5e-3 if GPU else 2e-5


def ref(x, dt, A, Bm, Cm, D, h0):
    return ssd_reference(*(t.double() for t in (x, dt, A, Bm, Cm)), D.double(), h0.double())


@pytest.mark.parametrize("shape", [(1, 2, 1, 37, 12, 20, 16), (2, 4, 2, 70, 16, 9, 32)],
                         ids=["B1-H2-G1-T37-P12-N20-C16", "B2-H4-G2-T70-P16-N9-C32"])
def test_scan_matches_recurrence(shape):
    B, H, G, T, P, N, C = shape
    x, dt, A, Bm, Cm, D, h0 = make(B, H, G, T, P, N, seed=T)
    y, h = S.ssd_chunk_scan(x, dt, A, Bm, Cm, D, initial_state=h0, output_final_state=True, chunk_size=C)
    y_ref, h_ref = ref(x, dt, A, Bm, Cm, D, h0)
    assert y.shape == (B, H, T, P) and h.shape == (B, H, N, P)
    assert rel(y, y_ref) < tol(x.dtype) and rel(h, h_ref) < tol(x.dtype)


def test_step_agrees_with_scan():
    x, dt, A, Bm, Cm, D, h0 = make(1, 2, 1, 7, 12, 20, seed=4)
    y, h_end = S.ssd_chunk_scan(x, dt, A, Bm, Cm, D, initial_state=h0, output_final_state=True, chunk_size=16)
    h, ys = h0, []
    for t in range(x.shape[2]):
        yt, h = S.ssd_step(x[:, :, t], dt[:, :, t], A, Bm[:, :, t], Cm[:, :, t], h, D)
        ys.append(yt)
    assert rel(torch.stack(ys, dim=2), y) < tol(x.dtype) and rel(h, h_end) < tol(x.dtype)


def test_state_hand_over():
    x, dt, A, Bm, Cm, D, h0 = make(1, 2, 2, 45, 8, 16, seed=9)
    y, h = S.ssd_chunk_scan(x, dt, A, Bm, Cm, D, initial_state=h0, output_final_state=True, chunk_size=16)
    cut = 19
    a = [t[:, :, :cut] for t in (x, dt)] + [A] + [t[:, :, :cut] for t in (Bm, Cm)]
    b = [t[:, :, cut:] for t in (x, dt)] + [A] + [t[:, :, cut:] for t in (Bm, Cm)]
    y1, h1 = S.ssd_chunk_scan(*a, D, initial_state=h0, output_final_state=True, chunk_size=16)
    y2, h2 = S.ssd_chunk_scan(*b, D, initial_state=h1, output_final_state=True, chunk_size=16)
    assert rel(torch.cat([y1, y2], dim=2), y) < tol(x.dtype) and rel(h2, h) < tol(x.dtype)


@pytest.mark.parametrize("W,state,act", [(4, True, "silu"), (3, False, None), (4, False, "silu")],
                         ids=["W4-state-silu", "W3-nostate", "W4-nostate-silu"])
def test_conv_matches_reference(W, state, act):
    gen = torch.Generator().manual_seed(W)
    x, w, b = torch.randn(2, 21, 137, generator=gen), torch.randn(21, W, generator=gen), torch.randn(21, generator=gen)
    cs = torch.randn(2, 21, W - 1, generator=gen) if state else None
    y, fs = S.causal_conv1d(x.to(DEV), w.to(DEV), b.to(DEV), conv_state=None if cs is None else cs.to(DEV),
                            activation=act)
    y_ref, fs_ref = conv1d_reference(x.double(), w.double(), b.double(), None if cs is None else cs.double(), act)
    assert rel(y.cpu(), y_ref) < 1e-5 and rel(fs.cpu(), fs_ref) < 1e-6


def test_conv_step_and_hand_over():
    gen = torch.Generator().manual_seed(1)
    x, w, b = torch.randn(1, 10, 12, generator=gen), torch.randn(10, 4, generator=gen), torch.randn(10, generator=gen)
    x, w, b = x.to(DEV), w.to(DEV), b.to(DEV)
    y, fs = S.causal_conv1d(x, w, b, activation="silu")
    y1, s1 = S.causal_conv1d(x[:, :, :2], w, b, activation="silu")  # shorter than the conv state
    y2, s2 = S.causal_conv1d(x[:, :, 2:7], w, b, conv_state=s1, activation="silu")
    state, ys = s2, []
    for t in range(7, 12):
        yt, state = S.causal_conv1d_step(x[:, :, t], state, w, b, activation="silu")
        ys.append(yt)
    assert rel(torch.cat([y1, y2, torch.stack(ys, dim=-1)], dim=-1), y) < 1e-5 and rel(state, fs) < 1e-6


def bad_cases():
    x, dt, A, Bm, Cm, D, h0 = make(1, 2, 1, 20, 8, 16)
    yield "dt", lambda: S.ssd_chunk_scan(x, -dt, A, Bm, Cm)
    yield "A", lambda: S.ssd_chunk_scan(x, dt, -A, Bm, Cm)
    yield "B", lambda: S.ssd_chunk_scan(x, dt, A, Bm[:, :, :5], Cm)
    yield "A", lambda: S.ssd_chunk_scan(x, dt, A[:1], Bm, Cm)
    yield "chunk_size", lambda: S.ssd_chunk_scan(x, dt, A, Bm, Cm, chunk_size=24)
    yield "initial_state", lambda: S.ssd_chunk_scan(x, dt, A, Bm, Cm, initial_state=h0[..., :3])
    xc, w = torch.randn(1, 4, 9, device=DEV), torch.randn(4, 4, device=DEV)
    yield "weight", lambda: S.causal_conv1d(xc, w[:3])
    yield "conv_state", lambda: S.causal_conv1d(xc, w, conv_state=torch.zeros(1, 4, 2, device=DEV))
    yield "activation", lambda: S.causal_conv1d(xc, w, activation="gelu")


@pytest.mark.parametrize("name,call", list(bad_cases()), ids=lambda x: x if isinstance(x, str) else "")
def test_bad_input_raises_before_launch(name, call, monkeypatch):
    def no_launch(*a, **kw):
        raise AssertionError("a kernel was launched")

    monkeypatch.setattr(triton_chunk, "chunk_forward", no_launch)
    monkeypatch.setattr(triton_conv, "conv_forward", no_launch)
    with pytest.raises(ValueError, match=name):
        call()


@pytest.mark.gpu
@pytest.mark.skipif(not GPU, reason="full-size check needs a CUDA device")
def test_full_size_on_gpu():
    x, dt, A, Bm, Cm, D, h0 = make(1, 8, 1, 4096 + 37, 64, 128, dtype=torch.bfloat16, seed=2)
    y, h = S.ssd_chunk_scan(x, dt, A, Bm, Cm, D, initial_state=h0, output_final_state=True)
    y_ref, h_ref = ref(x, dt, A, Bm, Cm, D, h0)
    assert rel(y, y_ref) < 3e-2 and rel(h, h_ref) < 3e-2
    xc, w = torch.randn(1, 4096, 8192 + 5, device=DEV, dtype=torch.bfloat16), torch.randn(4096, 4, device=DEV)
    yc, _ = S.causal_conv1d(xc, w, activation="silu")
    yr, _ = S.causal_conv1d(xc.double().cpu(), w.double().cpu(), activation="silu")
    assert rel(yc.cpu(), yr) < 1e-2
