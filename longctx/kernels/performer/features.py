"""FAVOR+ positive orthogonal random features (Choromanski et al., "Rethinking Attention with Performers").

``exp(x·y) = E_w[φ(x) φ(y)]`` for ``w ~ N(0, I_d)`` with the positive feature map
``φ(x) = exp(W x - |x|²/2) / sqrt(m)``, W of m rows. Rows come in blocks of d mutually orthogonal
directions (QR of a Gaussian block) rescaled by chi(d)-distributed norms, so each row is still marginally
N(0, I_d) (unbiased) and the estimator's variance drops. Softmax attention's ``exp(scale · q·k)`` uses
``x = sqrt(scale) q``, ``y = sqrt(scale) k``.

Numerics (the paper's implementation subtracts a max before the exp; here):
  * ``positive_features`` returns ``f = exp(ℓ - a)`` with ``ℓ = W x - |x|²/2`` and ``a = max_j ℓ_j`` per row,
    so every entry is in (0, 1] and the largest is 1. A per-row factor cancels for queries (numerator and
    normaliser alike); for keys it is put back through ``key_weights``;
  * ``key_weights`` keeps a running max ``c_t = max(c_{t-1}, a_t)`` of the key rows: the carried state is
    ``exp(-c_t)`` times the true ``(S_t, z_t)``, rescaled by ``exp(c_{t-1} - c_t) <= 1`` whenever the max
    grows (a scalar log decay for the gated linear-attention kernel) and each key row enters with weight
    ``exp(a_t - c_t) / sqrt(m) <= 1``. Everything stays <= 1, and causal: c_t looks at no later key;
  * ``favor_inputs`` adds ``STABILIZER`` to every query and key feature, as the paper's implementation does
    (its ``numerical_stabilizer``): with far-apart q and k every product ``f_q · f_k`` can underflow to 0 in
    float32, and a query whose keys all do so has a normaliser of exactly 0 (a NaN output or gradient).
    Against features whose largest entry is 1 this moves a weight by about 1e-6 of the largest.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

STABILIZER = 1e-6   # added to every feature: keeps FAVOR+'s normaliser above 0
FeatureMap = Callable[[torch.Tensor, torch.Tensor, float], tuple[torch.Tensor, torch.Tensor]]


def orthogonal_features(m: int, d: int, *, seed: int = 0, device: torch.device | str | None = None,
                        dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Draw W: [m, d], deterministic for a seed (drawn in float64 on the CPU); redraw with another seed.

    Usage: ``W = orthogonal_features(256, 64, seed=layer, device="cuda")``.
    """
    if not isinstance(m, int) or m < 1:
        raise ValueError(f"m: the feature count must be a positive int, got {m!r}")
    if not isinstance(d, int) or d < 1:
        raise ValueError(f"d: the input dim must be a positive int, got {d!r}")
    gen = torch.Generator().manual_seed(seed)
    blocks = []
    for _ in range(-(-m // d)):
        qm, r = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
        blocks.append((qm * torch.sign(torch.diagonal(r))).T)  # sign fix: Haar-distributed rows
    rows = torch.cat(blocks)[:m]
    norms = torch.randn(m, d, generator=gen, dtype=torch.float64).norm(dim=1)  # chi(d), as |N(0, I_d)|
    return (rows * norms[:, None]).to(device=device, dtype=dtype)


def positive_features(x: torch.Tensor, W: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Row-stabilised features. x: [..., d]; W: [m, d] -> (f: [..., m] = exp(ℓ - a), a: [...] = max ℓ).

    ``ℓ = W x' - |x'|²/2`` with ``x' = sqrt(scale) x``, in float32 (float64 for float64 x). ``a`` carries no
    gradient: the attention output does not depend on it.
    """
    acc = torch.promote_types(x.dtype, torch.float32)
    xs = x.to(acc) * math.sqrt(scale)
    logits = xs @ W.to(acc).T - 0.5 * (xs * xs).sum(-1, keepdim=True)
    a = logits.detach().amax(-1)
    return (logits - a[..., None]).exp(), a


def key_weights(a: torch.Tensor, m: int, shift: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Running max of key rows. a: [B, H, T] row maxima; shift: [B, H] carried max (None: fresh start).

    Returns (g: [B, H, T] log decay ``c_{t-1} - c_t <= 0``, w: [B, H, T] row weights ``exp(a_t - c_t) / sqrt(m)``,
    new shift ``c_T``: [B, H]).
    """
    c = torch.cummax(a, dim=-1).values
    if shift is not None:
        c = torch.maximum(c, shift.to(a.dtype)[..., None])
    first = a[..., :1] if shift is None else shift.to(a.dtype)[..., None]
    g = torch.cat([first, c[..., :-1]], dim=-1) - c
    w = (a - c - 0.5 * math.log(m)).exp()
    return g, w, c[..., -1]


def favor_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, W: torch.Tensor, scale: float,
                 shift: torch.Tensor | None, features: FeatureMap = positive_features) -> tuple[torch.Tensor, ...]:
    """What the gated linear-attention recurrence takes to compute FAVOR+ (``[B, H, T, *]`` or one token
    ``[B, H, *]``). Returns (fq: [.., m], fk: [.., m], vw: [.., D_v + 1] = w ⊙ [v, 1], g: [B, H_k(, T)], shift).
    ``features``: ``positive_features`` or a drop-in with its contract (the Triton kernel).

    The recurrence ``S_t = exp(g_t) S_{t-1} + fk_t vw_tᵀ`` then holds ``exp(-c_t) [S_t, z_t]`` and
    ``o_t = (fq_tᵀ S_t)[:D_v] / (fq_tᵀ S_t)[D_v]``.
    """
    step = q.dim() == 3
    fq, _ = features(q, W, scale)
    fk, a = features(k, W, scale)
    fq, fk = fq + STABILIZER, fk + STABILIZER
    g, w, shift = key_weights(a[..., None] if step else a, W.shape[0], shift)
    if step:
        g, w = g[..., 0], w[..., 0]
    vw = torch.cat([v.to(fk.dtype), torch.ones_like(v[..., :1], dtype=fk.dtype)], dim=-1) * w[..., None]
    return fq, fk, vw, g, shift
