"""SSA: content-routed sub-quadratic sparse attention (hierarchical block selection + block-sparse flash).

Layout: q ``[B, H, T, D]``, k/v ``[B, H_kv, T, D]``. Selection is O(n log n) (see ``kernels.ssa.select``).
"""
from longctx.kernels.ssa.select import ssa_attention, ssa_select

__all__ = ["ssa_attention", "ssa_select"]
