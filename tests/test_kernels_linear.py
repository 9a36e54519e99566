"""Linear-attention kernels against the naive float64 recurrence.

On a CPU-only machine the Triton kernels run under ``TRITON_INTERPRET=1`` at small, awkward shapes; on a
CUDA machine the same tests run compiled, plus the full-size cases marked ``gpu``.
Run: ``pytest tests/test_kernels_linear.py -q``.
"""

import torch

import pytest
import torch.nn.functional as F

from kernel_checks import GPU  # tests/fixtures, on sys.path via conftest
import longctx.kernels.linear as L
from longctx.kernels.linear import triton_chunk
from longctx.kernels.linear.chunked_torch import chunked_linear_attention
from longctx.kernels.linear.reference import recurrent_reference

DEV = "cuda" if GPU else "cpu"
VARIANTS = ["plain", "scalar", "channel", "delta", "delta-scalar", "delta-channel"]


@pytest.fixture(autouse=True)
def poison(monkeypatch):
    """Every buffer the kernels write starts as NaN, so an unwritten element fails the comparison."""
    monkeypatch.setattr(triton_chunk, "_alloc",
                        lambda shape, dtype, device: torch.full(shape, float("nan"), dtype=dtype, device=device))


def make(variant, B, Hq, Hk, H, T, Dk, Dv, dtype=torch.float32, seed=0, step=False):
    """Fresh random inputs: keys L2-normalised, decays in (0, 1), beta in (0, 1)."""
    gen = torch.Generator().manual_seed(seed)
    lead = (B,) if step else (B, T)

    def r(*shape):
        return torch.randn(*shape, generator=gen)

    q = r(B, Hq, *lead[1:], Dk)
    k = F.normalize(r(B, Hk, *lead[1:], Dk), dim=-1)
    v = r(B, H, *lead[1:], Dv)
    g = beta = None
    if variant in ("scalar", "delta-scalar"):
        g = F.logsigmoid(r(B, H, *lead[1:]) + 2.0)
    if variant in ("channel", "delta-channel"):
        g = F.logsigmoid(r(B, Hk, *lead[1:], Dk) + 3.0)
    if variant.startswith("delta"):
        beta = torch.rand(B, H, *lead[1:], generator=gen)
    s0 = r(B, H, Dk, Dv)
    dev = [None if x is None else x.to(DEV) for x in (q, k, v, g, beta, s0)]
    return [None if x is None else x.to(dtype) if i < 3 else x for i, x in enumerate(dev)]


def run(variant, q, k, v, g, beta, s0, chunk):
    """The public op of a variant; "plain" maps q and k through the elu+1 feature map."""
    kw = dict(scale=0.7, initial_state=s0, output_final_state=True, chunk_size=chunk)
    if variant == "plain":
        return L.linear_attention(q, k, v, feature_map="elu1", **kw)
    if beta is None:
        return L.gated_linear_attention(q, k, v, g, **kw)
    return L.gated_delta_rule(q, k, v, g, beta, **kw)


def phi(variant, x):
    return L.FEATURE_MAPS["elu1"](x) if variant == "plain" else x


def ref(variant, q, k, v, g, beta, s0):
    d = [None if x is None else x.double() for x in (phi(variant, q), phi(variant, k), v, g, beta, s0)]
    return recurrent_reference(*d[:5], 0.7, d[5])


def rel(a, b):
    return float((a.detach().double() - b.detach().double()).norm() / b.detach().double().norm())


def tol(dtype):
    if dtype == torch.bfloat16:
        return 3e-2
    return 5e-3 if GPU else 2e-5  # tf32 matrix units on the GPU, exact float32 in the interpreter


SHAPES = [  # B, Hq, Hk, H, T, Dk, Dv, chunk
    pytest.param((1, 2, 2, 2, 37, 20, 12, 16), id="B1-H2-T37-Dk20-Dv12-C16"),
    pytest.param((2, 4, 2, 4, 70, 16, 33, 32), id="B2-H4-Hk2-T70-Dk16-Dv33-C32"),
]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("variant", VARIANTS)
def test_chunked_matches_recurrence(variant, shape):
    B, Hq, Hk, H, T, Dk, Dv, C = shape
    q, k, v, g, beta, s0 = make(variant, B, Hq, Hk, H, T, Dk, Dv, seed=hash((variant, shape)) % 1000)
    o, s = run(variant, q, k, v, g, beta, s0, C)
    o_ref, s_ref = ref(variant, q, k, v, g, beta, s0)
    assert o.shape == (B, H, T, Dv) and s.shape == (B, H, Dk, Dv)
    assert rel(o, o_ref) < tol(q.dtype) and rel(s, s_ref) < tol(q.dtype)


@pytest.mark.parametrize("variant", VARIANTS)
def test_small_launch_blocks_match_recurrence(variant, monkeypatch):
    """16-wide key and value blocks: several blocks per head dim, the last one partly masked (D_k 20, D_v 33)."""
    small = triton_chunk.Tuning(16, 16, 4, 2, 16, 4, 2)
    monkeypatch.setattr(triton_chunk, "TUNING", {key: small for key in triton_chunk.TUNING})
    q, k, v, g, beta, s0 = make(variant, 1, 2, 2, 2, 37, 20, 33, seed=13)
    o, s = run(variant, q, k, v, g, beta, s0, 16)
    o_ref, s_ref = ref(variant, q, k, v, g, beta, s0)
    assert rel(o, o_ref) < tol(q.dtype) and rel(s, s_ref) < tol(q.dtype)


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v.startswith("delta")])
def test_delta_prep_products_in_the_input_dtype_match_recurrence(variant, monkeypatch):
    """``prep_warps=8, prep_lowp=True`` (a sweep candidate): W and U products in the input dtype, here float32."""
    alt = triton_chunk.Tuning(128, 32, 4, 3, 128, 4, 2, prep_warps=8, prep_lowp=True)
    monkeypatch.setattr(triton_chunk, "TUNING", {key: alt for key in triton_chunk.TUNING})
    q, k, v, g, beta, s0 = make(variant, 1, 2, 2, 2, 37, 20, 33, seed=17)
    o, s = run(variant, q, k, v, g, beta, s0, 16)
    o_ref, s_ref = ref(variant, q, k, v, g, beta, s0)
    assert rel(o, o_ref) < tol(q.dtype) and rel(s, s_ref) < tol(q.dtype)


@pytest.mark.parametrize("variant", VARIANTS)
def test_torch_chunked_matches_recurrence_with_grads(variant):
    q, k, v, g, beta, s0 = [None if x is None else x.double().cpu().requires_grad_()
                            for x in make(variant, 2, 2, 1, 2, 45, 8, 6, seed=3)]
    o, s = chunked_linear_attention(q, k, v, g, beta, 0.7, s0, chunk_size=16)
    o_ref, s_ref = recurrent_reference(q, k, v, g, beta, 0.7, s0)
    assert rel(o, o_ref) < 1e-10 and rel(s, s_ref) < 1e-10
    leaves = [x for x in (q, k, v, g, beta, s0) if x is not None]
    w = torch.randn_like(o)
    grads = torch.autograd.grad((o * w).sum() + s.sum(), leaves)
    grads_ref = torch.autograd.grad((o_ref * w).sum() + s_ref.sum(), leaves)
    for a, b in zip(grads, grads_ref):
        assert rel(a, b) < 1e-9


def test_cpu_fallback_without_interpreter(monkeypatch):
    if GPU:
        pytest.skip("the fallback serves CPU tensors")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    q, k, v, g, beta, s0 = make("delta-scalar", 1, 2, 2, 2, 37, 20, 12)
    o, s = run("delta-scalar", q, k, v, g, beta, s0, 16)
    o_ref, s_ref = ref("delta-scalar", q, k, v, g, beta, s0)
    assert rel(o, o_ref) < 2e-5 and rel(s, s_ref) < 2e-5
    y, s1 = L.recurrent_step(q[:, :, 0], k[:, :, 0], v[:, :, 0], s0, g[:, :, 0], beta[:, :, 0], scale=0.7)
    assert rel(y, o_ref[:, :, 0]) < 2e-5


@pytest.mark.parametrize("variant", VARIANTS)
def test_step_agrees_with_chunked(variant):
    B, H, T, Dk, Dv = 1, 2, 9, 20, 12
    q, k, v, g, beta, s0 = make(variant, B, H, H, H, T, Dk, Dv, seed=5)
    o, s_end = run(variant, q, k, v, g, beta, s0, 16)
    state, outs = s0, []
    for t in range(T):
        pick = [None if x is None else x[:, :, t] for x in (q, k, v, g, beta)]
        pick[0], pick[1] = phi(variant, pick[0]), phi(variant, pick[1])  # the step takes mapped features
        y, state = L.recurrent_step(*pick[:3], state, pick[3], pick[4], scale=0.7)
        outs.append(y)
    assert rel(torch.stack(outs, dim=2), o) < tol(q.dtype) and rel(state, s_end) < tol(q.dtype)


@pytest.mark.parametrize("variant", ["scalar", "delta-channel"])
def test_state_hand_over(variant):
    q, k, v, g, beta, s0 = make(variant, 1, 2, 2, 2, 53, 16, 16, seed=7)
    o, s = run(variant, q, k, v, g, beta, s0, 16)
    cut = 21

    def part(sl):
        return [None if x is None else x[:, :, sl] for x in (q, k, v, g, beta)]

    o1, s1 = run(variant, *part(slice(0, cut)), s0, 16)
    o2, s2 = run(variant, *part(slice(cut, None)), s1, 16)
    assert rel(torch.cat([o1, o2], dim=2), o) < tol(q.dtype) and rel(s2, s) < tol(q.dtype)


def bad_shapes():
    q, k, v, g, beta, s0 = make("delta-scalar", 1, 2, 2, 2, 20, 16, 16)
    yield "k", lambda: L.gated_delta_rule(q, k[:, :, :10], v, g, beta)
    yield "k, v", lambda: L.gated_delta_rule(q, k.double(), v, g, beta)
    yield "chunk_size", lambda: L.gated_delta_rule(q, k, v, g, beta, chunk_size=48)
    yield "g", lambda: L.gated_delta_rule(q, k, v, g[..., :5], beta)
    yield "beta", lambda: L.gated_delta_rule(q, k, v, g, None)
    yield "initial_state", lambda: L.gated_delta_rule(q, k, v, g, beta, initial_state=s0[:, :, :3])
    yield "v", lambda: L.linear_attention(q, k, torch.randn(1, 3, 20, 16, device=DEV))
    yield "feature_map", lambda: L.linear_attention(q, k, v, feature_map="cos")
    yield "state", lambda: L.recurrent_step(q[:, :, 0], k[:, :, 0], v[:, :, 0], s0[..., :3])


@pytest.mark.parametrize("name,call", list(bad_shapes()), ids=lambda x: x if isinstance(x, str) else "")
def test_bad_shapes_raise_before_launch(name, call, monkeypatch):
    def no_launch(*a, **kw):
        raise AssertionError("a kernel was launched")

    monkeypatch.setattr(triton_chunk, "chunk_forward", no_launch)
    monkeypatch.setattr(triton_chunk, "step_forward", no_launch)
    with pytest.raises(ValueError, match=name.split(",")[0]):
        call()


def bad_values():
    """Out-of-range gates and beta, each at one element of the last, partial chunk (T = 37, chunk 16)."""
    q, k, v, g, beta, s0 = make("delta-channel", 1, 2, 2, 2, 37, 16, 16)
    gs = g[..., 0].clone()

    def poke(x, value):
        x = x.clone()
        x.view(-1)[-3] = value
        return x

    yield "g-positive", "g: log decay", lambda: L.gated_delta_rule(q, k, v, poke(gs, 0.5), beta)
    yield "g-nan", "g: log decay", lambda: L.gated_linear_attention(q, k, v, poke(g, float("nan")))
    yield "g-minus-inf", "g: log decay", lambda: L.gated_linear_attention(q, k, v, poke(gs, float("-inf")))
    yield "g-steep", "g: per-channel log decay -9", \
        lambda: L.gated_linear_attention(q, k, v, poke(g, -9.0), chunk_size=32)
    yield "beta-large", "beta", lambda: L.gated_delta_rule(q, k, v, g, poke(beta, 3.0))
    yield "beta-nan", "beta", lambda: L.gated_delta_rule(q, k, v, None, poke(beta, float("nan")))
    yield "beta-negative", "beta", lambda: L.gated_delta_rule(q, k, v, gs, poke(beta, -0.1))


@pytest.mark.parametrize("message,call", [pytest.param(m, c, id=i) for i, m, c in bad_values()])
def test_out_of_range_values_raise(message, call):
    """The kernels flag what they read; the op raises once they are done, and returns nothing."""
    with pytest.raises(ValueError, match=message):
        call()


def test_in_range_extremes_pass():
    """g = 0 (no decay), beta at 0 and 2, and a per-channel g just inside the chunk's float32 limit run."""
    q, k, v, g, beta, s0 = make("delta-channel", 1, 2, 2, 2, 37, 16, 16)
    beta = beta.clone()
    beta[..., 0], beta[..., 1] = 0.0, 2.0
    o1, _ = L.gated_delta_rule(q, k, v, torch.zeros_like(g[..., 0]), beta)
    o2, _ = L.gated_linear_attention(q, k, v, torch.full_like(g, -4.9), chunk_size=32)
    assert torch.isfinite(o1).all() and torch.isfinite(o2).all()


def test_a_kernel_too_large_for_the_gpu_is_a_value_error(monkeypatch):
    """Triton's OutOfResources at compile time (float32 delta rule at D_k = 128 on an H100: 246 KB of shared
    memory) comes back as a ValueError that names the dtype, head sizes and what to change."""
    from triton.runtime.errors import OutOfResources

    def too_large(*a, **kw):
        raise OutOfResources(251904, 232448, "shared memory")

    monkeypatch.setattr(triton_chunk, "chunk_forward", too_large)
    q, k, v, g, beta, _ = make("delta", 1, 2, 2, 2, 37, 20, 12)
    with pytest.raises(ValueError, match=r"float32 at D_k = 20, D_v = 12 .*shared memory .*bf16/fp16"):
        L.gated_delta_rule(q, k, v, g, beta)


def test_validate_false_skips_only_the_value_checks(monkeypatch):
    q, k, v, g, beta, s0 = make("delta-channel", 1, 2, 2, 2, 37, 20, 12)
    kw = dict(initial_state=s0, output_final_state=True, chunk_size=16)
    o1, s1 = L.gated_delta_rule(q, k, v, g, beta, **kw)
    o2, s2 = L.gated_delta_rule(q, k, v, g, beta, validate=False, **kw)
    assert torch.equal(o1, o2) and torch.equal(s1, s2)
    with pytest.raises(ValueError, match="k"):
        L.gated_delta_rule(q, k[:, :, :10], v, g, beta, validate=False)
    launched = []
    monkeypatch.setattr(triton_chunk, "chunk_forward", lambda *a, **_: launched.append(1) or (o1, s1, None))
    L.gated_linear_attention(q, k, v, -g, validate=False)  # the caller vouched for the range: no value pass
    assert launched


def test_delta_rule_on_alike_keys_and_weak_decay():
    """Keys that all point the same way (normalised positive vectors, like the zoo's silu keys), decay near 1
    and beta near 1: the chunk's UT transform must stay exact (a doubling-product inverse lost everything)."""
    gen = torch.Generator().manual_seed(5)
    B, H, T, D = 1, 2, 150, 20
    q = torch.randn(B, H, T, D, generator=gen)
    k = F.normalize(torch.randn(B, H, T, D, generator=gen).abs(), dim=-1)
    v = torch.randn(B, H, T, D, generator=gen)
    g, beta = torch.full((B, H, T), -0.01), torch.full((B, H, T), 0.9)
    o, s = L.gated_delta_rule(*(x.to(DEV) for x in (q, k, v, g, beta)), scale=0.7, output_final_state=True,
                              chunk_size=64)
    o_ref, s_ref = recurrent_reference(*(x.to(DEV).double() for x in (q, k, v, g, beta)), 0.7)
    assert rel(o, o_ref) < tol(torch.float32) and rel(s, s_ref) < tol(torch.float32), (rel(o, o_ref), rel(s, s_ref))


@pytest.mark.gpu
@pytest.mark.skipif(not GPU, reason="full-size check needs a CUDA device")
@pytest.mark.parametrize("D", [128, 62], ids=["D128", "D62"])   # 62: the zoo's linear head size
@pytest.mark.parametrize("variant", VARIANTS)
def test_full_size_on_gpu(variant, D, dtype=torch.bfloat16):
    q, k, v, g, beta, s0 = make(variant, 1, 4, 4, 4, 4096 + 37, D, D, dtype=dtype, seed=11)
    o, s = run(variant, q, k, v, g, beta, s0, 64)
    o_ref, s_ref = ref(variant, q, k, v, g, beta, s0)
    assert rel(o, o_ref) < tol(dtype) and rel(s, s_ref) < tol(dtype)
