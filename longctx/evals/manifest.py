"""The run manifest: what is needed to reproduce a results folder (command, versions, git hash,
seeds, tokenizer, hardware, start and end)."""
from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("longctx-evals", "torch", "triton", "transformers", "tokenizers", "datasets", "vllm", "lm-eval", "httpx")


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def suite_version() -> str:
    try:
        return metadata.version("longctx-evals")
    except metadata.PackageNotFoundError:
        return "unknown"


def git_hash() -> str | None:
    """The commit of the source tree this suite runs from (None outside a git checkout)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=Path(__file__).parent,
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def packages() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def hardware() -> dict[str, Any]:
    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count()}
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def manifest(command: list[str], **fields: Any) -> dict[str, Any]:
    """A manifest for a run starting now; the caller sets ``ended`` when it finishes."""
    return {"command": " ".join(command), "suite_version": suite_version(), "git_hash": git_hash(),
            "packages": packages(), "hardware": hardware(), "started": now(), "ended": None, **fields}
