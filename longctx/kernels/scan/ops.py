"""Public Mamba-1 selective-scan ops: the prefill (with state hand-over) and the one-token decoding step.

Shapes as in ``reference.py``; dt is the positive step (softplus already applied, bias included), A is
negative (Mamba stores ``-exp(A_log)``). Triton on CUDA or under ``TRITON_INTERPRET=1``, the PyTorch
doubling scan (``torch_scan.py``) on the CPU. Every argument is checked before a kernel launches.
"""

from __future__ import annotations

import math

import torch

from longctx.kernels.backend import use_triton
from longctx.kernels.scan.torch_scan import selective_scan_torch, selective_step_torch

FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _check(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
           D: torch.Tensor | None, z: torch.Tensor | None, state: torch.Tensor | None, step: bool,
           values: bool) -> None:
    nd = 2 if step else 3
    tail = "" if step else ", T"
    if x.dim() != nd or x.dtype not in FLOATS or x.numel() == 0:
        raise ValueError(f"x: expected a non-empty float tensor [B, D{tail}], got {x.dtype} {tuple(x.shape)}")
    Bsz, Dc = x.shape[:2]
    for name, t in (("dt", dt), ("z", z)):
        if t is not None and tuple(t.shape) != tuple(x.shape):
            raise ValueError(f"{name}: shape {tuple(t.shape)}, expected {tuple(x.shape)} like x")
    if A.dim() != 2 or A.shape[0] != Dc or A.shape[1] < 1:
        raise ValueError(f"A: shape {tuple(A.shape)}, expected [{Dc}, N]")
    N = A.shape[1]
    for name, m in (("B", B), ("C", C)):
        if m.dim() != nd + 1 or m.shape[0] != Bsz or m.shape[2] != N or Dc % m.shape[1] \
                or (not step and m.shape[3] != x.shape[2]):
            raise ValueError(f"{name}: shape {tuple(m.shape)}, expected [{Bsz}, G, {N}{tail}] with G dividing {Dc}")
    if B.shape != C.shape:
        raise ValueError(f"B, C: shapes {tuple(B.shape)} and {tuple(C.shape)} differ")
    if D is not None and tuple(D.shape) != (Dc,):
        raise ValueError(f"D: shape {tuple(D.shape)}, expected [{Dc}]")
    if state is not None and tuple(state.shape) != (Bsz, Dc, N):
        raise ValueError(f"{'state' if step else 'initial_state'}: shape {tuple(state.shape)}, "
                         f"expected [{Bsz}, {Dc}, {N}]")
    for name, t in (("dt", dt), ("A", A), ("B", B), ("C", C), ("D", D), ("z", z), ("state", state)):
        if t is not None and (t.device != x.device or t.dtype not in FLOATS):
            raise ValueError(f"{name}: a float tensor on {x.device} expected, got {t.dtype} on {t.device}")
    if not values:
        return
    dmin, dmax, amin, amax = torch.cat([torch.stack(torch.aminmax(dt.float())),
                                        torch.stack(torch.aminmax(A.float()))]).tolist()
    if not (dmin >= 0 and math.isfinite(dmax)):
        raise ValueError("dt: must be finite and >= 0 (pass softplus(dt + dt_bias))")
    if not (amax <= 0 and math.isfinite(amin)):
        raise ValueError("A: must be finite and <= 0 (Mamba stores -exp(A_log))")


def selective_scan(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                   D: torch.Tensor | None = None, z: torch.Tensor | None = None, *,
                   initial_state: torch.Tensor | None = None, output_final_state: bool = False,
                   validate: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Mamba-1 selective-scan prefill. x, dt, z: [B, D, T]; A: [D, N]; B, C: [B, G, N, T]; D: [D];
    initial_state: [B, D, N]. Returns (y: [B, D, T] in x's dtype, final state [B, D, N] float32 or None).
    ``validate=False`` skips the range checks of dt and A (a device sync per call); shapes are always checked.
    Usage: ``y, h = selective_scan(x, F.softplus(dt + dt_bias), -A_log.exp(), B, C, D, z, output_final_state=True)``.
    """
    _check(x, dt, A, B, C, D, z, initial_state, step=False, values=validate)
    if not use_triton(x):
        y, h = selective_scan_torch(x, dt, A, B, C, D, z, initial_state)
        return y, (h.float() if x.dtype != torch.float64 else h) if output_final_state else None
    from longctx.kernels.scan.triton_scan import scan_forward

    def c(t):
        return None if t is None else t.contiguous()
    return scan_forward(c(x), c(dt), c(A), c(B), c(C), c(D), c(z), c(initial_state), output_final_state)


def selective_step(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                   state: torch.Tensor, D: torch.Tensor | None = None,
                   z: torch.Tensor | None = None, *, validate: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """One decoding token. x, dt, z: [B, D]; A: [D, N]; B, C: [B, G, N]; state: [B, D, N].
    Returns (y: [B, D] in x's dtype, new state [B, D, N] float32). ``validate`` as for ``selective_scan``.
    """
    _check(x, dt, A, B, C, D, z, state, step=True, values=validate)
    if not use_triton(x):
        y, h = selective_step_torch(x, dt, A, B, C, state, D, z)
        return y, h.float() if x.dtype != torch.float64 else h
    from longctx.kernels.scan.triton_scan import step_forward

    def c(t):
        return None if t is None else t.contiguous()
    return step_forward(c(x), c(dt), c(A), c(B), c(C), c(D), c(z), c(state))
