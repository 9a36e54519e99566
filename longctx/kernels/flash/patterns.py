"""Fixed block-sparse patterns for ``block_sparse_attention``: sink blocks, a local band, strided blocks."""
from __future__ import annotations

import torch


def fixed_pattern(B: int, H: int, T: int, block_size: int = 64, local: int = 2, stride: int | None = None,
                  sinks: int = 1, device: torch.device | str = "cpu") -> torch.Tensor:
    """Key blocks per query block i: the first ``sinks`` blocks, the ``local`` blocks ending at i, and
    (if ``stride``) every block j <= i with (i - j) % stride == 0 (dilated attention).

    -> int32 [B, H, ceil(T / block_size), K], ascending, -1 padded; the same pattern for every (b, h).
    ``idx = fixed_pattern(1, 8, 65536, 64, local=4, stride=16, sinks=1)``
    """
    for name, val in (("B", B), ("H", H), ("T", T), ("block_size", block_size), ("local", local)):
        if not isinstance(val, int) or val <= 0:
            raise ValueError(f"{name} must be a positive int, got {val!r}")
    if not isinstance(sinks, int) or sinks < 0:
        raise ValueError(f"sinks must be an int >= 0, got {sinks!r}")
    if stride is not None and (not isinstance(stride, int) or stride <= 0):
        raise ValueError(f"stride must be a positive int or None, got {stride!r}")
    nqb = -(-T // block_size)
    i = torch.arange(nqb, device=device)[:, None]
    j = torch.arange(nqb, device=device)[None, :]
    keep = (j <= i) & ((j < sinks) | (j > i - local))
    if stride is not None:
        keep |= (j <= i) & ((i - j) % stride == 0)
    width = int(keep.sum(1).max())
    order = torch.where(keep, j, nqb).sort(1).values[:, :width]
    idx = torch.where(order == nqb, -1, order).to(torch.int32)
    return idx.expand(B, H, nqb, width).contiguous()
