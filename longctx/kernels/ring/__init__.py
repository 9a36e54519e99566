"""Ring attention (context parallel): exact causal attention with the sequence split across ranks.

Layout: q ``[B, H, T, D]``, k/v ``[B, H_kv, T, D]`` with ``T = n / world`` tokens per rank in the
zigzag order of ``zigzag_shard`` (rank r holds chunks r and 2*world-1-r of 2*world). Run one process
per device under ``torchrun``; a CPU process group (gloo) works too.
"""
from longctx.kernels.ring.ring import ring_attention, zigzag_shard, zigzag_unshard

__all__ = ["ring_attention", "zigzag_shard", "zigzag_unshard"]
