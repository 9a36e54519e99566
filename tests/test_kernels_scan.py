"""Mamba-1 selective scan (Triton prefill and step, PyTorch doubling scan) against the naive float64 recurrence.

CPU: Triton under ``TRITON_INTERPRET=1`` at small, awkward shapes; CUDA: compiled, plus a full-size ``gpu``
case. Run: ``pytest tests/test_kernels_scan.py -q``.
"""

import torch

import pytest
import torch.nn.functional as F
from kernel_checks import GPU, rel_err  # tests/fixtures, on sys.path via conftest
from zoo_steps import stepped_logits

import longctx.kernels.scan as S
from longctx.kernels.scan import triton_scan
from longctx.kernels.scan.reference import scan_reference
from longctx.kernels.scan.torch_scan import linear_scan, selective_scan_torch

DEV = "cuda" if GPU else "cpu"
pytestmark = pytest.mark.usefixtures("poison")   # every buffer a kernel writes starts as NaN


def make(B, D, G, N, T, dtype=torch.float32, seed=0, device=DEV):
    """Fresh inputs: x, dt, A, B, C, D_skip, z, h0 (x, B, C, z in ``dtype``; the rest float32)."""
    gen = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=gen)

    x, Bm, Cm, z = r(B, D, T), r(B, G, N, T), r(B, G, N, T), r(B, D, T)
    dt = F.softplus(r(B, D, T) - 1.0)
    A = -torch.rand(D, N, generator=gen) * 4 - 0.1
    out = [t.to(device) for t in (x, dt, A, Bm, Cm, r(D), z, r(B, D, N))]
    for i in (0, 3, 4, 6):
        out[i] = out[i].to(dtype)
    return out


def rel(a, b):
    return rel_err(a.cpu(), b.cpu())


TOL = {torch.float32: 2e-5, torch.float16: 5e-3, torch.bfloat16: 3e-2}


def ref(*args):
    return scan_reference(*(None if t is None else t.double().cpu() for t in args))


CASES = [((1, 5, 1, 16, 37), torch.float32, True), ((2, 8, 2, 5, 70), torch.float32, False),
         ((1, 3, 3, 9, 20), torch.bfloat16, True), ((2, 4, 1, 16, 33), torch.float16, False)]


@pytest.mark.parametrize("shape,dtype,full", CASES,
                         ids=["B1-D5-G1-N16-T37-fp32-Dz-h0", "B2-D8-G2-N5-T70-fp32-bare", "B1-D3-G3-N9-T20-bf16-Dz-h0",
                              "B2-D4-G1-N16-T33-fp16-bare"])
def test_prefill_matches_recurrence(shape, dtype, full):
    x, dt, A, Bm, Cm, D, z, h0 = make(*shape, dtype=dtype, seed=shape[-1])
    if not full:
        D = z = h0 = None
    y, h = S.selective_scan(x, dt, A, Bm, Cm, D, z, initial_state=h0, output_final_state=True)
    y_ref, h_ref = ref(x, dt, A, Bm, Cm, D, z, h0)
    assert y.dtype == dtype and h.dtype == torch.float32
    assert y.shape == x.shape and h.shape == (shape[0], shape[1], shape[3])
    assert rel(y, y_ref) < TOL[dtype] and rel(h, h_ref) < TOL[dtype]


def test_step_agrees_with_prefill():
    x, dt, A, Bm, Cm, D, z, h0 = make(2, 7, 1, 6, 9, seed=3)
    y, h_end = S.selective_scan(x, dt, A, Bm, Cm, D, z, initial_state=h0, output_final_state=True)
    h, ys = h0, []
    for t in range(x.shape[-1]):
        yt, h = S.selective_step(x[..., t], dt[..., t], A, Bm[..., t], Cm[..., t], h, D, z[..., t])
        ys.append(yt)
    assert rel(torch.stack(ys, dim=-1), y) < 2e-5 and rel(h, h_end) < 2e-5


def test_state_hand_over():
    """Prefill T1 then T2 from the handed-over state equals one prefill of T1 + T2 (cut inside a chunk)."""
    x, dt, A, Bm, Cm, D, z, h0 = make(1, 5, 5, 8, 150, seed=9)
    y, h = S.selective_scan(x, dt, A, Bm, Cm, D, z, initial_state=h0, output_final_state=True)
    cut = 83
    y1, h1 = S.selective_scan(*(t[..., :cut] for t in (x, dt)), A, *(t[..., :cut] for t in (Bm, Cm)), D,
                              z[..., :cut], initial_state=h0, output_final_state=True)
    y2, h2 = S.selective_scan(*(t[..., cut:] for t in (x, dt)), A, *(t[..., cut:] for t in (Bm, Cm)), D,
                              z[..., cut:], initial_state=h1, output_final_state=True)
    assert rel(torch.cat([y1, y2], dim=-1), y) < 2e-5 and rel(h2, h) < 2e-5


def test_strong_decay_stays_finite():
    """dt·A down to -400 per token (exp underflows to 0): the state forgets, nothing overflows."""
    x, dt, A, Bm, Cm, D, _, h0 = make(1, 4, 1, 16, 40, seed=5)
    dt = dt * 40
    y, h = S.selective_scan(x, dt, A * 10, Bm, Cm, D, initial_state=h0, output_final_state=True)
    y_ref, h_ref = ref(x, dt, A * 10, Bm, Cm, D, None, h0)
    assert rel(y, y_ref) < 2e-5 and rel(h, h_ref) < 2e-5


def test_torch_scan_matches_recurrence_and_its_gradients():
    """The training path: float64 outputs equal the recurrence; its custom backward equals autograd
    through the recurrence, for every input."""
    args = [t.double().cpu().requires_grad_() for t in make(2, 4, 2, 3, 45, seed=11, device="cpu")]
    y, h = selective_scan_torch(*args)
    y_ref, h_ref = scan_reference(*args)
    assert rel(y.detach(), y_ref.detach()) < 1e-12 and rel(h.detach(), h_ref.detach()) < 1e-12
    w = torch.randn_like(y)
    grads = torch.autograd.grad((y * w).sum() + h.sum(), args)
    grads_ref = torch.autograd.grad((y_ref * w).sum() + h_ref.sum(), args)
    for g, gr in zip(grads, grads_ref):
        assert rel(g, gr) < 1e-10


@pytest.mark.parametrize("T", [1, 4, 5, 16, 17, 100])
def test_two_level_linear_scan_matches_the_loop(T):
    """Chunks of 4 (so T = 100 recurses three levels deep), lengths on and off chunk multiples."""
    gen = torch.Generator().manual_seed(T)
    a, u = torch.rand(2, 3, T, generator=gen, dtype=torch.float64), torch.randn(2, 3, T, generator=gen, dtype=torch.float64)
    h, hs = torch.zeros(2, 3, dtype=torch.float64), []
    for t in range(T):
        h = a[..., t] * h + u[..., t]
        hs.append(h)
    assert rel(linear_scan(a, u, chunk=4), torch.stack(hs, dim=-1)) < 1e-14


def test_zoo_mamba1_inference_through_the_kernels_matches_training(monkeypatch):
    """The zoo's GPU inference path (Triton scan, step and ssd conv), run here under the interpreter: a
    prefill, a continuation and single-token steps give the training path's logits."""
    from longctx.models.zoo import mamba1, registry

    monkeypatch.setattr(mamba1, "_kernels", lambda x: mamba1._Kernels())
    torch.manual_seed(0)
    m = registry.build(registry.config("mamba1", "tiny")).eval()
    ids = torch.randint(0, 256, (1, 17))
    with torch.no_grad():
        full = m(ids)
    assert rel(stepped_logits(m, ids, (7, 14)), full) < 1e-5


def bad_cases():
    x, dt, A, Bm, Cm, D, z, h0 = make(1, 4, 2, 8, 20)
    yield "dt", lambda: S.selective_scan(x, -dt, A, Bm, Cm)
    yield "dt", lambda: S.selective_scan(x, dt * float("inf"), A, Bm, Cm)
    yield "A", lambda: S.selective_scan(x, dt, -A, Bm, Cm)
    yield "A", lambda: S.selective_scan(x, dt, A[:3], Bm, Cm)
    yield "B", lambda: S.selective_scan(x, dt, A, Bm[..., :5], Cm)
    yield "C", lambda: S.selective_scan(x, dt, A, Bm, torch.randn(1, 3, 8, 20, device=DEV))
    yield "x", lambda: S.selective_scan(x[0], dt, A, Bm, Cm)
    yield "x", lambda: S.selective_scan(x[..., :0], dt[..., :0], A, Bm[..., :0], Cm[..., :0])
    yield "z", lambda: S.selective_scan(x, dt, A, Bm, Cm, D, z[..., :4])
    yield "D", lambda: S.selective_scan(x, dt, A, Bm, Cm, D[:2])
    yield "initial_state", lambda: S.selective_scan(x, dt, A, Bm, Cm, initial_state=h0[..., :3])
    yield "state", lambda: S.selective_step(x[..., 0], dt[..., 0], A, Bm[..., 0], Cm[..., 0], h0[:, :2])
    yield "dt", lambda: S.selective_step(x[..., 0], -dt[..., 0], A, Bm[..., 0], Cm[..., 0], h0)
    yield "B", lambda: S.selective_scan(x, dt, A, Bm[:, :, :3], Cm, validate=False)   # shapes checked regardless


@pytest.mark.parametrize("name,call", list(bad_cases()), ids=lambda x: x if isinstance(x, str) else "")
def test_bad_input_raises_before_launch(name, call, monkeypatch):
    def no_launch(*a, **kw):
        raise AssertionError("a kernel was launched")

    monkeypatch.setattr(triton_scan, "scan_forward", no_launch)
    monkeypatch.setattr(triton_scan, "step_forward", no_launch)
    with pytest.raises(ValueError, match=name):
        call()


@pytest.mark.gpu
@pytest.mark.skipif(not GPU, reason="full-size check needs a CUDA device")
def test_full_size_on_gpu():
    x, dt, A, Bm, Cm, D, z, h0 = make(1, 512, 1, 16, 8192 + 37, dtype=torch.bfloat16, seed=2)
    y, h = S.selective_scan(x, dt, A, Bm, Cm, D, z, initial_state=h0, output_final_state=True)
    y_ref, h_ref = ref(x, dt, A, Bm, Cm, D, z, h0)
    assert rel(y, y_ref) < 3e-2 and rel(h, h_ref) < 3e-2
