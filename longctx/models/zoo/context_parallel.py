"""Context parallel for the zoo's dense model: the sequence split across processes, attention through the ring.

Each of ``world`` ranks holds ``n / world`` tokens in the zigzag layout of ``kernels.ring`` (chunks r and
2*world-1-r of 2*world), with their own global positions for RoPE; every attention layer runs
``kernels.ring.ring_attention`` over the process group (NCCL on GPUs, gloo on the CPU) and everything
else (embedding, MLP, norms, head) is per token. The logits are gathered back into sequence order on
every rank, equal to the single-process forward. A prompt whose length is not a multiple of 2*world is
padded after its end with PAD tokens, which no earlier position sees under the causal mask, and their
logits are dropped.

Launch one process per device with torchrun; ``--context-parallel`` must equal the number of processes:

    torchrun --standalone --nproc-per-node 2 -m longctx.models.zoo.context_parallel \\
        --model zoo:dense@CKPT --context-parallel 2 --text prompt.txt --out logits.pt

Rank 0 prints one JSON line (tokens, world, seconds, the greedy next byte) and, with ``--out``, saves
``{"ids": [1, n], "logits": [1, n, V]}``. ``--tokens N`` scores BOS and N - 1 seeded random bytes instead of a text file.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

from longctx.kernels.ring import ring_attention, zigzag_shard, zigzag_unshard
from longctx.models.errors import ModelError
from longctx.models.zoo.dense import Attention
from longctx.models.zoo.trunk import BOS, PAD, Trunk


@dataclass(frozen=True)
class ContextShard:
    """Rank ``rank`` of ``world`` holding its zigzag share of an ``n``-token sequence."""

    rank: int
    world: int
    n: int
    group: dist.ProcessGroup | None = None

    def positions(self, device: torch.device) -> torch.Tensor:
        """The global positions of this rank's ``n / world`` tokens, in its local order."""
        return zigzag_shard(torch.arange(self.n, device=device), self.rank, self.world, dim=0)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Causal attention over the whole sequence for the local q ``[B, H, n / world, D]``."""
        return ring_attention(q, k, v, self.group)


def check_dense(model: Trunk) -> list[Attention]:
    """The model's attention layers; ModelError unless it is the zoo's dense architecture."""
    layers = [block.mixer for block in model.blocks]
    if model.cfg.arch != "dense" or any(type(m) is not Attention for m in layers):
        raise ModelError(f"--context-parallel runs the zoo's dense model only; zoo:{model.cfg.arch} has "
                         "other sequence mixers, whose state does not split across ranks this way")
    return layers


@contextmanager
def sharded(model: Trunk, shard: ContextShard) -> Iterator[None]:
    """Run every attention layer of a dense zoo model as ``shard`` of the sequence, for the ``with`` body."""
    layers = check_dense(model)
    for m in layers:
        m.context_parallel = shard
    try:
        yield
    finally:
        for m in layers:
            del m.context_parallel  # back to the class default, None


@torch.no_grad()
def parallel_logits(model: Trunk, ids: torch.Tensor, group: dist.ProcessGroup | None = None) -> torch.Tensor:
    """ids ``[B, n]`` (the same on every rank) -> logits ``[B, n, V]`` on every rank, each rank computing
    ``ceil(n / (2 * world)) * 2`` tokens of it."""
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    n = ids.shape[1]
    padded = F.pad(ids, (0, -n % (2 * world)), value=PAD)
    shard = ContextShard(rank, world, padded.shape[1], group)
    with sharded(model, shard):
        local = model(zigzag_shard(padded, rank, world, dim=1)).contiguous()
    parts = [torch.empty_like(local) for _ in range(world)]
    dist.all_gather(parts, local, group)
    return zigzag_unshard(parts, dim=1)[:, :n]


def _prompt(args: argparse.Namespace) -> list[int]:
    if args.text is not None:
        return [BOS, *Path(args.text).read_bytes()]
    gen = torch.Generator().manual_seed(args.seed)
    return [BOS, *torch.randint(0, 256, (args.tokens - 1,), generator=gen).tolist()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="zoo:dense", help="a dense zoo spec, e.g. zoo:dense@CKPT,device=cpu")
    ap.add_argument("--context-parallel", type=int, required=True, help="processes the sequence is split across")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", type=Path, help="a UTF-8 file: the prompt (BOS first)")
    src.add_argument("--tokens", type=int, help="score N tokens: BOS and N - 1 seeded random bytes")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="rank 0 saves {'ids', 'logits'} here (torch.save)")
    args = ap.parse_args()
    try:
        run(args)
    except ModelError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def run(args: argparse.Namespace) -> None:
    from longctx.models.load import load_model

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if "WORLD_SIZE" not in os.environ or world != args.context_parallel:
        raise ModelError(f"--context-parallel {args.context_parallel} needs as many processes: launch with "
                         f"torchrun --standalone --nproc-per-node {args.context_parallel} -m longctx.models.zoo.context_parallel ..."
                         + (f" (this is {world} process(es))" if "WORLD_SIZE" in os.environ else ""))
    if args.tokens is not None and args.tokens < 2:
        raise ModelError(f"--tokens {args.tokens}: score at least 2 tokens")
    if args.text is not None and not args.text.is_file():
        raise ModelError(f"--text {args.text}: no such file")
    cuda = torch.cuda.is_available() and "device=cpu" not in args.model
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    torch.manual_seed(args.seed)  # the same weights on every rank for init=random specs
    m = load_model(args.model)
    if not hasattr(m, "model") or not isinstance(m.model, Trunk):
        raise ModelError(f"--context-parallel runs zoo models (zoo:dense...), not {args.model}")
    model = m.model
    check_dense(model)
    dist.init_process_group("nccl" if cuda else "gloo")
    try:
        ids = torch.tensor([_prompt(args)], device=model.embed.weight.device)
        t0 = time.perf_counter()
        logits = parallel_logits(model, ids)
        seconds = time.perf_counter() - t0
        if dist.get_rank() == 0:
            print(json.dumps({"tokens": ids.shape[1], "world": world, "seconds": round(seconds, 3),
                              "next_byte": int(logits[0, -1].argmax())}), flush=True)
            if args.out:
                torch.save({"ids": ids.cpu(), "logits": logits.cpu()}, args.out)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
