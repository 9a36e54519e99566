"""The differentiable Triton selective scan, the zoo ``mamba1``'s training path on CUDA.

Two ``torch.library`` custom ops, ``scan::train_fwd`` and ``scan::train_bwd`` (kernels in ``triton_train.py``),
joined by ``register_autograd``; each has a fake (shape-only) implementation, so ``torch.compile`` traces the
scan as one opaque node of the graph and of its backward, and neither op syncs the host (CUDA-graph safe).
Triton on CUDA, or on the CPU under ``TRITON_INTERPRET=1`` (the tests); the CPU training path is
``selective_scan_torch``.
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor
BLOCK_T = 64   # tokens per chunk of the custom ops (triton_train takes it from here; Triton loads on the first call)


def _c(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.contiguous()


@torch.library.custom_op("scan::train_fwd", mutates_args=())
def _train_fwd(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None, z: Tensor | None,
               initial_state: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    from longctx.kernels.scan.triton_train import train_forward

    return train_forward(*(_c(t) for t in (x, dt, A, B, C, D, z, initial_state)), block_t=BLOCK_T)


@_train_fwd.register_fake
def _(x, dt, A, B, C, D, z, initial_state):
    Bsz, Dc, T = x.shape
    N = A.shape[1]
    nt = -(-T // BLOCK_T)
    return (x.new_empty(x.shape), x.new_empty((Bsz, Dc, N), dtype=torch.float32),
            x.new_empty((Bsz, Dc, nt, N), dtype=torch.float32))


@torch.library.custom_op("scan::train_bwd", mutates_args=())
def _train_bwd(dy: Tensor, dhT: Tensor | None, x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor,
               D: Tensor | None, z: Tensor | None, hc: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor,
                                                                         Tensor, Tensor, Tensor]:
    from longctx.kernels.scan.triton_train import train_backward

    return train_backward(*(_c(t) for t in (dy, dhT, x, dt, A, B, C, D, z, hc)), block_t=BLOCK_T)


@_train_bwd.register_fake
def _(dy, dhT, x, dt, A, B, C, D, z, hc):
    empty = x.new_empty(0)
    return (torch.empty_like(x), torch.empty_like(dt), torch.empty_like(A), torch.empty_like(B),
            torch.empty_like(C), empty if D is None else torch.empty_like(D),
            empty if z is None else torch.empty_like(z), x.new_empty(hc.shape[:2] + hc.shape[3:], dtype=torch.float32))


def _setup_context(ctx, inputs, output):
    x, dt, A, B, C, D, z, initial_state = inputs
    ctx.save_for_backward(x, dt, A, B, C, D, z, output[2])
    ctx.h0_dtype = None if initial_state is None else initial_state.dtype


def _backward(ctx, dy, dhT, _dhc):
    x, dt, A, B, C, D, z, hc = ctx.saved_tensors
    dx, ddt, dA, dB, dC, dD, dz, dh0 = _train_bwd(dy, dhT, x, dt, A, B, C, D, z, hc)
    return (dx, ddt, dA, dB, dC, None if D is None else dD, None if z is None else dz,
            None if ctx.h0_dtype is None else dh0.to(ctx.h0_dtype))


torch.library.register_autograd("scan::train_fwd", _backward, setup_context=_setup_context)


def selective_scan_train(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None = None,
                         z: Tensor | None = None, initial_state: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Selective scan with a Triton backward. x, dt, z: [B, D, T]; A: [D, N]; B, C: [B, G, N, T]; D: [D];
    initial_state: [B, D, N]. Returns (y: [B, D, T] in x's dtype, final state [B, D, N] float32). No argument
    checks (dt >= 0 and A <= 0 assumed, as ``selective_scan_torch``).
    Usage: ``y, _ = selective_scan_train(x, F.softplus(dt + dt_bias), -A_log.exp(), B, C, D, z)``.
    """
    y, hT, _ = _train_fwd(*(_c(t) for t in (x, dt, A, B, C, D, z, initial_state)))   # copies fuse under compile
    return y, hT
