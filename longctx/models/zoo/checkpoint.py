"""Zoo checkpoints: a folder holding ``model.safetensors`` (weights) and ``card.json`` (how it
was made). Nothing is unpickled. The card records architecture, config, parameter count, data
recipe and seeds, tokens seen, steps, final loss, wall time, hardware and git hash.

A training run also keeps ``optimizer.safetensors`` + ``trainer.json`` beside them to resume.
``save(..., int8=True)`` stores the weight matrices in 8 bits (``models.zoo.quantize``; the card says
``"weights": "int8-rowwise"``), which is how the shipped checkpoints fit the repository.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from longctx.models.errors import ModelError
from longctx.models.zoo import quantize
from longctx.models.zoo.registry import build
from longctx.models.zoo.trunk import Trunk, ZooConfig

WEIGHTS, CARD = "model.safetensors", "card.json"


def git_hash() -> str | None:
    """HEAD's commit, with ``-dirty`` when tracked files differ from it (a copied working tree whose
    ``.git`` is older than its files reads as dirty, not as the older commit)."""
    here = Path(__file__).parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False, cwd=here)
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--"], capture_output=True, timeout=30, check=False,
                               cwd=here).returncode == 1
    except (OSError, subprocess.SubprocessError):
        return None
    head = out.stdout.strip()
    return (head + "-dirty" if dirty else head) if out.returncode == 0 and head else None


def hardware() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def save(folder: Path, model: Trunk, card: dict[str, Any], int8: bool = False) -> None:
    """Write weights and card atomically (temporary names, then rename); ``int8``: 8-bit matrices."""
    folder.mkdir(parents=True, exist_ok=True)
    if int8:
        tensors = quantize.pack(model.state_dict(), {n for n, _ in model.named_parameters()})
        card = {**card, "weights": "int8-rowwise"}
    else:
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    full = {"architecture": model.cfg.arch, "config": model.cfg.to_dict(), "parameters": model.num_params(), **card}
    _atomic(folder / WEIGHTS, lambda p: save_file(tensors, str(p)))
    _atomic(folder / CARD, lambda p: p.write_text(json.dumps(full, indent=2) + "\n"))


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def config_diff(have: dict[str, Any], want: dict[str, Any]) -> list[str]:
    """``KEY HAVE (registry: WANT)`` for each config key on which a checkpoint's card (``have``) differs from the
    config a run asks for (``want``); empty when they match."""
    return [f"{k} {have.get(k)!r} (registry: {want.get(k)!r})" for k in sorted(set(have) | set(want))
            if have.get(k) != want.get(k)]


def training(card: dict[str, Any]) -> dict[str, Any] | None:
    """What a card's weights were trained on, oldest phase first (its ``init`` chain): each phase's steps, tokens,
    batch, row length, peak rate and PoSE span, and the totals; None for an untrained model."""
    phases, c = [], card
    while isinstance(c, dict) and "steps" in c:
        recipe, data = c.get("recipe") or {}, c.get("data") or {}
        phases.append({"from": c.get("from"), "steps": c["steps"], "tokens_seen": c.get("tokens_seen"),
                       "batch": recipe.get("batch"), "seq_len": data.get("seq_len"), "lr": recipe.get("lr"),
                       "pose_span": recipe.get("pose_span") or 0})
        c = c.get("init")
    if not phases:
        return None
    phases.reverse()
    return {"steps": sum(ph["steps"] for ph in phases),
            "tokens_seen": sum(ph["tokens_seen"] or 0 for ph in phases), "phases": phases}


def read_card(folder: Path) -> dict[str, Any]:
    path = folder / CARD
    if not path.is_file():
        raise ModelError(f"checkpoint card {path} does not exist")
    try:
        card = json.loads(path.read_text())
        ZooConfig(**card["config"])
        int(card["parameters"])
    except (ValueError, KeyError, TypeError) as e:
        raise ModelError(f"checkpoint card {path} is not a valid zoo card ({type(e).__name__}: {e})") from None
    return card


def load(path: str | Path, device: str = "cpu") -> tuple[Trunk, dict[str, Any]]:
    """Load a checkpoint folder (or its ``model.safetensors``); ModelError naming the file if it is
    missing, corrupt, or does not match its card."""
    folder = Path(path)
    folder = folder.parent if folder.name == WEIGHTS else folder
    if not folder.is_dir():
        raise ModelError(f"checkpoint {path} does not exist (expected a folder with {WEIGHTS} and {CARD})")
    card = read_card(folder)
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise ModelError(f"checkpoint weights {weights} do not exist")
    try:
        tensors = quantize.unpack(load_file(str(weights), device=device))
    except (SafetensorError, OSError, KeyError) as e:
        raise ModelError(f"checkpoint weights {weights} are corrupt: {e}") from None
    model = build(ZooConfig(**card["config"]))
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in tensors.items()}
    if expected != found or model.num_params() != card["parameters"]:
        diff = sorted(set(expected.items()) ^ set(found.items()))[:3]
        raise ModelError(f"checkpoint weights {weights} do not match their card {folder / CARD} "
                         f"(architecture {card['architecture']}; first differences: {diff})")
    model.load_state_dict(tensors)
    return model.to(device), card
