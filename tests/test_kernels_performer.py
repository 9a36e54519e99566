"""FAVOR+ (Performer) against its float64 token-by-token definition, and against softmax attention as m grows.

On a CPU-only machine the causal part runs through the linear-attention Triton kernels under
``TRITON_INTERPRET=1`` at small, awkward shapes; on a CUDA machine compiled, plus a full-size case marked ``gpu``.
Run: ``pytest tests/test_kernels_performer.py -q``.
"""

import math

import torch

import pytest
import torch.nn.functional as F

from kernel_checks import GPU  # tests/fixtures, on sys.path via conftest
import longctx.kernels.performer as P
from longctx.kernels.linear import triton_chunk
from longctx.kernels.performer import triton_features
from longctx.kernels.performer.reference import favor_reference

DEV = "cuda" if GPU else "cpu"


@pytest.fixture(autouse=True)
def poison(monkeypatch):
    """Every buffer the Triton kernels write starts as NaN, so an unwritten element fails the comparison."""
    def nan(shape, dtype, device):
        return torch.full(shape, float("nan"), dtype=dtype, device=device)

    monkeypatch.setattr(triton_chunk, "_alloc", nan)
    monkeypatch.setattr(triton_features, "_alloc", nan)


def make(B, H, Hk, T, d, Dv, m, seed=0, dtype=torch.float32, norm=1.0):
    """Fresh random q, k, v (rows of norm ~ ``norm · sqrt(d)``) and features W, on DEV."""
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, T, d, generator=gen) * norm
    k = torch.randn(B, Hk, T, d, generator=gen) * norm
    v = torch.randn(B, Hk, T, Dv, generator=gen)
    W = P.orthogonal_features(m, d, seed=seed + 1)
    return [x.to(DEV, dtype) for x in (q, k, v)] + [W.to(DEV)]


def ref(q, k, v, W, scale=None, state=None):
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    return favor_reference(q.double().cpu(), k.double().cpu(), v.double().cpu(), W.double().cpu(), scale, state)


def true_state(st: P.FavorState):
    """(S, z) in float64 on the CPU from a FavorState: exp(shift) · kv, shift repeated over grouped heads."""
    H = st.kv.shape[1]
    shift = st.shift.double().cpu().repeat_interleave(H // st.shift.shape[1], 1)
    kv = st.kv.double().cpu() * shift.exp()[..., None, None]
    return kv[..., :-1], kv[..., -1]


def rel(a, b):
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    assert not a.isnan().any(), "NaN in the output"
    return float((a - b).norm() / b.norm())


def tol(dtype):
    if dtype == torch.bfloat16:
        return 3e-2
    return 5e-3 if GPU else 2e-5


SHAPES = [  # B, H, Hk, T, d, Dv, m, chunk
    pytest.param((1, 2, 2, 37, 20, 12, 24, 16), id="B1-H2-T37-d20-Dv12-m24-C16"),
    pytest.param((2, 4, 2, 70, 16, 33, 40, 32), id="B2-H4-Hk2-T70-d16-Dv33-m40-C32"),
]


def test_orthogonal_features_are_seeded_orthogonal_blocks_with_chi_norms():
    W = P.orthogonal_features(40, 16, seed=3, dtype=torch.float64)
    assert W.shape == (40, 16)
    assert torch.equal(W, P.orthogonal_features(40, 16, seed=3, dtype=torch.float64))
    assert not torch.equal(W, P.orthogonal_features(40, 16, seed=4, dtype=torch.float64))  # a redraw
    for block in (W[:16], W[16:32], W[32:]):
        u = F.normalize(block, dim=-1)
        assert (u @ u.T - torch.eye(len(u), dtype=u.dtype)).abs().max() < 1e-12
    norms = P.orthogonal_features(4096, 16, seed=0, dtype=torch.float64).norm(dim=1)
    # chi(16): mean sqrt(2) Γ(8.5) / Γ(8) = 3.9219, mean square 16
    assert abs(norms.mean().item() - 3.9219) < 0.05 and abs(norms.pow(2).mean().item() - 16) < 0.8


@pytest.mark.parametrize("D,m", [(20, 40), (33, 7), (128, 256)], ids=["D20-m40", "D33-m7", "D128-m256"])
def test_triton_feature_map_matches_float64(D, m):
    from longctx.kernels.performer.features import positive_features

    x = torch.randn(2, 3, 37, D, generator=torch.Generator().manual_seed(D)).to(DEV)
    W = P.orthogonal_features(m, D, seed=2, device=DEV)
    f, a = triton_features.triton_features(x, W, 0.3)
    f_ref, a_ref = positive_features(x.double().cpu(), W.double().cpu(), 0.3)
    assert f.shape == (2, 3, 37, m) and a.shape == (2, 3, 37)
    assert rel(f, f_ref) < tol(x.dtype) and rel(a, a_ref) < tol(x.dtype)
    assert float(f.max()) == 1.0  # every row's largest feature is exp(0)


@pytest.mark.parametrize("shape", SHAPES)
def test_prefill_matches_definition(shape):
    B, H, Hk, T, d, Dv, m, C = shape
    q, k, v, W = make(B, H, Hk, T, d, Dv, m, seed=sum(shape))
    o, st = P.favor_attention(q, k, v, W, output_final_state=True, chunk_size=C)
    o_ref, (S, z) = ref(q, k, v, W)
    assert o.shape == (B, H, T, Dv) and st.kv.shape == (B, H, m, Dv + 1) and st.shift.shape == (B, Hk)
    S_got, z_got = true_state(st)
    assert rel(o, o_ref) < tol(q.dtype) and rel(S_got, S) < tol(q.dtype) and rel(z_got, z) < tol(q.dtype)


def test_torch_chunked_matches_definition_with_grads():
    q, k, v, W = (x.double().cpu() for x in make(2, 2, 1, 45, 8, 6, 20, seed=3))
    q, k, v = (x.requires_grad_() for x in (q, k, v))
    o, st = P.favor_chunked(q, k, v, W, 0.3, chunk_size=16)
    o_ref, (S, _) = favor_reference(q, k, v, W, 0.3)
    assert rel(o, o_ref) < 1e-12 and rel(true_state(st)[0], S) < 1e-12
    w = torch.randn_like(o)
    grads = torch.autograd.grad((o * w).sum(), (q, k, v))
    grads_ref = torch.autograd.grad((o_ref * w).sum(), (q, k, v))
    for a, b in zip(grads, grads_ref):
        assert rel(a, b) < 1e-9


def test_step_agrees_with_prefill_and_hands_over():
    """Prefill 21 tokens, then continue one token at a time (Triton step) and by a second prefill: both equal
    the definition over all 40 tokens."""
    q, k, v, W = make(1, 4, 2, 40, 16, 12, 24, seed=5)
    o_ref, (S, z) = ref(q, k, v, W)
    cut = 21
    o1, st = P.favor_attention(q[:, :, :cut], k[:, :, :cut], v[:, :, :cut], W, output_final_state=True, chunk_size=16)
    o2, st2 = P.favor_attention(q[:, :, cut:], k[:, :, cut:], v[:, :, cut:], W, initial_state=st,
                                output_final_state=True, chunk_size=16)
    assert rel(torch.cat([o1, o2], 2), o_ref) < tol(q.dtype) and rel(true_state(st2)[0], S) < tol(q.dtype)
    outs = []
    for t in range(cut, 40):
        y, st = P.favor_step(q[:, :, t], k[:, :, t], v[:, :, t], W, st)
        outs.append(y)
    assert rel(torch.stack(outs, 2), o_ref[:, :, cut:]) < tol(q.dtype)
    assert rel(true_state(st)[1], z) < tol(q.dtype)


def test_steps_from_empty_state_and_torch_step_match_definition():
    q, k, v, W = make(2, 2, 1, 9, 16, 12, 20, seed=6)
    o_ref, _ = ref(q, k, v, W)
    st = st_t = None
    outs, outs_t = [], []
    for t in range(9):
        y, st = P.favor_step(q[:, :, t], k[:, :, t], v[:, :, t], W, st)
        yt, st_t = P.favor_step_torch(*(x[:, :, t].double().cpu() for x in (q, k, v)), W.double().cpu(),
                                      16 ** -0.5, st_t)
        outs.append(y)
        outs_t.append(yt)
    assert rel(torch.stack(outs, 2), o_ref) < tol(q.dtype) and rel(torch.stack(outs_t, 2), o_ref) < 1e-12


def test_large_norm_inputs_stay_finite_where_plain_features_underflow():
    """Rows of norm ~ 8 sqrt(d): plain float32 features exp(Wx - |x|²/2) underflow to 0 for whole rows (0/0),
    the stabilised ones (row max and running key max) still match the float64 definition."""
    q, k, v, W = make(1, 2, 2, 50, 16, 8, 32, seed=8, norm=8.0)
    scaled = k.float().cpu() * 16 ** -0.25
    plain = (scaled @ W.float().cpu().T - 0.5 * scaled.pow(2).sum(-1, keepdim=True)).exp()
    assert (plain.sum(-1) == 0).any()
    o, _ = P.favor_attention(q, k, v, W, chunk_size=16)
    assert rel(o, ref(q, k, v, W)[0]) < tol(q.dtype)


def test_error_to_softmax_falls_as_features_grow():
    """FAVOR+ is an estimator of softmax attention: with a fixed seed, the mean relative error over 4 draws of W
    falls as m grows 16 -> 256 -> 4096 (by at least 1.5x each time; seen: 0.37, 0.19, 0.052) and is small at 4096."""
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 64, 16, generator=gen, dtype=torch.float64) * s for s in (0.6, 0.6, 1.0))
    exact = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    errs = []
    for m in (16, 256, 4096):
        e = [rel(P.favor_chunked(q, k, v, P.orthogonal_features(m, 16, seed=s, dtype=torch.float64), 0.25)[0], exact)
             for s in range(4)]
        errs.append(sum(e) / len(e))
    assert errs[0] > 1.5 * errs[1] > 2.25 * errs[2], errs
    assert errs[2] < 0.1, errs


def test_zoo_mixer_approaches_dense_rope_attention_as_features_grow():
    """The zoo's performer mixer with dense's weights estimates dense attention *with RoPE* (RoPE goes before the
    feature map): the mean error over 3 feature draws falls as m grows 16 -> 256 -> 4096 and is small at 4096."""
    from longctx.models.zoo import dense, performer
    from longctx.models.zoo.trunk import ZooConfig

    torch.manual_seed(0)
    x = torch.randn(1, 40, 32, dtype=torch.float64)
    att = dense.make(ZooConfig("dense", 32, 1, 2, 64), 0).double()
    exact = att(x)
    errs = []
    for m in (16, 256, 4096):
        e = []
        for layer in range(3):  # the layer index seeds the features
            mixer = performer.make(ZooConfig("performer", 32, 1, 2, 64, mixer={"features": m, "chunk": 16}), layer)
            mixer = mixer.double()
            mixer.load_state_dict({**att.state_dict(), "features": mixer.features})
            e.append(rel(mixer(x), exact))
        errs.append(sum(e) / len(e))
    assert errs[0] > 1.5 * errs[1] > 2.25 * errs[2], errs
    assert errs[2] < 0.15, errs


def test_cpu_fallback_without_interpreter(monkeypatch):
    if GPU:
        pytest.skip("the fallback serves CPU tensors")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    q, k, v, W = make(1, 2, 2, 37, 20, 12, 24)
    o, _ = P.favor_attention(q, k, v, W, chunk_size=16)
    o_ref, _ = ref(q, k, v, W)
    assert rel(o, o_ref) < 2e-5
    y, _ = P.favor_step(q[:, :, 0], k[:, :, 0], v[:, :, 0], W, None)
    assert rel(y, o_ref[:, :, 0]) < 2e-5


def bad_cases():
    q, k, v, W = make(1, 2, 2, 20, 16, 12, 24)
    _, st = P.favor_attention(q, k, v, W, output_final_state=True, chunk_size=16)
    yield "k", lambda: P.favor_attention(q, k[:, :, :10], v, W)
    yield "k, v", lambda: P.favor_attention(q, k.double(), v, W)
    yield "W", lambda: P.favor_attention(q, k, v, W[:, :8])
    yield "W", lambda: P.favor_attention(q, k, v, torch.randn(300, 16, device=DEV))
    yield "v", lambda: P.favor_attention(q, k, torch.randn(1, 2, 20, 256, device=DEV), W)
    yield "k, v", lambda: P.favor_attention(q, k[:, :1], v, W)
    yield "scale", lambda: P.favor_attention(q, k, v, W, scale=-1.0)
    yield "chunk_size", lambda: P.favor_attention(q, k, v, W, chunk_size=48)
    yield "initial_state", lambda: P.favor_attention(q, k, v, W, initial_state=P.FavorState(st.kv[..., :3], st.shift))
    yield "k", lambda: P.favor_attention(q, k.clone().fill_(float("nan")), v, W)
    yield "state", lambda: P.favor_step(q[:, :, 0], k[:, :, 0], v[:, :, 0], W, (st.kv,))
    yield "m", lambda: P.orthogonal_features(0, 16)


@pytest.mark.parametrize("name,call", list(bad_cases()), ids=lambda x: x if isinstance(x, str) else "")
def test_bad_input_raises_before_launch(name, call, monkeypatch):
    def no_launch(*a, **kw):
        raise AssertionError("a kernel was launched")

    monkeypatch.setattr(triton_chunk, "chunk_forward", no_launch)
    monkeypatch.setattr(triton_chunk, "step_forward", no_launch)
    monkeypatch.setattr(triton_features, "triton_features", no_launch)
    with pytest.raises(ValueError, match=name.split(",")[0]):
        call()


@pytest.mark.gpu
@pytest.mark.skipif(not GPU, reason="full-size check needs a CUDA device")
def test_full_size_on_gpu():
    q, k, v, W = make(1, 4, 4, 4096 + 37, 128, 128, 256, seed=11, dtype=torch.bfloat16)
    o, st = P.favor_attention(q, k, v, W, output_final_state=True)
    o_ref, (S, _) = ref(q, k, v, W)
    assert rel(o, o_ref) < tol(q.dtype) and rel(true_state(st)[0], S) < tol(q.dtype)
    assert math.isfinite(rel(o, o_ref))


def test_gradient_stays_finite_when_every_key_is_far_from_its_query():
    """A query anti-aligned with each key it sees, at norm 64 (q·k / sqrt(d) = -512): every product of plain
    max-normalised features underflows to 0 in float32, so without the stabiliser the first position's
    normaliser is exactly 0 and its gradient NaN (seen before ``features.STABILIZER``)."""
    torch.manual_seed(0)
    d = 64
    W = P.orthogonal_features(128, d, seed=0)
    k = torch.randn(1, 1, 64, d)
    k = (k / k.norm(dim=-1, keepdim=True) * 64).requires_grad_()
    q = (-k.detach()).requires_grad_()
    v = torch.randn(1, 1, 64, d)
    o, _ = P.favor_chunked(q, k, v, W, d ** -0.5)
    o.sum().backward()
    assert torch.isfinite(o).all() and torch.isfinite(q.grad).all() and torch.isfinite(k.grad).all()
