"""Public linear-attention ops: argument checks, then Triton (CUDA, or ``TRITON_INTERPRET=1``) or the
chunked PyTorch path (CPU tensors otherwise).

Layout: q, k ``[B, H_x, T, D_k]``, v ``[B, H_x, T, D_v]``, log decay ``g`` ``[B, H_x, T]`` (scalar per head)
or ``[B, H_x, T, D_k]`` (per key channel), ``beta`` ``[B, H_x, T]``; states ``[B, H, D_k, D_v]`` float32.
Each input may have its own head count ``H_x`` dividing ``H``, the largest (grouped heads; Mamba-2's shared
B/C). ``g`` is in log space: the decay is ``exp(g)``, so ``g <= 0``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from longctx.kernels.backend import use_triton
from longctx.kernels.linear.chunked_torch import chunked_linear_attention

FEATURE_MAPS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "identity": lambda x: x,
    "elu1": lambda x: F.elu(x) + 1.0,
    "relu": F.relu,
}
FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _heads(name: str, x: torch.Tensor, H: int) -> None:
    if H % x.shape[1]:
        raise ValueError(f"{name}: {x.shape[1]} heads do not divide the {H} state heads")


def _range_error(g: torch.Tensor | None, g_bad: bool, steep: bool, beta_bad: bool, chunk_size: int | None) -> None:
    """Raise the ValueError of the first range check that failed (g finite and <= 0; per-channel g not too
    steep for the chunk; beta in [0, 2])."""
    if g_bad:
        raise ValueError("g: log decay must be finite and <= 0 (decay exp(g) in (0, 1])")
    if steep:
        raise ValueError(f"g: per-channel log decay {float(g.min()):.3g} is below -160/chunk_size; the chunked form "
                         f"would overflow float32: use a smaller chunk_size")
    if beta_bad:
        raise ValueError("beta: must be finite and in [0, 2]")


def _check_values(g: torch.Tensor | None, beta: torch.Tensor | None, chunk_size: int | None) -> None:
    """Decay and beta range checks of the paths without Triton: one pass over each (aminmax; NaN fails every
    comparison), one sync. The Triton path reads flags its kernels set instead (``_forward``)."""
    vals = [torch.stack(torch.aminmax(x)).float() for x in (g, beta) if x is not None and x.numel()]
    if not vals:
        return
    got = torch.cat(vals).tolist()
    g_bad = steep = beta_bad = False
    if g is not None and g.numel():
        gmin, gmax = got[:2]
        got = got[2:]
        g_bad = not (gmax <= 0 and math.isfinite(gmin))
        steep = g.dim() == 4 and chunk_size is not None and gmin * (chunk_size // 2) < -80.0
    if beta is not None and beta.numel():
        bmin, bmax = got
        beta_bad = not (bmin >= 0 and bmax <= 2)
    _range_error(g, g_bad, steep, beta_bad, chunk_size)


def check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, step: bool) -> None:
    """ValueError unless q, k, v are floating tensors of one dtype, ``[B, H, T, D]`` (``[B, H, D]`` for a step)."""
    nd = 3 if step else 4
    for name, x in (("q", q), ("k", k), ("v", v)):
        if not isinstance(x, torch.Tensor) or x.dim() != nd:
            raise ValueError(f"{name}: expected a {nd}-d tensor [B, H, {'' if step else 'T, '}D], got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        if x.dtype not in FLOATS:
            raise ValueError(f"{name}: dtype {x.dtype} is not a floating type")
    if k.dtype != q.dtype or v.dtype != q.dtype:
        raise ValueError(f"k, v: dtypes {k.dtype}, {v.dtype} must match q's {q.dtype}")


def _check(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor | None, beta: torch.Tensor | None,
           state: torch.Tensor | None, chunk_size: int | None, step: bool, values: bool = True) -> int:
    """Validate shapes, dtypes and (if values) ranges; return the state head count H."""
    check_qkv(q, k, v, step)
    nd = 3 if step else 4
    if len({x.device for x in (q, k, v)}) != 1:
        raise ValueError("q, k, v: must be on one device")
    B, Dk = q.shape[0], q.shape[-1]
    if k.shape[0] != B or v.shape[0] != B:
        raise ValueError(f"k, v: batch {k.shape[0]}, {v.shape[0]} differs from q's {B}")
    if k.shape[-1] != Dk:
        raise ValueError(f"k: key dim {k.shape[-1]} differs from q's {Dk}")
    if not step and not (k.shape[2] == v.shape[2] == q.shape[2]):
        raise ValueError(f"k, v: lengths {k.shape[2]}, {v.shape[2]} differ from q's {q.shape[2]}")
    H = max(x.shape[1] for x in (q, k, v, g, beta) if x is not None)
    for name, x in (("q", q), ("k", k), ("v", v)):
        _heads(name, x, H)
    lead = (B,) if step else (B, q.shape[2])
    if g is not None:
        if g.dtype not in FLOATS:
            raise ValueError(f"g: dtype {g.dtype} is not a floating type")
        ok = g.dim() == nd - 1 and g.shape[0] == B and tuple(g.shape[2:]) == lead[1:]
        ok = ok or (g.dim() == nd and g.shape[0] == B and tuple(g.shape[2:]) == lead[1:] + (Dk,))
        if not ok:
            raise ValueError(f"g: shape {tuple(g.shape)}, expected [B, H_g{', T' if not step else ''}] or "
                             f"[B, H_g{', T' if not step else ''}, D_k]")
        _heads("g", g, H)
    if beta is not None:
        if beta.dtype not in FLOATS or beta.dim() != nd - 1 or beta.shape[0] != B or \
                tuple(beta.shape[2:]) != lead[1:]:
            raise ValueError(f"beta: shape {tuple(beta.shape)} / dtype {beta.dtype}, expected floating "
                             f"[B, H_b{', T' if not step else ''}]")
        _heads("beta", beta, H)
    if state is not None and tuple(state.shape) != (B, H, Dk, v.shape[-1]):
        raise ValueError(f"{'state' if step else 'initial_state'}: shape {tuple(state.shape)}, expected "
                         f"{(B, H, Dk, v.shape[-1])}")
    if chunk_size is not None:
        if not isinstance(chunk_size, int) or chunk_size < 16 or chunk_size > 128 or chunk_size & (chunk_size - 1):
            raise ValueError(f"chunk_size: {chunk_size} must be a power of two in [16, 128]")
    if Dk > 256 or v.shape[-1] > 256:
        raise ValueError(f"q/v: head dims {Dk}, {v.shape[-1]} must be <= 256")
    if values:
        _check_values(g, beta, chunk_size)
    return H


def check_prefill(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, initial_state: torch.Tensor | None,
                  chunk_size: int) -> int:
    """The shape checks of an ungated prefill (for callers that check their own gates, as Mamba-2's SSD
    does); returns the state head count H."""
    return _check(q, k, v, None, None, initial_state, chunk_size, step=False)


def _pow2(d: int) -> int:
    """16-bit inputs go to the kernels with D_k, D_v padded to powers of two: on an H100 (Triton 3.6),
    bf16 at D_k = D_v = 62 came out with relative error 0.23 against the float64 recurrence (float32 at 62,
    and bf16 at 64 and 128, within 3e-3; kernels/linear/README.md)."""
    return 1 << (d - 1).bit_length()


def _forward(q, k, v, g, beta, scale, initial_state, output_final_state, chunk_size, validate=True):
    triton_path = use_triton(q)
    # the Triton kernels flag out-of-range g and beta while they read them: one small read after the
    # launches that set the flags instead of a pass over g and a sync before them (outputs of a failed
    # check are never returned)
    _check(q, k, v, g, beta, initial_state, chunk_size, step=False, values=validate and not triton_path)
    scale = q.shape[-1] ** -0.5 if scale is None else float(scale)
    if triton_path:
        from triton.runtime.errors import OutOfResources

        from longctx.kernels.linear.triton_chunk import chunk_forward

        dk, dv = q.shape[-1], v.shape[-1]
        pk, pv = (_pow2(dk), _pow2(dv)) if q.element_size() == 2 else (dk, dv)
        if (pk, pv) != (dk, dv):   # zero key/value channels change nothing; outputs are cut back below
            q, k = F.pad(q, (0, pk - dk)), F.pad(k, (0, pk - dk))
            v = F.pad(v, (0, pv - dv))
            g = F.pad(g, (0, pk - dk)) if g is not None and g.dim() == 4 else g
            initial_state = None if initial_state is None else F.pad(initial_state, (0, pv - dv, 0, pk - dk))
        c = [None if x is None else x.contiguous() for x in (q, k, v, g, beta)]
        s0 = None if initial_state is None else initial_state.float().contiguous()
        check = validate and (g is not None or beta is not None)
        flags = torch.zeros(3, dtype=torch.int32, device=q.device) if check else None
        try:
            o, s, read = chunk_forward(*c, scale, s0, chunk_size, flags=flags)
        except OutOfResources as err:   # raised while compiling, before any kernel ran (float32 delta rule at D_k = 128)
            raise ValueError(f"q, k, v: {q.dtype} at D_k = {dk}, D_v = {dv} with chunk_size {chunk_size} needs more "
                             f"{err.name} than this GPU has ({err.required:,} > {err.limit:,} bytes); pass bf16/fp16 "
                             "inputs or a smaller chunk_size") from None
        if check:   # waits for the launch that sets the flags, not for the ones queued after it
            _range_error(g, *(bool(f) for f in read.values()), chunk_size)
        o, s = o[..., :dv], s[..., :dk, :dv]
    else:
        o, s = chunked_linear_attention(q, k, v, g, beta, scale, initial_state, chunk_size)
        o = o.to(v.dtype)
    return o, (s if output_final_state else None)


def linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, feature_map: str = "identity",
                     scale: float | None = None, initial_state: torch.Tensor | None = None,
                     output_final_state: bool = False, chunk_size: int = 64) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Causal linear attention ``o_t = scale · Σ_{s<=t} (φ(q_t)·φ(k_s)) v_s`` (no normalizer).

    q, k: [B, H_q|H_k, T, D_k]; v: [B, H_v, T, D_v]; feature_map φ: one of FEATURE_MAPS;
    initial_state: [B, H, D_k, D_v]. Returns (o: [B, H, T, D_v], final state [B, H, D_k, D_v] float32 or None).
    Usage: ``o, _ = linear_attention(q, k, v, feature_map="elu1")``.
    """
    if feature_map not in FEATURE_MAPS:
        raise ValueError(f"feature_map: {feature_map!r} is not one of {sorted(FEATURE_MAPS)}")
    phi = FEATURE_MAPS[feature_map]
    return _forward(phi(q), phi(k), v, None, None, scale, initial_state, output_final_state, chunk_size)


def gated_linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, *,
                           scale: float | None = None, initial_state: torch.Tensor | None = None,
                           output_final_state: bool = False, chunk_size: int = 64,
                           validate: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Decayed linear attention ``S_t = exp(g_t) ⊙ S_{t-1} + k_t v_tᵀ``, ``o_t = scale · S_tᵀ q_t``.

    g: log decay, [B, H_g, T] (scalar per head: RetNet / Mamba-2 style) or [B, H_g, T, D_k] (per channel:
    GLA / RWKV style), all <= 0. Other shapes as ``linear_attention``. The range of g is checked by the
    kernels as they read it, and a ValueError raised once they are done (a device sync at the end of the
    call; on the CPU path a pass over g first); ``validate=False`` skips that for callers that checked g
    once. Shapes are always checked before any launch.
    Usage: ``o, s = gated_linear_attention(q, k, v, F.logsigmoid(x) / 16, output_final_state=True)``.
    """
    return _forward(q, k, v, g, None, scale, initial_state, output_final_state, chunk_size, validate)


def gated_delta_rule(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor | None,
                     beta: torch.Tensor, *, scale: float | None = None, initial_state: torch.Tensor | None = None,
                     output_final_state: bool = False, chunk_size: int = 64,
                     validate: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Gated delta rule ``S_t = a_t (I - b_t k_t k_tᵀ) S_{t-1} + b_t k_t v_tᵀ``, ``o_t = scale · S_tᵀ q_t``.

    g: log decay of ``a_t`` (None for plain DeltaNet), [B, H_g, T] scalar (Gated DeltaNet) or [B, H_g, T, D_k]
    per channel (KDA: ``a_t`` scales row i of S); beta: [B, H_b, T] in [0, 2]. Keys are used as given
    (L2-normalise them for the usual stable rule). Other shapes as ``linear_attention``; ``validate=False``
    skips the range checks of g and beta (the device sync at the end of the call), as in
    ``gated_linear_attention``.
    Usage: ``o, s = gated_delta_rule(q, F.normalize(k, dim=-1), v, g, beta.sigmoid())``.
    """
    if beta is None:
        raise ValueError("beta: the delta rule needs beta [B, H_b, T]")
    return _forward(q, k, v, g, beta, scale, initial_state, output_final_state, chunk_size, validate)


def recurrent_step(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, state: torch.Tensor,
                   g: torch.Tensor | None = None, beta: torch.Tensor | None = None, *,
                   scale: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One decoding token of any variant above (feature maps are applied by the caller).

    q, k: [B, H_x, D_k]; v: [B, H_x, D_v]; state: [B, H, D_k, D_v]; g: [B, H_g] or [B, H_g, D_k] (log decay);
    beta: [B, H_b] (delta rule when given). Returns (o: [B, H, D_v], new state [B, H, D_k, D_v] float32).
    Usage: ``o, state = recurrent_step(q_t, k_t, v_t, state, g_t, beta_t)``.
    """
    _check(q, k, v, g, beta, state, None, step=True)
    scale = q.shape[-1] ** -0.5 if scale is None else float(scale)
    if use_triton(q):
        from longctx.kernels.linear.triton_chunk import step_forward

        c = [None if x is None else x.contiguous() for x in (q, k, v, g, beta)]
        return step_forward(*c, scale, state.float().contiguous())
    from longctx.kernels.linear.reference import recurrent_reference

    def seq(x):
        return None if x is None else x.unsqueeze(2)

    o, s = recurrent_reference(seq(q).float(), seq(k).float(), seq(v).float(),
                               None if g is None else seq(g).float(), None if beta is None else seq(beta).float(),
                               scale, state.float())
    return o[:, :, 0].to(v.dtype), s
