"""``ZooModel``: a zoo checkpoint behind the ``Model`` protocol (spec ``zoo:ARCH[@CHECKPOINT]``).

``zoo:dense`` loads the shipped checkpoint ``models/checkpoints/dense``; ``zoo:dense@PATH`` a
checkpoint folder of your own. Options: ``device=cpu|cuda`` (default: cuda when present),
``init=random,size=tiny|small`` builds an untrained model (for plumbing tests only).
Prompts use the ``plain`` template of ``models.prompting`` and the byte tokenizer, with BOS first.
"""
from __future__ import annotations

from pathlib import Path

import torch

from longctx.models.base import Completion, Request
from longctx.models.errors import ModelError
from longctx.models.prompting import plain_prompt
from longctx.models.spec import ModelSpec
from longctx.models.zoo import checkpoint, registry
from longctx.models.zoo.generate import greedy
from longctx.models.zoo.trunk import BOS, Trunk

CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"
# every mixer prefills a 1M-token prompt in pieces within 80 GB (dense layers too, in O(T^2) time:
# 7.8 s for dense at 1M on an H100; benchmarks/zoo/prefill_memory_h100.json)
MAX_CONTEXT = 1 << 20


def encode(request: Request) -> list[int]:
    """BOS then the UTF-8 bytes of the plain-template prompt (what training sees too)."""
    return [BOS, *plain_prompt(request).encode("utf-8")]


class ZooModel:
    tokenizer_spec = "byte"
    template = "plain"

    def __init__(self, spec: str, model: Trunk, card: dict):
        self.spec, self.model, self.card = spec, model.eval(), card
        self.training = checkpoint.training(card)   # recorded in the run's manifest and on the board
        self.mqar = card.get("mqar")   # the architecture's MQAR evidence, when the card carries it: also on the board
        self.max_context = MAX_CONTEXT

    @classmethod
    def from_spec(cls, s: ModelSpec) -> ZooModel:
        arch, _, path = s.target.partition("@")
        if arch not in registry.MIXERS:
            raise ModelError(f"unknown zoo architecture {arch!r}; choose one of {', '.join(registry.ARCHS)}")
        device = s.options.get("device", "cuda" if torch.cuda.is_available() else "cpu")
        if s.options.get("init") == "random":
            model = registry.build(registry.config(arch, s.options.get("size", "small"))).to(device)
            return cls(s.raw, model, {"architecture": arch, "untrained": True})
        folder = Path(path) if path else CHECKPOINTS / arch
        if not path and not folder.is_dir():
            raise ModelError(f"no shipped checkpoint for zoo:{arch} at {folder}; train one with "
                             f"`evals train --arch {arch}` and pass zoo:{arch}@FOLDER")
        model, card = checkpoint.load(folder, device)
        if card["architecture"] != arch:
            raise ModelError(f"checkpoint {folder} holds a {card['architecture']!r} model, not {arch!r}")
        return cls(s.raw, model, card)

    def count_prompt_tokens(self, request: Request) -> int:
        return len(encode(request))

    def generate(self, batch: list[Request]) -> list[Completion]:
        out = []
        for r in batch:
            ids = encode(r)
            new = greedy(self.model, ids, r.max_new_tokens)
            text = bytes(i for i in new if i < 256).decode("utf-8", errors="replace")
            out.append(Completion(text, prompt_tokens=len(ids), output_tokens=len(new)))
        return out

    def close(self) -> None:
        self.model = None
