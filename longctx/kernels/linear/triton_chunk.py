"""Triton kernels for chunked linear attention, gated (scalar / per-channel decay) and gated delta rule.

Launches, the structure of flash-linear-attention's chunk kernels (written anew here):
  0. ``_chunk_cumsum`` (gated variants, parallel): the chunk-local cumulative log decay ``gc``, once, so no
     scan runs inside the sequential loop of step 2 (times a per-head factor: Mamba-2's ``dt · A``);
  1. ``_delta_prep`` (delta rule only, parallel over chunks): the chunk's UT transform
     ``P = (I + diag(b) L)^-1`` (L is strictly lower) by forward substitution inside 16-row diagonal blocks,
     then block merges with matrix products, then ``W = P diag(b) (K ⊙ Γ)``, ``Vw = P diag(b) V``.
  2. ``_state`` (sequential over chunks, parallel over heads, value blocks and, without the delta rule, key
     blocks): stores the state at each chunk start into ``h`` and carries ``S = Γ_C ⊙ S + (K ⊙ Γ_C / Γ)ᵀ U``
     (``U = V``, or ``Vw - W S`` for the delta rule, written back for step 3).
  3. ``_output`` (parallel over chunks): ``O = scale · ((Q ⊙ Γ) h + tril(Q Kᵀ ⊙ Γ_t / Γ_s) U)``.
Mamba-2's SSD runs the same launches with ``v = x`` scaled by ``dt`` per row inside steps 2 and 3 and the skip
``D · x`` added in step 3, so no PyTorch pass over x, dt or y runs around them. Block shapes, warps and
pipeline depth per variant are the ``TUNING`` table; ``plan_forward`` returns the launches one by one so a
benchmark can time or precompile each. Given a ``flags`` buffer, the kernels that read g and beta anyway
(``_chunk_cumsum``, ``_delta_prep``) also flag values out of range, so the public ops check them without a
separate pass or a device sync before the launches.
Gates: GATE 0 none, 1 scalar log decay per token, 2 per-channel log decay. Inputs are contiguous
``[B, H_x, T, D]``; state head ``h`` reads input head ``h // (H // H_x)``. Matrix products take the input dtype
(bf16 on tensor cores); states and accumulators are float32.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl


@triton.jit
def _flag_if(flags, slot, bad):
    """flags[slot] = 1 if any element of the boolean tile ``bad`` is set (every writer writes the same 1)."""
    if tl.max(bad.to(tl.int32)) > 0:
        tl.store(flags + slot, 1)


@triton.jit
def _chunk_cumsum(g, a_head, gc, k, kd, flags, T, H, HG, HK, DK, GATE: tl.constexpr, HAS_A: tl.constexpr,
                  KD: tl.constexpr, CHECK: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr):
    """gc = cumulative sum within each chunk of the log decay g (times a_head[h] if HAS_A), float32; one
    program per chunk and gate head. With KD (per-channel gates), one program per chunk and state head, which
    also writes the gated keys ``kd = K ⊙ Γ_C / Γ`` that the sequential ``_state`` loop then only loads.
    With CHECK: flags[0] = 1 if some g is not finite or above 0 (NaN fails ``<=``), flags[1] = 1 if some
    per-channel g times half a chunk is below -80 (the chunked form's float32 limit, see ``_pair``)."""
    n = tl.program_id(0)
    if KD:
        bh = tl.program_id(1)
        b = bh // H
        h = bh % H
        bhg = b * HG + h // (H // HG)
    else:
        bhg = tl.program_id(1)
    base = bhg.to(tl.int64) * T * (DK if GATE == 2 else 1)
    rows = tl.arange(0, BT)
    t = n * BT + rows
    tmask = t < T
    if GATE == 1:
        gt = tl.load(g + base + t, mask=tmask, other=0.0).to(tl.float32)
        if CHECK:
            _flag_if(flags, 0, ~(gt <= 0.0) | (gt == float("-inf")))
        if HAS_A:
            gt = gt * tl.load(a_head + bhg % HG).to(tl.float32)
        tl.store(gc + base + t, tl.cumsum(gt, axis=0), mask=tmask)
    else:
        dk = tl.arange(0, BK)
        m = tmask[:, None] & (dk < DK)[None, :]
        gt = tl.load(g + base + t[:, None] * DK + dk[None, :], mask=m, other=0.0).to(tl.float32)
        if CHECK:
            _flag_if(flags, 0, ~(gt <= 0.0) | (gt == float("-inf")))
            _flag_if(flags, 1, gt * (BT // 2) < -80.0)
        gcum = tl.cumsum(gt, axis=0)
        if KD:
            # one state head per gate head writes gc: a branch, since Triton 3.9 rejects a scalar term in a mask
            if h % (H // HG) == 0:
                tl.store(gc + base + t[:, None] * DK + dk[None, :], gcum, mask=m)
            # rows past T add nothing, so the tile's last row is the decay at the chunk's last token
            glast = tl.sum(tl.where((rows == BT - 1)[:, None], gcum, 0.0), axis=0)
            kb = tl.load(k + (b * HK + h // (H // HK)).to(tl.int64) * T * DK + t[:, None] * DK + dk[None, :],
                         mask=m, other=0.0)
            tl.store(kd + bh.to(tl.int64) * T * DK + t[:, None] * DK + dk[None, :],
                     (kb * tl.exp(glast[None, :] - gcum)).to(kd.dtype.element_ty), mask=m)
        else:
            tl.store(gc + base + t[:, None] * DK + dk[None, :], gcum, mask=m)


@triton.jit
def _load_gc(gc, g_base, t, T, dk, dkmask, DK, GATE: tl.constexpr):
    """The chunk's cumulative log decay: [BT] (scalar gates) or [BT, BK]; rows past T repeat row T - 1."""
    tc = tl.minimum(t, T - 1)
    if GATE == 1:
        out = tl.load(gc + g_base + tc)
    else:
        out = tl.load(gc + g_base + tc[:, None] * DK + dk[None, :], mask=dkmask[None, :], other=0.0)
    return out


@triton.jit
def _pair(a, b, gc, rows, STRICT: tl.constexpr, GATE: tl.constexpr, BT: tl.constexpr, DT: tl.constexpr):
    """M[t, s] = a_t · (Γ_t / Γ_s ⊙ b_s) for s <= t (s < t if STRICT), else 0; a, b float32 [BT, BK].

    The product takes operands in DT (the input dtype: bf16 on tensor cores) and accumulates in float32."""
    if STRICT:
        mask = rows[:, None] > rows[None, :]
    else:
        mask = rows[:, None] >= rows[None, :]
    if GATE == 2:
        # Γ_t / Γ_s = exp(gc_t - gr) · exp(gr - gc_s) around the middle row gr keeps both factors finite
        gr = tl.sum(tl.where((rows == BT // 2)[:, None], gc, 0.0), axis=0)
        m = tl.dot((a * tl.exp(gc - gr[None, :])).to(DT), tl.trans((b * tl.exp(gr[None, :] - gc)).to(DT)))
        return tl.where(mask, m, 0.0)
    m = tl.dot(a.to(DT), tl.trans(b.to(DT)))
    if GATE == 1:
        return m * tl.exp(tl.where(mask, gc[:, None] - gc[None, :], float("-inf")))
    return tl.where(mask, m, 0.0)


@triton.jit
def _unit_lower_inverse(m, BT: tl.constexpr, LEVELS: tl.constexpr):
    """(I - m)^-1 for a strictly lower [BT, BT] float32 m, BT = 16 · 2^LEVELS.

    Forward substitution inside the 16-row diagonal blocks, all blocks at once (15 dependent row steps on
    [BT/16, 16, 16] tiles), then LEVELS merges: with P the inverse of the block diagonal of size s and E the
    lower off-diagonal blocks inside each block of size 2s, ``(D - E)^-1 = P + P E P`` exactly (E P E = 0),
    two matrix products per level. Stable where a power series in m is not (alike keys, weak decay)."""
    SB: tl.constexpr = BT >> LEVELS
    NB: tl.constexpr = 1 << LEVELS
    r = tl.arange(0, SB)
    blk = tl.arange(0, NB)
    same = blk[:, None, None, None] == blk[None, None, :, None]
    md = tl.sum(tl.where(same, tl.reshape(m, [NB, SB, NB, SB]), 0.0), axis=2)     # diagonal blocks [NB, SB, SB]
    p = tl.where(r[None, :, None] == r[None, None, :], 1.0, 0.0) + tl.zeros([NB, SB, SB], dtype=tl.float32)
    for i in tl.static_range(1, SB):   # row i = e_i + m[i, :i] p[:i], in every block
        mi = tl.sum(tl.where(r[None, :, None] == i, md, 0.0), axis=1)
        p += tl.where(r[None, :, None] == i, tl.sum(mi[:, :, None] * p, axis=1)[:, None, :], 0.0)
    P = tl.reshape(tl.where(same, p[:, :, None, :], 0.0), [BT, BT])
    rows = tl.arange(0, BT)
    for lvl in tl.static_range(LEVELS):
        s = SB << lvl
        e = ((rows[:, None] // s) != (rows[None, :] // s)) & ((rows[:, None] // (2 * s)) == (rows[None, :] // (2 * s)))
        P += tl.dot(P, tl.dot(tl.where(e, m, 0.0), P))
    return P


@triton.jit
def _delta_prep(k, v, g, beta, w, u, kd, flags, T, H, HK, HV, HG, HB, DK, DV,
                GATE: tl.constexpr, CHECK: tl.constexpr, BT: tl.constexpr, LEVELS: tl.constexpr,
                BK: tl.constexpr, BV: tl.constexpr, NVB: tl.constexpr, LOWP: tl.constexpr):
    n = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    rows = tl.arange(0, BT)
    t = n * BT + rows
    tmask = t < T
    dk = tl.arange(0, BK)
    dkmask = dk < DK
    k_base = (b * HK + h // (H // HK)).to(tl.int64) * T * DK
    kb = tl.load(k + k_base + t[:, None] * DK + dk[None, :], mask=tmask[:, None] & dkmask[None, :], other=0.0)
    bt = tl.load(beta + (b * HB + h // (H // HB)).to(tl.int64) * T + t, mask=tmask, other=0.0).to(tl.float32)
    if CHECK:   # flags[2] = 1 unless 0 <= beta <= 2 (NaN fails both)
        _flag_if(flags, 2, ~((bt >= 0.0) & (bt <= 2.0)))
    if GATE == 0:
        gc = tl.zeros([BT], dtype=tl.float32)
        kgam = kb
    else:
        g_base = (b * HG + h // (H // HG)).to(tl.int64) * T * (DK if GATE == 2 else 1)
        gc = _load_gc(g, g_base, t, T, dk, dkmask, DK, GATE)
        if GATE == 1:
            kgam = kb * tl.exp(gc)[:, None]
        else:
            kgam = kb * tl.exp(gc)
    m = -bt[:, None] * _pair(kb, kb, gc, rows, True, GATE, BT, k.dtype.element_ty)
    # (The doubling product (I + m)(I + m^2)(I + m^4)... is exact algebra but cancels catastrophically when
    # the keys are alike and the decay is weak: relative error 2e10 at BT = 64 on normalised positive keys.)
    p = _unit_lower_inverse(m, BT, LEVELS)
    if LOWP:   # W and U products in the input dtype (bf16 tensor cores), float32 accumulation
        p = p.to(k.dtype.element_ty)
    wv = tl.dot(p, (kgam * bt[:, None]).to(p.dtype))
    out_base = bh.to(tl.int64) * T
    tl.store(w + out_base * DK + t[:, None] * DK + dk[None, :], wv.to(w.dtype.element_ty),
             mask=tmask[:, None] & dkmask[None, :])
    if GATE == 2:  # gated keys for _state; rows past T repeat row T - 1, so the last row is the chunk end's
        glast = tl.sum(tl.where((rows == BT - 1)[:, None], gc, 0.0), axis=0)
        tl.store(kd + out_base * DK + t[:, None] * DK + dk[None, :],
                 (kb * tl.exp(glast[None, :] - gc)).to(kd.dtype.element_ty),
                 mask=tmask[:, None] & dkmask[None, :])
    v_base = (b * HV + h // (H // HV)).to(tl.int64) * T * DV
    for j in range(NVB):
        dv = j * BV + tl.arange(0, BV)
        vmask = tmask[:, None] & (dv < DV)[None, :]
        vb = tl.load(v + v_base + t[:, None] * DV + dv[None, :], mask=vmask, other=0.0).to(tl.float32)
        uv = tl.dot(p, (vb * bt[:, None]).to(p.dtype))
        tl.store(u + out_base * DV + t[:, None] * DV + dv[None, :], uv.to(u.dtype.element_ty), mask=vmask)


@triton.jit
def _state(k, v, vscale, g, w, u, h_out, s0, s_final, T, NT, H, HK, HV, HG, DK, DV,
           GATE: tl.constexpr, DELTA: tl.constexpr, HAS_INIT: tl.constexpr, VSCALE: tl.constexpr,
           BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, NT_STATIC: tl.constexpr):
    """One (value block, key block, head): the state at each chunk start into h_out, the last into s_final.
    The delta rule's ``U = Vw - W S`` needs all of D_k, so it runs with a single key block."""
    iv = tl.program_id(0)
    ik = tl.program_id(1)
    bh = tl.program_id(2)
    b = bh // H
    h = bh % H
    rows = tl.arange(0, BT)
    dk = ik * BK + tl.arange(0, BK)
    dkmask = dk < DK
    dv = iv * BV + tl.arange(0, BV)
    dvmask = dv < DV
    smask = dkmask[:, None] & dvmask[None, :]
    s_off = bh.to(tl.int64) * DK * DV + dk[:, None] * DV + dv[None, :]
    if HAS_INIT:
        S = tl.load(s0 + s_off, mask=smask, other=0.0).to(tl.float32)
    else:
        S = tl.zeros([BK, BV], dtype=tl.float32)
    k_base = (b * HK + h // (H // HK)).to(tl.int64) * T * DK
    if DELTA:
        v_base = bh.to(tl.int64) * T * DV
        w_base = bh.to(tl.int64) * T * DK
    else:
        v_base = (b * HV + h // (H // HV)).to(tl.int64) * T * DV
    g_base = (b * HG + h // (H // HG)).to(tl.int64) * T * (DK if GATE == 2 else 1)
    dtype = k.dtype.element_ty
    for n in range(NT_STATIC if NT_STATIC > 0 else NT):
        tl.store(h_out + (bh.to(tl.int64) * NT + n) * DK * DV + dk[:, None] * DV + dv[None, :],
                 S.to(h_out.dtype.element_ty), mask=smask)
        t = n * BT + rows
        tmask = t < T
        vmask = tmask[:, None] & dvmask[None, :]
        kmask_t = dkmask[:, None] & tmask[None, :]
        # K is loaded transposed, [BK, BT], so the product below takes it without a layout change
        kt = tl.load(k + k_base + t[None, :] * DK + dk[:, None], mask=kmask_t, other=0.0)
        if DELTA:
            wb = tl.load(w + w_base + t[:, None] * DK + dk[None, :], mask=tmask[:, None] & dkmask[None, :],
                         other=0.0)
            ub = tl.load(u + v_base + t[:, None] * DV + dv[None, :], mask=vmask, other=0.0).to(tl.float32)
            ub = ub - tl.dot(wb, S.to(dtype))
            tl.store(u + v_base + t[:, None] * DV + dv[None, :], ub.to(u.dtype.element_ty), mask=vmask)
        else:
            ub = tl.load(v + v_base + t[:, None] * DV + dv[None, :], mask=vmask, other=0.0)
            if VSCALE:
                dt = tl.load(vscale + bh.to(tl.int64) * T + t, mask=tmask, other=0.0).to(tl.float32)
                ub = ub.to(tl.float32) * dt[:, None]
        last = tl.minimum(n * BT + BT, T) - 1
        if GATE == 1:  # the decay to the chunk end scales U's rows (the smaller operand), not K
            gc = tl.load(g + g_base + t, mask=tmask, other=0.0)
            glast = tl.load(g + g_base + last)
            ub = ub.to(tl.float32) * tl.exp(glast - gc)[:, None]
            S = S * tl.exp(glast)
        elif GATE == 2:  # k holds the gated keys K ⊙ Γ_C / Γ (written by _chunk_cumsum or _delta_prep)
            glast = tl.load(g + g_base + last * DK + dk, mask=dkmask, other=0.0)
            S = S * tl.exp(glast)[:, None]
        S = tl.dot(kt.to(dtype), ub.to(dtype), S)
    tl.store(s_final + s_off, S, mask=smask)


@triton.jit
def _output(q, k, vu, vscale, skip, g, h_in, o, scale, T, NT, H, HQ, HK, HV, HG, DK, DV,
            GATE: tl.constexpr, DELTA: tl.constexpr, VSCALE: tl.constexpr, SKIP: tl.constexpr,
            BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr):
    iv = tl.program_id(0)
    n = tl.program_id(1)
    bh = tl.program_id(2)
    b = bh // H
    h = bh % H
    rows = tl.arange(0, BT)
    t = n * BT + rows
    tmask = t < T
    dk = tl.arange(0, BK)
    dkmask = dk < DK
    dv = iv * BV + tl.arange(0, BV)
    dvmask = dv < DV
    kmask = tmask[:, None] & dkmask[None, :]
    vmask = tmask[:, None] & dvmask[None, :]
    dtype = q.dtype.element_ty
    qb = tl.load(q + (b * HQ + h // (H // HQ)).to(tl.int64) * T * DK + t[:, None] * DK + dk[None, :],
                 mask=kmask, other=0.0)
    kb = tl.load(k + (b * HK + h // (H // HK)).to(tl.int64) * T * DK + t[:, None] * DK + dk[None, :],
                 mask=kmask, other=0.0)
    if DELTA:
        v_base = bh.to(tl.int64) * T * DV
    else:
        v_base = (b * HV + h // (H // HV)).to(tl.int64) * T * DV
    xb = tl.load(vu + v_base + t[:, None] * DV + dv[None, :], mask=vmask, other=0.0)
    if VSCALE:
        dt = tl.load(vscale + bh.to(tl.int64) * T + t, mask=tmask, other=0.0).to(tl.float32)
        vb = xb.to(tl.float32) * dt[:, None]
    else:
        vb = xb
    hb = tl.load(h_in + (bh.to(tl.int64) * NT + n) * DK * DV + dk[:, None] * DV + dv[None, :],
                 mask=dkmask[:, None] & dvmask[None, :], other=0.0)
    if GATE == 0:
        gc = tl.zeros([BT], dtype=tl.float32)
        qg = qb
    else:
        g_base = (b * HG + h // (H // HG)).to(tl.int64) * T * (DK if GATE == 2 else 1)
        gc = _load_gc(g, g_base, t, T, dk, dkmask, DK, GATE)
        if GATE == 1:
            qg = qb * tl.exp(gc)[:, None]
        else:
            qg = qb * tl.exp(gc)
    a = _pair(qb, kb, gc, rows, False, GATE, BT, dtype)
    ob = (tl.dot(qg.to(dtype), hb.to(dtype)) + tl.dot(a.to(dtype), vb.to(dtype))) * scale
    if SKIP:
        ob += tl.load(skip + h).to(tl.float32) * xb.to(tl.float32)
    tl.store(o + bh.to(tl.int64) * T * DV + t[:, None] * DV + dv[None, :], ob.to(o.dtype.element_ty), mask=vmask)


# Triton 3.6's interpreter cannot take a run-time loop bound under numpy 2 (it converts a 1-element
# array to int), so under the interpreter the chunk count is passed as a compile-time constant.
_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"


@dataclass(frozen=True)
class Tuning:
    """Launch shapes of one variant: ``_state`` key/value block rows (the delta rule always takes all of
    D_k), warps and pipeline stages; ``_output`` value block, warps, stages; ``_delta_prep`` warps. Blocks
    are clipped to the head dims, so one entry serves every D_k, D_v."""

    state_bk: int
    state_bv: int
    state_warps: int
    state_stages: int
    out_bv: int
    out_warps: int
    out_stages: int
    prep_warps: int = 8
    prep_lowp: bool = False   # _delta_prep's W and U products in the input dtype instead of float32


# (GATE, DELTA) -> launch shapes; GATE 0 none, 1 scalar, 2 per channel. Chosen at D_k = D_v = 128 on an H100 by
# the 64K launch-shape sweep of benchmarks/linear/device_run.py (kernels/linear/README.md).
TUNING: dict[tuple[int, bool], Tuning] = {
    (0, False): Tuning(64, 32, 4, 3, 128, 4, 2),
    (1, False): Tuning(32, 32, 4, 3, 128, 4, 2),
    (2, False): Tuning(32, 32, 4, 3, 128, 4, 2),
    (0, True): Tuning(128, 32, 4, 3, 128, 4, 2, 4, prep_lowp=True),
    (1, True): Tuning(128, 32, 4, 3, 128, 4, 2, 4, prep_lowp=True),
    (2, True): Tuning(128, 32, 4, 3, 128, 4, 2, 4, prep_lowp=True),
}


@dataclass
class Launch:
    """One kernel launch of a plan: calling it launches; ``compile()`` only builds it (Triton's warmup)."""

    name: str
    kernel: triton.runtime.JITFunction
    grid: tuple[int, ...]
    args: tuple
    kwargs: dict

    def __call__(self) -> None:
        self.kernel[self.grid](*self.args, **self.kwargs)

    def compile(self) -> None:
        self.kernel.warmup(*self.args, grid=self.grid, **self.kwargs)


def _alloc(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Every buffer the kernels write (tests replace this to poison them with NaN)."""
    return torch.empty(shape, dtype=dtype, device=device)


def _block(d: int) -> int:
    return max(16, triton.next_power_of_2(d))


def plan_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor | None,
                 beta: torch.Tensor | None, scale: float, initial_state: torch.Tensor | None, chunk_size: int, *,
                 g_scale: torch.Tensor | None = None, v_scale: torch.Tensor | None = None,
                 skip: torch.Tensor | None = None, flags: torch.Tensor | None = None,
                 tuning: Tuning | None = None) -> tuple[list[Launch], torch.Tensor, torch.Tensor]:
    """The launches of one chunked prefill on validated, contiguous inputs (see ``kernels.linear.ops``), and
    the buffers they fill: (launches, o: [B, H, T, D_v] in v's dtype, final state: [B, H, D_k, D_v] float32).

    Mamba-2 extras (no delta rule): g_scale [H_g] multiplies the log decay g (``dt · A``); v_scale [B, H, T]
    multiplies v's rows (``dt · x``); skip [H] adds ``skip[h] · v`` (``D · x``) to the output.
    flags: int32 [3], zeros, or None: where given, set as ``_chunk_cumsum`` and ``_delta_prep`` say (g out of
    range, per-channel g too steep for the chunk, beta out of [0, 2]); the caller reads it after the launches.
    """
    H = max(x.shape[1] for x in (q, k, v, g, beta) if x is not None)
    B, HQ, T, DK = q.shape
    HK, HV, DV = k.shape[1], v.shape[1], v.shape[-1]
    BT = chunk_size
    NT = triton.cdiv(T, BT)
    BK, BVF = _block(DK), _block(DV)
    GATE = 0 if g is None else (1 if g.dim() == 3 else 2)
    HG = 1 if g is None else g.shape[1]
    DELTA = beta is not None
    tn = tuning or TUNING[(GATE, DELTA)]
    dev = q.device
    launches = []
    g_arg = kd = q
    f_arg = q if flags is None else flags
    if g is not None:  # every kernel below reads the chunk-local cumulative log decay, not g itself
        g_arg = _alloc(tuple(g.shape), torch.float32, dev)
        KD = GATE == 2 and not DELTA
        if GATE == 2:
            kd = _alloc((B, H, T, DK), q.dtype, dev)
        launches.append(Launch("cumsum", _chunk_cumsum, (NT, B * (H if KD else HG)),
                               (g, q if g_scale is None else g_scale, g_arg, k, kd, f_arg, T, H, HG, HK, DK),
                               {"GATE": GATE, "HAS_A": g_scale is not None, "KD": KD, "CHECK": flags is not None,
                                "BT": BT, "BK": BK}))
    w = u = q
    if DELTA:
        w = _alloc((B, H, T, DK), q.dtype, dev)
        u = _alloc((B, H, T, DV), q.dtype, dev)
        BV_P = min(BVF, 64)
        launches.append(Launch("delta_prep", _delta_prep, (NT, B * H),
                               (k, v, g_arg, beta, w, u, kd, f_arg, T, H, HK, HV, HG, beta.shape[1], DK, DV),
                               {"GATE": GATE, "CHECK": flags is not None, "BT": BT,
                                "LEVELS": (BT // 16).bit_length() - 1, "BK": BK, "BV": BV_P,
                                "NVB": triton.cdiv(DV, BV_P), "LOWP": tn.prep_lowp, "num_warps": tn.prep_warps}))
    h = _alloc((B, H, NT, DK, DV), q.dtype, dev)
    s_final = _alloc((B, H, DK, DV), torch.float32, dev)
    BK_S = BK if DELTA else min(tn.state_bk, BK)
    BV_S = min(tn.state_bv, BVF)
    launches.append(Launch("state", _state, (triton.cdiv(DV, BV_S), triton.cdiv(DK, BK_S), B * H),
                           (kd if GATE == 2 else k, v, q if v_scale is None else v_scale, g_arg, w, u, h,
                            q if initial_state is None else initial_state, s_final, T, NT, H,
                            H if GATE == 2 else HK, HV, HG, DK, DV),
                           {"GATE": GATE, "DELTA": DELTA, "HAS_INIT": initial_state is not None,
                            "VSCALE": v_scale is not None, "BT": BT, "BK": BK_S, "BV": BV_S,
                            "NT_STATIC": NT if _INTERPRET else 0, "num_warps": tn.state_warps,
                            "num_stages": tn.state_stages}))
    o = _alloc((B, H, T, DV), v.dtype, dev)
    # a float32 key block wider than 128 (BK * 4 bytes > 512) with 128 values needs 295 KB of shared memory
    # in _output, over the H100's 227 KB: take 64 values then (213 KB; measured offline for sm_90)
    BV_O = min(tn.out_bv, BVF, 64 if BK * q.element_size() > 512 else 256)
    launches.append(Launch("output", _output, (triton.cdiv(DV, BV_O), NT, B * H),
                           (q, k, u if DELTA else v, q if v_scale is None else v_scale, q if skip is None else skip,
                            g_arg, h, o, scale, T, NT, H, HQ, HK, HV, HG, DK, DV),
                           {"GATE": GATE, "DELTA": DELTA, "VSCALE": v_scale is not None, "SKIP": skip is not None,
                            "BT": BT, "BK": BK, "BV": BV_O, "num_warps": tn.out_warps, "num_stages": tn.out_stages}))
    return launches, o, s_final


class FlagsRead:
    """A host copy of the ``flags`` buffer, queued right after the last launch that writes it; ``values()``
    waits for that launch only, so the launches queued after it keep the GPU busy while the host checks."""

    def __init__(self, flags: torch.Tensor):
        self.host = flags.to("cpu", non_blocking=True)   # pinned memory when flags is on a GPU
        self.done = None
        if flags.is_cuda:
            self.done = torch.cuda.Event()
            self.done.record()

    def values(self) -> list[int]:
        if self.done is not None:
            self.done.synchronize()
        return self.host.tolist()


def chunk_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor | None,
                  beta: torch.Tensor | None, scale: float, initial_state: torch.Tensor | None,
                  chunk_size: int, **extras) -> tuple[torch.Tensor, torch.Tensor, FlagsRead | None]:
    """Run ``plan_forward``'s launches (same arguments). Returns (o: [B, H, T, D_v], final state float32, and
    with ``flags`` given, its ``FlagsRead`` taken after ``_chunk_cumsum`` / ``_delta_prep``, the kernels that
    set it; else None)."""
    launches, o, s_final = plan_forward(q, k, v, g, beta, scale, initial_state, chunk_size, **extras)
    flags = extras.get("flags")
    writers = [i for i, launch in enumerate(launches) if launch.name in ("cumsum", "delta_prep")]
    read = None
    for i, launch in enumerate(launches):
        launch()
        if flags is not None and writers and i == writers[-1]:
            read = FlagsRead(flags)
    return o, s_final, read


@triton.jit
def _step(q, k, v, g, beta, s_in, s_out, o, scale, H, HQ, HK, HV, HG, HB, DK, DV,
          GATE: tl.constexpr, DELTA: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr):
    iv = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    dk = tl.arange(0, BK)
    dkmask = dk < DK
    dv = iv * BV + tl.arange(0, BV)
    dvmask = dv < DV
    s_off = bh.to(tl.int64) * DK * DV + dk[:, None] * DV + dv[None, :]
    smask = dkmask[:, None] & dvmask[None, :]
    S = tl.load(s_in + s_off, mask=smask, other=0.0).to(tl.float32)
    qb = tl.load(q + (b * HQ + h // (H // HQ)) * DK + dk, mask=dkmask, other=0.0).to(tl.float32)
    kb = tl.load(k + (b * HK + h // (H // HK)) * DK + dk, mask=dkmask, other=0.0).to(tl.float32)
    vb = tl.load(v + (b * HV + h // (H // HV)) * DV + dv, mask=dvmask, other=0.0).to(tl.float32)
    if GATE == 1:
        S = S * tl.exp(tl.load(g + b * HG + h // (H // HG)).to(tl.float32))
    elif GATE == 2:
        gb = tl.load(g + (b * HG + h // (H // HG)) * DK + dk, mask=dkmask, other=0.0).to(tl.float32)
        S = S * tl.exp(gb)[:, None]
    if DELTA:
        bb = tl.load(beta + b * HB + h // (H // HB)).to(tl.float32)
        vb = bb * (vb - tl.sum(S * kb[:, None], axis=0))
    S += kb[:, None] * vb[None, :]
    tl.store(s_out + s_off, S, mask=smask)
    tl.store(o + bh * DV + dv, (tl.sum(S * qb[:, None], axis=0) * scale).to(o.dtype.element_ty), mask=dvmask)


def step_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor | None,
                 beta: torch.Tensor | None, scale: float, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Launch the one-token step on validated, contiguous inputs. Returns (o: [B, H, D_v], new state float32)."""
    B, H, DK, DV = state.shape
    BV = min(_block(DV), 64)
    s_out = _alloc((B, H, DK, DV), torch.float32, q.device)
    o = _alloc((B, H, DV), v.dtype, q.device)
    GATE = 0 if g is None else (1 if g.dim() == 2 else 2)
    _step[(triton.cdiv(DV, BV), B * H)](q, k, v, q if g is None else g, q if beta is None else beta, state, s_out,
                                        o, scale, H, q.shape[1], k.shape[1], v.shape[1],
                                        1 if g is None else g.shape[1], 1 if beta is None else beta.shape[1], DK, DV,
                                        GATE=GATE, DELTA=beta is not None, BK=_block(DK), BV=BV)
    return o, s_out
