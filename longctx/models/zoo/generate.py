"""Greedy generation for zoo models: one prefill (in chunks, so a 1M-token prompt fits in memory),
then one cheap step per new token against the key/value cache or carried recurrent state."""
from __future__ import annotations

import torch

from longctx.models.zoo.trunk import EOS, Trunk

# tokens per prefill piece: on a GPU a 128K prompt goes through the attention kernels in one piece;
# on a CPU pieces are small, since attention of a piece against the cache builds a [piece, S] mask
PREFILL_CHUNK = {"cuda": 131072, "cpu": 2048}


@torch.no_grad()
def greedy(model: Trunk, prompt: list[int], max_new_tokens: int, prefill_chunk: int | None = None) -> list[int]:
    """Token ids generated after ``prompt`` (without it), stopping at EOS or ``max_new_tokens``."""
    device = model.embed.weight.device
    prefill_chunk = prefill_chunk or PREFILL_CHUNK.get(device.type, 2048)
    ids = torch.tensor([prompt], device=device)
    states = None
    for a in range(0, ids.shape[1], prefill_chunk):
        logits, states = model.step(ids[:, a:a + prefill_chunk], states)
    out: list[int] = []
    for _ in range(max_new_tokens):
        nxt = int(logits[0, -1].argmax())
        if nxt == EOS:
            break
        out.append(nxt)
        logits, states = model.step(torch.tensor([[nxt]], device=device), states)
    return out
