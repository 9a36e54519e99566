"""The Triton training scan (``kernels.scan.selective_scan_train``, kernels in ``triton_train.py``): outputs, final
state and every gradient against ``selective_scan_torch`` in float64; the op traced by ``torch.compile`` as one
graph; the zoo's mamba1 trained through it.

CPU: Triton under ``TRITON_INTERPRET=1`` at small, awkward shapes (T off the chunk, channels off the block).
Run: ``pytest tests/test_kernels_scan_train.py -q``.
"""

import torch

import pytest
import torch.nn.functional as F
from kernel_checks import GPU, rel_err  # tests/fixtures, on sys.path via conftest

from longctx.kernels.scan import selective_scan_torch, selective_scan_train
from longctx.kernels.scan import train as train_op
from longctx.kernels.scan.triton_train import train_backward, train_forward

DEV = "cuda" if GPU else "cpu"
pytestmark = pytest.mark.usefixtures("poison")   # every buffer a kernel writes starts as NaN
TOL = {torch.float32: 2e-5, torch.bfloat16: 1e-2}
NAMES = ("x", "dt", "A", "B", "C", "D", "z", "h0")


def make(B, D, G, N, T, dtype, full, seed):
    """x, dt, A, B, C, D, z, h0 (x, B, C, z in ``dtype``, the rest float32; D, z, h0 None unless ``full``)."""
    gen = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=gen)

    args = [r(B, D, T).to(dtype), F.softplus(r(B, D, T) - 1.0), -torch.rand(D, N, generator=gen) * 4 - 0.1,
            r(B, G, N, T).to(dtype), r(B, G, N, T).to(dtype), r(D), r(B, D, T).to(dtype), r(B, D, N)]
    if not full:
        args[5:] = [None] * 3
    return [None if t is None else t.to(DEV) for t in args]


def reference(args, dy, dh):
    """selective_scan_torch in float64: y, final state and the gradients of <y, dy> + <h, dh>."""
    leaves = [None if t is None else t.double().cpu().requires_grad_() for t in args]
    y, h = selective_scan_torch(*leaves)
    live = [t for t in leaves if t is not None]
    return y, h, torch.autograd.grad((y * dy.double().cpu()).sum() + (h * dh.double().cpu()).sum(), live)


def rel(a, b):
    return rel_err(a.detach().cpu(), b.detach())


CASES = {"B1-D5-G1-N16-T37-fp32-Dz-h0": ((1, 5, 1, 16, 37), torch.float32, True),
         "B2-D6-G2-N8-T20-fp32-bare": ((2, 6, 2, 8, 20), torch.float32, False),
         "B1-D10-G2-N16-T45-bf16-Dz-h0": ((1, 10, 2, 16, 45), torch.bfloat16, True),
         "B2-D3-G1-N8-T33-bf16-bare": ((2, 3, 1, 8, 33), torch.bfloat16, False)}


@pytest.mark.parametrize("case", CASES)
def test_kernels_match_torch_scan(case):
    """The launchers at chunks of 16 tokens (several chunks, the last one partial); the forward in 4-channel blocks,
    the backward in its default 2-channel blocks (odd channel counts: a partial block)."""
    shape, dtype, full = CASES[case]
    args = make(*shape, dtype, full, seed=shape[-1])
    y, hT, hc = train_forward(*args, block_d=4, block_t=16)
    dy, dh = torch.randn_like(y), torch.randn_like(hT)
    grads = train_backward(dy, dh, *args[:7], hc, block_t=16)
    y_ref, h_ref, grads_ref = reference(args, dy, dh)
    assert y.dtype == dtype and hT.dtype == torch.float32
    assert rel(y, y_ref) < TOL[dtype] and rel(hT, h_ref) < TOL[torch.float32]
    live = [(name, g) for name, g, t in zip(NAMES, grads, args) if t is not None]
    for (name, g), g_ref in zip(live, grads_ref):
        assert g.dtype == (torch.float32 if name == "h0" else args[NAMES.index(name)].dtype), name
        assert rel(g, g_ref) < TOL[dtype], name


def test_op_gradients_through_autograd():
    """The public op at its own chunk (64 tokens, T = 257: five chunks, one token in the last), every input
    with a gradient, the final state used in the loss."""
    args = make(1, 3, 1, 8, 257, torch.float32, True, seed=1)
    leaves = [t.clone().requires_grad_() for t in args]
    y, h = selective_scan_train(*leaves)
    dy, dh = torch.randn_like(y), torch.randn_like(h)
    grads = torch.autograd.grad((y * dy).sum() + (h * dh).sum(), leaves)
    y_ref, h_ref, grads_ref = reference(args, dy, dh)
    assert rel(y, y_ref) < 2e-5 and rel(h, h_ref) < 2e-5
    for name, g, g_ref in zip(NAMES, grads, grads_ref):
        assert rel(g, g_ref) < 2e-5, name


def test_compile_traces_one_graph():
    """dynamo keeps the op whole (no graph break), and the compiled forward and backward equal eager."""
    args = make(1, 4, 1, 8, 24, torch.float32, True, seed=2)[:7]

    def loss(x, dt, A, B, C, D, z):
        return selective_scan_train(x * 2, dt, A, B, C, D, z)[0].square().sum()

    explained = torch._dynamo.explain(loss)(*args)
    assert explained.graph_count == 1 and explained.graph_break_count == 0
    leaves = [t.clone().requires_grad_() for t in args]
    compiled = torch.compile(loss, backend="aot_eager", fullgraph=True)(*leaves)
    compiled.backward()
    eager = [t.clone().requires_grad_() for t in args]
    loss(*eager).backward()
    assert rel(compiled, loss(*args)) < 1e-6
    for a, b in zip(leaves, eager):
        assert rel(a.grad, b.grad) < 1e-6


def test_zoo_mamba1_trains_through_the_op(monkeypatch):
    """The tiny zoo mamba1 with the Triton op as its training scan (the CUDA path, here under the interpreter):
    loss and every parameter's gradient equal the CPU path's."""
    from longctx.models.zoo import mamba1, registry

    torch.manual_seed(0)
    m = registry.build(registry.config("mamba1", "tiny"))
    ids = torch.randint(0, 256, (1, 8))
    m(ids).square().mean().backward()
    want = {n: p.grad.clone() for n, p in m.named_parameters()}
    m.zero_grad()
    monkeypatch.setattr(mamba1, "selective_scan_torch", selective_scan_train)
    monkeypatch.setattr(train_op, "BLOCK_T", 4)   # two chunks of the 8 tokens
    m(ids).square().mean().backward()
    for n, p in m.named_parameters():
        assert rel(p.grad, want[n]) < 1e-4, n


def test_opcheck():
    """torch.library's checks of the op: schema, fake (meta) outputs equal to the real ones, autograd
    registration, and AOT dispatch with dynamic shapes."""
    args = [t.requires_grad_() for t in make(1, 3, 1, 4, 10, torch.float32, True, seed=3)]
    result = torch.library.opcheck(train_op._train_fwd, tuple(args))
    assert set(result.values()) == {"SUCCESS"}, result
