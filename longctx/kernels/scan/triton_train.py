"""Triton kernels for training Mamba-1's selective scan: the forward with chunk checkpoints and its backward.

Forward: ``triton_scan._scan`` (one program per sequence and block of ``BD`` channels, chunks of ``BT`` tokens
composed by ``tl.associative_scan``) that also stores the state entering each chunk, ``hc [B, D, NT, N]``
float32 (NT = ceil(T / BT); 1/BT of the ``[B, D, N, T]`` states, 15 MB at B 16, 464 channels, N 16, T 2048).

Backward (``_scan_bwd``): one program per sequence and block of ``BD`` channels of one B/C group, walking the
chunks in reverse. Per chunk it recomputes the chunk's states from ``hc`` (the forward's scan again), then runs
the adjoint ``g_t = C_t dy'_t + a_{t+1} g_{t+1}`` (``g = dL/dh_t``, ``dy' = dy silu(z)``) as a reverse
``tl.associative_scan`` of the same maps, the carry ``dL/dh`` entering from the later chunk. With
``a_t h_{t-1} = h_t - u_t`` (no division by a decay that may underflow):

    dx = dt Σ_n g B + D dy'         ddt = Σ_n g (h - u) A + x Σ_n g B      dA = Σ_{b,t} g (h - u) dt
    dB = Σ_channels g dt x          dC = Σ_channels dy' h                   dD = Σ_{b,t} dy' x
    dz = dy y_pre silu'(z)          d initial_state = a_0 g_0

dB and dC (reduced over a group's channels) and dA, dD (over batch and time) are written as per-program
float32 partials and summed by torch afterwards: deterministic, no atomics. All arithmetic in float32.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from longctx.kernels.scan.train import BLOCK_T
from longctx.kernels.scan.triton_scan import _INTERPRET, _compose, _scan


@triton.jit
def _scan_bwd(x, dt, A, Bm, Cm, Dp, z, hc, dy, dhT, dx, ddt, dz, dA_p, dD_p, dB_p, dC_p, dh0,
              D, T, N, G, NT, NBLK,
              HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_DHT: tl.constexpr,
              BD: tl.constexpr, BN: tl.constexpr, BT: tl.constexpr, NT_STATIC: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    grp = tl.program_id(1) // NBLK                                     # every block lies in one B/C group
    blk = tl.program_id(1) % NBLK
    i = blk * BD + tl.arange(0, BD)
    d = grp * (D // G) + i
    n = tl.arange(0, BN)
    dmask, nmask = i < D // G, n < N
    dn_mask = dmask[:, None] & nmask[None, :]
    Af = tl.load(A + d[:, None] * N + n[None, :], mask=dn_mask, other=0.0).to(tl.float32)
    a2 = Af * 1.4426950408889634                                       # exp2 with log2(e) folded into A
    if HAS_D:
        skip = tl.load(Dp + d, mask=dmask, other=0.0).to(tl.float32)
    s_off = b * D * N + d[:, None] * N + n[None, :]
    if HAS_DHT:
        carry = tl.load(dhT + s_off, mask=dn_mask, other=0.0).to(tl.float32)   # dL/dh at the chunk's end
    else:
        carry = tl.zeros([BD, BN], dtype=tl.float32)
    dA_acc = tl.zeros([BD, BN], dtype=tl.float32)
    dD_acc = tl.zeros([BD], dtype=tl.float32)
    row = b * D * T + d[:, None].to(tl.int64) * T                      # [BD, 1]
    bc = b * G * N * T + (grp * N + n[None, :, None]) * T              # [1, BN, 1]
    hc_row = (b * D + d[:, None]) * NT * N + n[None, :]                # [BD, BN]
    part = ((b * G + grp) * NBLK + blk) * N * T + n[:, None] * T       # [BN, 1]: this program's dB, dC rows
    first = (tl.arange(0, BT) == 0)[None, :]
    for k in range(NT_STATIC if NT_STATIC > 0 else NT):
        c = NT - 1 - k
        t = c * BT + tl.arange(0, BT)
        m = dmask[:, None] & (t < T)[None, :]
        m3 = nmask[None, :, None] & (t < T)[None, None, :]
        xt = tl.load(x + row + t[None, :], mask=m, other=0.0).to(tl.float32)
        dtt = tl.load(dt + row + t[None, :], mask=m, other=0.0).to(tl.float32)
        dyt = tl.load(dy + row + t[None, :], mask=m, other=0.0).to(tl.float32)
        # a_{t+1}: the next token's dt, 0 (identity) at the chunk's last token, whose successor the carry holds
        tn = t + 1
        dtn = tl.load(dt + row + tn[None, :], mask=dmask[:, None] & ((tn < T) & (tn < c * BT + BT))[None, :],
                      other=0.0).to(tl.float32)
        Bt = tl.load(Bm + bc + t[None, None, :], mask=m3, other=0.0).to(tl.float32)
        Ct = tl.load(Cm + bc + t[None, None, :], mask=m3, other=0.0).to(tl.float32)
        h_in = tl.load(hc + hc_row + c * N, mask=dn_mask, other=0.0)
        a = tl.exp2(dtt[:, None, :] * a2[:, :, None])                 # [BD, BN, BT]
        ac, uc = tl.associative_scan((a, (dtt * xt)[:, None, :] * Bt), axis=2, combine_fn=_compose)
        hs = ac * h_in[:, :, None] + uc                                # the state after each token
        a_first = tl.exp2(tl.sum(tl.where(first, dtt, 0.0), axis=1)[:, None] * a2)   # [BD, BN]
        yt = tl.sum(hs * Ct, axis=1)
        if HAS_D:
            yt += skip[:, None] * xt
        if HAS_Z:
            zt = tl.load(z + row + t[None, :], mask=m, other=0.0).to(tl.float32)
            sg = tl.sigmoid(zt)
            tl.store(dz + row + t[None, :], (dyt * yt * sg * (1.0 + zt * (1.0 - sg))).to(dz.dtype.element_ty), mask=m)
            dyt = dyt * zt * sg
        if HAS_D:
            dD_acc += tl.sum(dyt * xt, axis=1)
        # reverse scan of g -> a_{t+1} g + C_t dy'_t: (prod of decays to the chunk's end, g from a zero carry)
        an = tl.exp2(dtn[:, None, :] * a2[:, :, None])
        ga, g = tl.associative_scan((an, Ct * dyt[:, None, :]), axis=2, combine_fn=_compose, reverse=True)
        g = g + ga * carry[:, :, None]                                 # dL/dh_t
        carry = a_first * tl.sum(tl.where(first[:, None, :], g, 0.0), axis=2)   # dL/dh entering this chunk
        gB = tl.sum(g * Bt, axis=1)                                    # [BD, BT]
        gh = g * (hs - (dtt * xt)[:, None, :] * Bt)                    # g_t a_t h_{t-1} (u recomputed, not kept)
        dA_acc += tl.sum(gh * dtt[:, None, :], axis=2)
        dxt = dtt * gB
        if HAS_D:
            dxt += skip[:, None] * dyt
        tl.store(dx + row + t[None, :], dxt.to(dx.dtype.element_ty), mask=m)
        tl.store(ddt + row + t[None, :], (tl.sum(gh * Af[:, :, None], axis=1) + xt * gB).to(ddt.dtype.element_ty),
                 mask=m)
        pm = nmask[:, None] & (t < T)[None, :]
        tl.store(dB_p + part + t[None, :], tl.sum(g * (dtt * xt)[:, None, :], axis=0), mask=pm)
        tl.store(dC_p + part + t[None, :], tl.sum(hs * dyt[:, None, :], axis=0), mask=pm)
    tl.store(dA_p + s_off, dA_acc, mask=dn_mask)
    tl.store(dh0 + s_off, carry, mask=dn_mask)
    if HAS_D:
        tl.store(dD_p + b * D + d, dD_acc, mask=dmask)


def _bn(N: int) -> int:
    return max(2, triton.next_power_of_2(N))


def train_forward(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                  D: torch.Tensor | None, z: torch.Tensor | None, initial_state: torch.Tensor | None,
                  block_d: int = 4, block_t: int = BLOCK_T,
                  num_warps: int = 4) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Forward on contiguous inputs (shapes as ``selective_scan_torch``). Returns (y: [B, D, T] in x's dtype,
    final state [B, D, N] float32, chunk-entry states hc [B, D, NT, N] float32 for ``train_backward``)."""
    Bsz, Dc, T = x.shape
    N, G = A.shape[1], B.shape[1]
    NT = triton.cdiv(T, block_t)
    y = torch.empty((Bsz, Dc, T), dtype=x.dtype, device=x.device)
    hT = torch.empty((Bsz, Dc, N), dtype=torch.float32, device=x.device)
    hc = torch.empty((Bsz, Dc, NT, N), dtype=torch.float32, device=x.device)
    _scan[(Bsz, triton.cdiv(Dc, block_d))](
        x, dt, A, B, C, x if D is None else D, x if z is None else z,
        x if initial_state is None else initial_state, y, hT, hc, Dc, T, N, G, NT,
        HAS_D=D is not None, HAS_Z=z is not None, HAS_H0=initial_state is not None, STORE_H=True,
        SAVE_CHUNKS=True, BLOCK_GROUP=(Dc // G) % block_d == 0, BD=block_d, BN=_bn(N), BT=block_t,
        NT_STATIC=NT if _INTERPRET else 0, num_warps=num_warps)
    return y, hT, hc


def train_backward(dy: torch.Tensor, dhT: torch.Tensor | None, x: torch.Tensor, dt: torch.Tensor,
                   A: torch.Tensor, B: torch.Tensor, C: torch.Tensor, D: torch.Tensor | None,
                   z: torch.Tensor | None, hc: torch.Tensor, block_d: int = 2, block_t: int = BLOCK_T,
                   num_warps: int = 2) -> tuple[torch.Tensor, ...]:
    """Backward on contiguous inputs (2 channels and 2 warps per program: the H100 sweep's fastest, README.md);
    dy [B, D, T], dhT [B, D, N] (the final state's gradient) or None, hc from
    ``train_forward`` with the same ``block_t``. Returns (dx, ddt, dA, dB, dC, dD, dz, d initial_state): each in
    its input's dtype, d initial_state float32; dD and dz empty where D or z is None."""
    Bsz, Dc, T = x.shape
    N, G = A.shape[1], B.shape[1]
    NT = hc.shape[2]
    nblk = triton.cdiv(Dc // G, block_d)
    f32 = {"dtype": torch.float32, "device": x.device}
    dx, ddt = torch.empty_like(x), torch.empty_like(dt)
    dz = torch.empty_like(z) if z is not None else x.new_empty(0)
    dA_p, dh0 = torch.empty((Bsz, Dc, N), **f32), torch.empty((Bsz, Dc, N), **f32)
    dD_p = torch.empty((Bsz, Dc), **f32) if D is not None else None
    dB_p, dC_p = (torch.empty((Bsz, G, nblk, N, T), **f32) for _ in range(2))
    _scan_bwd[(Bsz, G * nblk)](
        x, dt, A, B, C, x if D is None else D, x if z is None else z, hc, dy, hc if dhT is None else dhT,
        dx, ddt, dx if z is None else dz, dA_p, dA_p if D is None else dD_p, dB_p, dC_p, dh0,
        Dc, T, N, G, NT, nblk, HAS_D=D is not None, HAS_Z=z is not None, HAS_DHT=dhT is not None,
        BD=block_d, BN=_bn(N), BT=block_t, NT_STATIC=NT if _INTERPRET else 0, num_warps=num_warps)
    dD = dD_p.sum(0).to(D.dtype) if D is not None else x.new_empty(0)
    return (dx, ddt, dA_p.sum(0).to(A.dtype), dB_p.sum(2).to(B.dtype), dC_p.sum(2).to(C.dtype), dD, dz, dh0)
