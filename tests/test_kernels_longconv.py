"""Long convolutions (FFT and Triton direct) and S4D (kernel, prefill, decode) against float64 ground truth.

CPU: Triton under ``TRITON_INTERPRET=1`` at small, awkward shapes; CUDA: compiled, plus a full-size ``gpu``
case. Run: ``pytest tests/test_kernels_longconv.py -q``.
"""

import torch

import pytest
from kernel_checks import GPU, rel_err

import longctx.kernels.longconv as LC
from longctx.kernels.longconv import ops, triton_direct
from longctx.kernels.longconv.reference import long_conv_reference, s4d_recurrence_reference

DEV = "cuda" if GPU else "cpu"
TOL = {torch.float32: 1e-5, torch.bfloat16: 2e-2, torch.float64: 1e-12}


@pytest.fixture(autouse=True)
def poison(monkeypatch):
    """The Triton kernel's output starts as NaN, so an unwritten element fails the comparison."""
    monkeypatch.setattr(triton_direct, "_alloc", lambda like: torch.full_like(like, float("nan")))


def conv_inputs(B, C, T, L, seed):
    g = torch.Generator().manual_seed(seed)
    u, k, D = torch.randn(B, C, T, generator=g), torch.randn(C, L, generator=g) / L ** 0.5, torch.randn(C, generator=g)
    return u.double(), k.double(), D.double()


def s4d_inputs(B, C, T, N, seed):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(B, C, T, generator=g, dtype=torch.float64)
    A = torch.complex(-torch.rand(C, N, generator=g, dtype=torch.float64) - 0.05,
                      torch.pi * torch.arange(N, dtype=torch.float64).expand(C, N))   # S4D-Lin
    Cm = torch.randn(C, N, generator=g, dtype=torch.complex128)
    log_dt = torch.rand(C, generator=g, dtype=torch.float64) * 4 - 6
    return u, log_dt, A, Cm, torch.randn(C, generator=g, dtype=torch.float64), \
        torch.randn(B, C, N, generator=g, dtype=torch.complex128)


SHAPES = [(1, 3, 37, 37), (2, 5, 70, 9), (2, 6, 41, 90), (1, 4, 300, 1)]


@pytest.mark.parametrize("method", ["fft", "direct"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("shape", SHAPES, ids=[f"B{b}-C{c}-T{t}-L{length}" for b, c, t, length in SHAPES])
def test_long_conv_matches_direct_sum(shape, dtype, method):
    u, k, D = conv_inputs(*shape, seed=sum(shape))
    y = LC.long_conv(u.to(DEV, dtype), k.to(DEV, torch.float32), D.to(DEV), method=method)
    assert y.dtype == dtype and y.shape == u.shape
    assert rel_err(y.cpu(), long_conv_reference(u.to(dtype).double(), k.float().double(), D)) < TOL[dtype]


def test_auto_takes_the_direct_kernel_up_to_the_crossover_and_fft_above(monkeypatch):
    used = []
    monkeypatch.setattr(ops, "_direct", lambda u, k, D: used.append(("direct", k.shape[-1])) or u)
    monkeypatch.setattr(ops, "_fft", lambda u, k, D: used.append(("fft", k.shape[-1])) or u)
    u = torch.randn(1, 2, 500)
    for L in (1, ops.DIRECT_MAX_TAPS, ops.DIRECT_MAX_TAPS + 1, 900):
        LC.long_conv(u, torch.randn(2, L))
    m = ops.DIRECT_MAX_TAPS
    assert used == [("direct", 1), ("direct", m), ("fft", m + 1), ("fft", 500)]   # taps past T are dropped


def test_fft_path_gradients_match_finite_differences():
    u, k, D = conv_inputs(1, 2, 23, 23, seed=3)
    assert torch.autograd.gradcheck(lambda u, k, D: LC.long_conv(u, k, D, method="fft"),
                                    (u.requires_grad_(), k.requires_grad_(), D.requires_grad_()))


def test_decoding_by_last_position_equals_prefill():
    u, k, D = (t.float().to(DEV) for t in conv_inputs(2, 5, 29, 29, seed=5))
    y = LC.long_conv(u, k, D, method="fft")
    steps = torch.stack([LC.long_conv_last(u[:, :, : t + 1], k, D) for t in range(29)], dim=-1)
    assert rel_err(steps, y) < 1e-5


@pytest.mark.parametrize("shape", [(1, 3, 37, 4), (2, 5, 70, 7)], ids=["B1-C3-T37-N4", "B2-C5-T70-N7"])
@pytest.mark.parametrize("with_state", [False, True], ids=["from-zero", "from-h0"])
def test_s4d_prefill_matches_recurrence(shape, with_state):
    u, log_dt, A, Cm, D, h0 = s4d_inputs(*shape, seed=shape[2])
    h0 = h0 if with_state else None
    y_ref, h_ref = s4d_recurrence_reference(u, log_dt, A, Cm, D, h0)
    y, h = LC.s4d_prefill(u.to(DEV), log_dt.to(DEV), A.to(DEV), Cm.to(DEV), D.to(DEV),
                          None if h0 is None else h0.to(DEV), method="fft")
    assert rel_err(y.cpu(), y_ref) < 1e-12 and rel_err(torch.view_as_real(h.cpu()), torch.view_as_real(h_ref)) < 1e-12
    y32, h32 = LC.s4d_prefill(u.float().to(DEV), log_dt.float().to(DEV), A.to(torch.complex64).to(DEV),
                              Cm.to(torch.complex64).to(DEV), D.float().to(DEV),
                              None if h0 is None else h0.to(torch.complex64).to(DEV))
    assert rel_err(y32.cpu(), y_ref) < 1e-5 and rel_err(torch.view_as_real(h32.cpu()), torch.view_as_real(h_ref)) < 1e-5


def test_s4d_kernel_float32_at_long_length():
    """Blockwise Vandermonde in complex64 against the closed form in complex128, L = 5001 (not a square)."""
    _, log_dt, A, Cm, _, _ = s4d_inputs(1, 3, 1, 16, seed=7)
    A = torch.complex(A.real * 1e-3, A.imag)          # slow decay: the phase reaches ~3e4 rad by t = 5000
    log_dt, A, Cm = log_dt.float(), A.to(torch.complex64), Cm.to(torch.complex64)
    k = LC.s4d_kernel(log_dt.to(DEV), A.to(DEV), Cm.to(DEV), L := 5001)
    log_dt, A, Cm = log_dt.double(), A.to(torch.complex128), Cm.to(torch.complex128)   # the same values
    lam_t = torch.exp((log_dt.exp()[:, None] * A)[..., None] * torch.arange(L, dtype=torch.float64))
    Bbar = (torch.exp(log_dt.exp()[:, None] * A) - 1) / A
    k_ref = 2 * ((Cm * Bbar)[..., None] * lam_t).sum(1).real
    assert k.dtype == torch.float32 and rel_err(k.cpu(), k_ref) < 1e-5


def test_s4d_state_hand_over_and_step():
    """Prefill 11, prefill 9 more from that state, then decode 6 one at a time: the same as one prefill."""
    u, log_dt, A, Cm, D, _ = s4d_inputs(2, 4, 26, 5, seed=11)
    y, h = LC.s4d_prefill(u, log_dt, A, Cm, D)
    y1, h1 = LC.s4d_prefill(u[:, :, :11], log_dt, A, Cm, D)
    y2, h2 = LC.s4d_prefill(u[:, :, 11:20], log_dt, A, Cm, D, h1)
    ys = []
    for t in range(20, 26):
        yt, h2 = LC.s4d_step(u[:, :, t], h2, log_dt, A, Cm, D)
        ys.append(yt)
    assert rel_err(torch.cat([y1, y2, torch.stack(ys, -1)], -1), y) < 1e-12
    assert rel_err(torch.view_as_real(h2), torch.view_as_real(h)) < 1e-12


def test_zoo_decode_state_s4_constant_hyena_grows_by_one_position():
    """What decoding costs: S4 carries [B, d, N] whatever the context; Hyena keeps one more input per token."""
    from longctx.models.zoo import registry

    sizes = {}
    for arch in ("s4", "hyena"):
        torch.manual_seed(0)
        m = registry.build(registry.config(arch, "tiny")).double().eval()
        ids = torch.randint(0, 256, (1, 19))
        with torch.no_grad():
            _, states = m.step(ids[:, :13])
            before = states[0]
            for t in range(13, 19):
                _, states = m.step(ids[:, t:t + 1], states)
        sizes[arch] = (before, states[0])
    (h0, h1), (c0, c1) = sizes["s4"], sizes["hyena"]
    assert h0.shape == h1.shape == (1, registry.WIDTHS["s4"]["tiny"], registry.KNOBS["s4"]["tiny"]["d_state"])
    assert c0["v"].shape[-1] == 13 and c1["v"].shape[-1] == c1["z"].shape[-1] == c1["h"].shape[-1] == 19

def bad_cases():
    u, k, D = (t.float().to(DEV) for t in conv_inputs(1, 4, 20, 8, seed=0))
    yield "u", lambda: LC.long_conv(u[0], k)
    yield "u", lambda: LC.long_conv(u.long(), k)
    yield "k", lambda: LC.long_conv(u, k[:3])
    yield "k", lambda: LC.long_conv(u, k[:, :0])
    yield "D", lambda: LC.long_conv(u, k, D[:2])
    yield "method", lambda: LC.long_conv(u, k, method="winograd")
    yield "k", lambda: LC.long_conv_last(u, k[None])
    su, log_dt, A, Cm, sD, h0 = s4d_inputs(1, 4, 20, 3, seed=1)
    yield "A", lambda: LC.s4d_kernel(log_dt, -A, Cm, 10)
    yield "A", lambda: LC.s4d_kernel(log_dt, A.real, Cm, 10)
    yield "C", lambda: LC.s4d_kernel(log_dt, A, Cm[:, :2], 10)
    yield "log_dt", lambda: LC.s4d_kernel(log_dt[:2], A, Cm, 10)
    yield "L", lambda: LC.s4d_kernel(log_dt, A, Cm, 0)
    yield "h0", lambda: LC.s4d_prefill(su, log_dt, A, Cm, sD, h0[..., :2])
    yield "u", lambda: LC.s4d_prefill(su[:, :3], log_dt, A, Cm, sD)
    yield "u, h", lambda: LC.s4d_step(su[:, :, 0], h0[0], log_dt, A, Cm, sD)


@pytest.mark.parametrize("name,call", list(bad_cases()), ids=lambda x: x if isinstance(x, str) else "")
def test_bad_input_raises_before_launch(name, call, monkeypatch):
    def no_launch(*a, **kw):
        raise AssertionError("a kernel was launched")

    monkeypatch.setattr(triton_direct, "direct_forward", no_launch)
    with pytest.raises(ValueError, match=name):
        call()


@pytest.mark.gpu
@pytest.mark.skipif(not GPU, reason="full-size check needs a CUDA device")
def test_full_size_on_gpu():
    u, k, D = conv_inputs(1, 16, 4096 + 37, 4096 + 37, seed=2)
    ref = long_conv_reference(u.bfloat16().double(), k, D)
    for method in ("fft", "direct"):
        y = LC.long_conv(u.to(DEV, torch.bfloat16), k.to(DEV), D.to(DEV), method=method)
        assert rel_err(y.cpu(), ref) < 2e-2, method
