"""Triton kernels for Mamba-1's selective scan: the chunked prefill and the one-token decoding step.

Prefill, as Mamba's CUDA kernel: one program owns a block of ``BD`` channels of one sequence and walks the
sequence in chunks of ``BT`` tokens, the state ``h [BD, N]`` kept in float32 registers across chunks. Within
a chunk the ``BT`` affine maps ``h -> a_t h + u_t`` (``a_t = exp(dt_t A)``, ``u_t = dt_t B_t x_t``) are
composed by a parallel prefix scan over time (``tl.associative_scan``), so the sequential dependency is one
step per chunk, not per token. Tokens past ``T`` load ``dt = 0`` (the identity map), so the chunk's last
column is the state after the last real token. Inputs in any float dtype; all arithmetic in float32.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

LOG2E = 1.4426950408889634


@triton.jit
def _compose(a1, u1, a2, u2):
    """(h -> a2 (a1 h + u1) + u2): the later map applied after the earlier one."""
    return a1 * a2, a2 * u1 + u2


@triton.jit
def _scan(x, dt, A, Bm, Cm, Dp, z, h0, y, hT, hc, D, T, N, G, NT,
          HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_H0: tl.constexpr, STORE_H: tl.constexpr,
          SAVE_CHUNKS: tl.constexpr,
          BLOCK_GROUP: tl.constexpr, BD: tl.constexpr, BN: tl.constexpr, BT: tl.constexpr,
          NT_STATIC: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    d = tl.program_id(1) * BD + tl.arange(0, BD)
    n = tl.arange(0, BN)
    dmask, nmask = d < D, n < N
    dn_mask = dmask[:, None] & nmask[None, :]
    g = d // (D // G)                                                  # B/C group of each channel
    # exp2 with log2(e) folded into A; padded state entries get A = 0, B = 0, so they stay 0
    a2 = tl.load(A + d[:, None] * N + n[None, :], mask=dn_mask, other=0.0).to(tl.float32) * 1.4426950408889634
    if HAS_D:
        skip = tl.load(Dp + d, mask=dmask, other=0.0).to(tl.float32)
    s_off = b * D * N + d[:, None] * N + n[None, :]
    if HAS_H0:
        h = tl.load(h0 + s_off, mask=dn_mask, other=0.0).to(tl.float32)
    else:
        h = tl.zeros([BD, BN], dtype=tl.float32)
    row = b * D * T + d[:, None].to(tl.int64) * T                      # [BD, 1]; D·T may pass 2^31
    if BLOCK_GROUP:   # the block's channels share one group: load B, C once as [BN, BT], broadcast over channels
        bc = b * G * N * T + ((tl.program_id(1) * BD) // (D // G) * N + n[None, :, None]) * T   # [1, BN, 1]
    else:
        bc = b * G * N * T + (g[:, None, None] * N + n[None, :, None]) * T                     # [BD, BN, 1]
    for c in range(NT_STATIC if NT_STATIC > 0 else NT):
        if SAVE_CHUNKS:   # the state entering each chunk, [B, D, NT, N], for the training backward
            tl.store(hc + (b * D + d[:, None]) * NT * N + c * N + n[None, :], h, mask=dn_mask)
        t = c * BT + tl.arange(0, BT)
        m = dmask[:, None] & (t < T)[None, :]
        if BLOCK_GROUP:
            m3 = nmask[None, :, None] & (t < T)[None, None, :]
        else:
            m3 = dn_mask[:, :, None] & (t < T)[None, None, :]
        xt = tl.load(x + row + t[None, :], mask=m, other=0.0).to(tl.float32)
        dtt = tl.load(dt + row + t[None, :], mask=m, other=0.0).to(tl.float32)
        Bt = tl.load(Bm + bc + t[None, None, :], mask=m3, other=0.0).to(tl.float32)
        Ct = tl.load(Cm + bc + t[None, None, :], mask=m3, other=0.0).to(tl.float32)
        a = tl.exp2(dtt[:, None, :] * a2[:, :, None])                 # [BD, BN, BT]
        u = (dtt * xt)[:, None, :] * Bt
        a, u = tl.associative_scan((a, u), axis=2, combine_fn=_compose)
        hs = a * h[:, :, None] + u                                    # the state after each token
        yt = tl.sum(hs * Ct, axis=1)
        h = tl.sum(tl.where((tl.arange(0, BT) == BT - 1)[None, None, :], hs, 0.0), axis=2)
        if HAS_D:
            yt += skip[:, None] * xt
        if HAS_Z:
            zt = tl.load(z + row + t[None, :], mask=m, other=0.0).to(tl.float32)
            yt *= zt * tl.sigmoid(zt)
        tl.store(y + row + t[None, :], yt.to(y.dtype.element_ty), mask=m)
    if STORE_H:
        tl.store(hT + s_off, h, mask=dn_mask)


@triton.jit
def _step(x, dt, A, Bm, Cm, Dp, z, s_in, s_out, y, D, N, G,
          HAS_D: tl.constexpr, HAS_Z: tl.constexpr, BD: tl.constexpr, BN: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    d = tl.program_id(1) * BD + tl.arange(0, BD)
    n = tl.arange(0, BN)
    dmask, nmask = d < D, n < N
    dn_mask = dmask[:, None] & nmask[None, :]
    g = d // (D // G)
    xt = tl.load(x + b * D + d, mask=dmask, other=0.0).to(tl.float32)
    dtt = tl.load(dt + b * D + d, mask=dmask, other=0.0).to(tl.float32)
    a2 = tl.load(A + d[:, None] * N + n[None, :], mask=dn_mask, other=0.0).to(tl.float32) * 1.4426950408889634
    bc = b * G * N + g[:, None] * N + n[None, :]
    Bt = tl.load(Bm + bc, mask=dn_mask, other=0.0).to(tl.float32)
    Ct = tl.load(Cm + bc, mask=dn_mask, other=0.0).to(tl.float32)
    s_off = b * D * N + d[:, None] * N + n[None, :]
    h = tl.load(s_in + s_off, mask=dn_mask, other=0.0).to(tl.float32)
    h = tl.exp2(dtt[:, None] * a2) * h + (dtt * xt)[:, None] * Bt
    yt = tl.sum(h * Ct, axis=1)
    if HAS_D:
        yt += tl.load(Dp + d, mask=dmask, other=0.0).to(tl.float32) * xt
    if HAS_Z:
        zt = tl.load(z + b * D + d, mask=dmask, other=0.0).to(tl.float32)
        yt *= zt * tl.sigmoid(zt)
    tl.store(s_out + s_off, h, mask=dn_mask)
    tl.store(y + b * D + d, yt.to(y.dtype.element_ty), mask=dmask)


# Triton 3.6's interpreter cannot take a run-time loop bound under numpy 2 (it converts a 1-element
# array to int), so under the interpreter the chunk count is passed as a compile-time constant.
_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"


def scan_forward(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                 D: torch.Tensor | None, z: torch.Tensor | None, initial_state: torch.Tensor | None,
                 store_state: bool, block_d: int = 4, block_t: int = 64,
                 num_warps: int = 4) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Launch the prefill on validated, contiguous inputs (see ``kernels.scan.ops``).

    Returns (y: [B, D, T] in x's dtype, final state [B, D, N] float32 or None).
    """
    Bsz, Dc, T = x.shape
    N, G = A.shape[1], B.shape[1]
    y = torch.empty((Bsz, Dc, T), dtype=x.dtype, device=x.device)
    hT = torch.empty((Bsz, Dc, N), dtype=torch.float32, device=x.device) if store_state else None
    block_t = min(block_t, max(2, triton.next_power_of_2(T)))   # short prefills take a short chunk
    NT = triton.cdiv(T, block_t)
    _scan[(Bsz, triton.cdiv(Dc, block_d))](
        x, dt, A, B, C, x if D is None else D, x if z is None else z,
        x if initial_state is None else initial_state, y, y if hT is None else hT, y, Dc, T, N, G, NT,
        HAS_D=D is not None, HAS_Z=z is not None, HAS_H0=initial_state is not None, STORE_H=store_state,
        SAVE_CHUNKS=False,
        BLOCK_GROUP=(Dc // G) % block_d == 0, BD=block_d, BN=max(2, triton.next_power_of_2(N)), BT=block_t,
        NT_STATIC=NT if _INTERPRET else 0, num_warps=num_warps)
    return y, hT


def step_forward(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                 D: torch.Tensor | None, z: torch.Tensor | None,
                 state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Launch one decoding step on validated, contiguous inputs: x [B, D], B/C [B, G, N], state [B, D, N].

    Returns (y: [B, D] in x's dtype, new state [B, D, N] float32).
    """
    Bsz, Dc = x.shape
    N, G = A.shape[1], B.shape[1]
    y = torch.empty((Bsz, Dc), dtype=x.dtype, device=x.device)
    s_out = torch.empty((Bsz, Dc, N), dtype=torch.float32, device=x.device)
    BD = 32
    _step[(Bsz, triton.cdiv(Dc, BD))](x, dt, A, B, C, x if D is None else D, x if z is None else z, state, s_out, y,
                                      Dc, N, G, HAS_D=D is not None, HAS_Z=z is not None, BD=BD,
                                      BN=max(2, triton.next_power_of_2(N)), num_warps=4)
    return y, s_out
