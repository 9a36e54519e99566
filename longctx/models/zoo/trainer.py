"""The one training recipe for every zoo architecture: AdamW, linear warm-up then cosine decay,
the same tokens, batch and sequence length for all, loss weighted up on answer tokens.

Resumable: every ``save_every`` steps (and at the end) the run folder gets the checkpoint
(``model.safetensors`` + ``card.json``), ``optimizer.safetensors`` and ``trainer.json``; running
again with the same folder continues from there. The loss goes to ``loss.jsonl``, one line a log step.

Data is a ``TrainData`` of pre-tokenized rows (``evals train`` builds it from ``tasks/``). This
module needs torch, safetensors and rich only, so it runs on a bare GPU machine:
``python -m longctx.models.zoo.trainer --arch dense --data data.safetensors --out runs/dense``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from longctx.models.errors import ModelError
from longctx.models.zoo import checkpoint, registry
from longctx.models.zoo.trunk import Trunk, ZooConfig


@dataclass(frozen=True)
class Recipe:
    steps: int = 3000
    batch: int = 16
    lr: float = 2e-3
    warmup: int = 100
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    aux_weight: float = 1.0     # weight of mixer auxiliary losses (DSA's indexer distillation)
    seed: int = 0
    log_every: int = 10
    save_every: int = 500
    pose_span: int = 0          # > 0: RoPE positions of each step spread over [0, pose_span) (see pose_positions)


@dataclass
class TrainData:
    """``tokens: [N, L + 1]`` integer ids; ``weights: [N, L + 1]`` loss weight of each token as a
    target (0 = not trained on, 1 = text, more = answer tokens). ``recipe`` says how it was made."""

    tokens: torch.Tensor
    weights: torch.Tensor
    recipe: dict[str, Any]

    def save(self, path: Path) -> None:
        """Written beside ``path`` and renamed into place, so runs sharing a folder never read half a file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        save_file({"tokens": self.tokens.to(torch.int16), "weights": self.weights.to(torch.float16)}, str(tmp),
                  metadata={"recipe": json.dumps(self.recipe)})
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> TrainData:
        if not path.is_file():
            raise ModelError(f"training data {path} does not exist")
        try:
            with safe_open(str(path), "pt") as f:
                recipe = json.loads(f.metadata()["recipe"])
            t = load_file(str(path))
        except (SafetensorError, OSError, KeyError, TypeError, ValueError) as e:
            raise ModelError(f"training data {path} is corrupt: {e}") from None
        return cls(t["tokens"], t["weights"], recipe)


def lr_at(step: int, r: Recipe) -> float:
    if step < r.warmup:
        return r.lr * (step + 1) / r.warmup
    frac = (step - r.warmup) / max(1, r.steps - r.warmup)
    return r.lr * (r.min_lr_ratio + (1 - r.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


def batch_rows(step: int, r: Recipe, n_rows: int, device: str = "cpu") -> torch.Tensor:
    """Row indices of ``step``'s batch, on ``device``: a seeded permutation per epoch, so a resumed run
    sees the same data (and the same on every device)."""
    first, last = step * r.batch, (step + 1) * r.batch
    parts = []
    for epoch in range(first // n_rows, (last - 1) // n_rows + 1):
        a, b = max(first, epoch * n_rows) - epoch * n_rows, min(last, (epoch + 1) * n_rows) - epoch * n_rows
        parts.append(_epoch_order(r.seed, epoch, n_rows, device)[a:b])
    return torch.cat(parts)


@lru_cache(maxsize=2)
def _epoch_order(seed: int, epoch: int, n_rows: int, device: str) -> torch.Tensor:
    return torch.randperm(n_rows, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch)).to(device)


def pose_positions(step: int, length: int, span: int, seed: int, device: str = "cpu") -> torch.Tensor:
    """PoSE position skips (Zhu et al., 2023): step ``step``'s RoPE positions ``[length]``, i.e.
    ``0..length-1`` with one skip of ``u`` in [0, span - length] added after a cut at a token in
    [1, length - 1], both drawn from (seed, step). Text on either side of the cut keeps its own
    distances; pairs across it sit up to ``span`` apart, so a model trained at ``length`` has seen
    every relative distance up to ``span``. ``span <= length`` gives plain positions. Built on ``device``
    (only the two draws happen on the host), so a training step copies nothing to the GPU."""
    pos = torch.arange(length, device=device)
    if span <= length:
        return pos
    g = torch.Generator().manual_seed(seed * 1_000_003 + step + 7919)
    cut = int(torch.randint(1, length, (), generator=g))
    skip = int(torch.randint(0, span - length + 1, (), generator=g))
    return pos + skip * (pos >= cut)


def loss_fn(model: Callable[..., torch.Tensor], tokens: torch.Tensor, weights: torch.Tensor,
            pos: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted next-token cross-entropy over ``tokens [B, L + 1]`` with ``weights [B, L + 1]``, and
    the plain mean cross-entropy of the answer tokens (weight above 1; NaN if none; no gradient).
    ``pos: [L]`` RoPE positions passed to the model (None: its default)."""
    logits = model(tokens[:, :-1]) if pos is None else model(tokens[:, :-1], pos)
    ce = F.cross_entropy(logits.float().flatten(0, 1), tokens[:, 1:].flatten(), reduction="none").view_as(tokens[:, 1:])
    w = weights[:, 1:]
    loss = (ce * w).sum() / w.sum().clamp_min(1e-6)
    m = (w > 1).float()
    return loss, (ce.detach() * m).sum() / m.sum()


def train_step(model: Trunk, forward: Callable[..., torch.Tensor], opt: torch.optim.Optimizer, x: torch.Tensor,
               w: torch.Tensor, pos: torch.Tensor | None, lr: float,
               r: Recipe) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """One optimizer step on the batch ``x, w: [B, L + 1]`` (bf16 autocast on a GPU); returns the
    weighted loss, the answer tokens' loss and the mixers' auxiliary loss (or None), not synced."""
    for group in opt.param_groups:
        group["lr"] = lr
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=x.is_cuda):
        loss, answer_loss = loss_fn(forward, x, w, pos)
        aux = model.aux_loss()
        total = loss + r.aux_weight * aux if aux is not None else loss
    opt.zero_grad(set_to_none=True)
    total.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), r.grad_clip)
    opt.step()
    return loss, answer_loss, aux


def forward_of(model: Trunk, compiled: bool, example: torch.Tensor, graphs: bool = True) -> Callable[..., torch.Tensor]:
    """What a training step calls: the model, or ``torch.compile`` of it with static shapes (each phase
    has one batch shape; automatic dynamic shapes after the first gave performer 89.5 ms a step, 26.8 planned),
    replayed as CUDA graphs on a GPU: these small models are launch-bound (H100, batch 16 x 1024, ms a step,
    eager / compiled / compiled with CUDA graphs: dense 24.9 / 9.8 / 4.9, mamba2 71.9 / 39.1 / 19.8;
    ``benchmarks/zoo/step_modes.py``).
    Before compiling, one eager forward of ``example: [B, L]`` ids runs the imports a mixer makes on its
    first call (fla's), whose import-time version checks dynamo cannot trace (InternalTorchDynamoError).
    ``graphs=False`` compiles without CUDA graphs (``step_modes.py`` times the difference)."""
    if not compiled:
        return model
    on_gpu = next(model.parameters()).is_cuda
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=on_gpu):
        model(example[:1])
    return torch.compile(model, dynamic=False, mode="reduce-overhead" if graphs and on_gpu else None)


def optimizer(model: Trunk, r: Recipe) -> torch.optim.AdamW:
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    rest = [p for n, p in model.named_parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": r.weight_decay}, {"params": rest, "weight_decay": 0.0}],
                             lr=r.lr, betas=(0.9, 0.95), fused=torch.cuda.is_available())


def _save_optimizer(opt: torch.optim.AdamW, model: Trunk, path: Path) -> None:
    names = {id(p): n for n, p in model.named_parameters()}
    flat = {}
    for group in opt.param_groups:
        for p in group["params"]:
            for key, value in opt.state.get(p, {}).items():
                flat[f"{names[id(p)]}::{key}"] = value.detach().to("cpu").reshape(value.shape).contiguous()
    save_file(flat, str(path))


def _load_optimizer(opt: torch.optim.AdamW, model: Trunk, path: Path) -> None:
    flat = load_file(str(path))
    params = dict(model.named_parameters())
    for key, value in flat.items():
        name, _, field = key.partition("::")
        p = params[name]
        on_device = field != "step" or opt.defaults.get("fused")   # fused AdamW keeps its step on the GPU
        opt.state[p][field] = value.to(p.device) if on_device else value

def train(cfg: ZooConfig, recipe: Recipe, data: TrainData, out: Path, device: str = "cpu",
          progress: bool = True, init: Path | None = None, stop_at: float | None = None,
          compiled: bool = False) -> dict[str, Any]:
    """Train (or resume) a model of ``cfg`` into ``out``; returns the last card. ``init``: a checkpoint
    folder of an earlier phase (same config) whose weights a fresh run starts from. ``stop_at``: a
    ``time.time()`` after which the run saves and returns early (the card's ``steps`` then falls short
    of the recipe's); calling again resumes. ``compiled``: run the forward through ``torch.compile``
    (same weights and loss; fewer kernel launches for these small models)."""
    torch.manual_seed(recipe.seed)
    out.mkdir(parents=True, exist_ok=True)
    model = registry.build(cfg).to(device)
    opt = optimizer(model, recipe)
    state = {"step": 0, "tokens_seen": 0, "wall_time_s": 0.0, "loss": None}
    meta = out / "trainer.json"
    earlier = None
    if init is not None:
        init_card = checkpoint.read_card(init)
        if diff := checkpoint.config_diff(init_card["config"], cfg.to_dict()):
            raise ModelError(f"{init} holds a model of another config ({', '.join(diff)}); it cannot start this run")
        if not meta.is_file():   # a resumed run has its own weights
            model.load_state_dict(checkpoint.load(init, device)[0].state_dict())
        earlier = {"from": init.name, **{k: init_card[k] for k in ("data", "steps", "tokens_seen", "final_loss", "wall_time_s")},
                   **{k: init_card[k] for k in ("recipe", "hardware", "git_hash", "weights", "training_note", "git_hash_note", "init") if k in init_card}}
    if meta.is_file():
        saved = json.loads(meta.read_text())
        if saved["config"] != cfg.to_dict() or saved["recipe"] != asdict(recipe):
            raise ModelError(f"{out} holds a run of another config or recipe; use a new --out folder")
        loaded, _ = checkpoint.load(out, device)
        model.load_state_dict(loaded.state_dict())
        _load_optimizer(opt, model, out / "optimizer.safetensors")
        state = saved["state"]
    # the rows live on the training device: a copy from host memory each step would wait for the GPU to
    # finish the step before, so the next step's launches could not overlap it (small models are launch-bound)
    tokens, weights = data.tokens.to(device), data.weights.to(device)
    forward = forward_of(model, compiled, tokens[:1, :-1].long())
    torch.backends.cuda.matmul.allow_tf32 = True   # the float32 chunked scans' matmuls
    start, step = time.time() - state["wall_time_s"], state["step"]
    log = (out / "loss.jsonl").open("a")

    def snapshot() -> dict[str, Any]:
        state.update(step=step, wall_time_s=round(time.time() - start, 1))
        card = {"data": data.recipe, "recipe": asdict(recipe), **({"init": earlier} if earlier else {}),
                "tokens_seen": state["tokens_seen"], "steps": step,
                "final_loss": state["loss"], "wall_time_s": state["wall_time_s"],
                "hardware": checkpoint.hardware(), "git_hash": checkpoint.git_hash()}
        checkpoint.save(out, model, card)
        _save_optimizer(opt, model, out / "optimizer.safetensors")
        meta.write_text(json.dumps({"config": cfg.to_dict(), "recipe": asdict(recipe), "state": state}, indent=2))
        return {"architecture": cfg.arch, "config": cfg.to_dict(), "parameters": model.num_params(), **card}

    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn(f"train {cfg.arch}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TextColumn("loss {task.fields[loss]}"), TimeRemainingColumn(), disable=not progress)
    with bar:
        task = bar.add_task("train", total=recipe.steps, completed=step, loss="-")
        model.train()
        while step < recipe.steps and (stop_at is None or time.time() < stop_at):
            rows = batch_rows(step, recipe, tokens.shape[0], device)
            x, w = tokens[rows].long(), weights[rows].float()
            pos = pose_positions(step, x.shape[1] - 1, recipe.pose_span, recipe.seed, device) if recipe.pose_span else None
            try:
                loss, answer_loss, aux = train_step(model, forward, opt, x, w, pos, lr_at(step, recipe), recipe)
            except torch._dynamo.exc.TorchDynamoException as err:   # inductor's Triton for mamba1 at 32 x 257 (Triton 3.6)
                if forward is model:
                    raise
                warnings.warn(f"{cfg.arch}: torch.compile failed at {tuple(x.shape)} ({type(err).__name__}); "
                              "this phase trains eagerly", stacklevel=1)
                forward = model   # the failed step changed no weights: compilation happens before the update
                loss, answer_loss, aux = train_step(model, forward, opt, x, w, pos, lr_at(step, recipe), recipe)
            step += 1
            state["tokens_seen"] += x.shape[0] * (x.shape[1] - 1)
            if step % recipe.log_every == 0 or step == recipe.steps:
                state["loss"] = round(float(loss.detach()), 5)
                rec = {"step": step, "loss": state["loss"], "lr": lr_at(step - 1, recipe),
                       "tokens": state["tokens_seen"], "seconds": round(time.time() - start, 2)}
                if math.isfinite(a := float(answer_loss)):   # not in copy rows, which have no answers
                    rec["answer_loss"] = round(a, 5)
                if aux is not None:
                    rec["aux"] = round(float(aux.detach()), 5)
                log.write(json.dumps(rec) + "\n")
                log.flush()
                bar.update(task, completed=step, loss=f"{state['loss']:.4f}")
            if step % recipe.save_every == 0 and step < recipe.steps:
                snapshot()
    log.close()
    return snapshot()


def main() -> None:
    p = argparse.ArgumentParser(description="Train one zoo architecture on a prepared data file.")
    p.add_argument("--arch", required=True, choices=registry.ARCHS)
    p.add_argument("--size", default="small", choices=list(registry.SIZES))
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    for name, default in asdict(Recipe()).items():
        p.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    a = p.parse_args()
    recipe = Recipe(**{k: getattr(a, k) for k in asdict(Recipe())})
    card = train(registry.config(a.arch, a.size), recipe, TrainData.load(a.data), a.out, a.device)
    print(json.dumps({k: card[k] for k in ("architecture", "parameters", "steps", "tokens_seen", "final_loss", "wall_time_s")}))


if __name__ == "__main__":
    main()
