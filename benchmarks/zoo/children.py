"""The parent side of the zoo's sweeps (``mqar_sweep``, ``needle_forms``, ``copy_sweep``): each run is a child
process of the same script, called with the parent's options and ``--one RUN``, ``jobs`` at a time."""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def child_flags(args: argparse.Namespace, skip: tuple[str, ...]) -> list[str]:
    """The parent's options as a child's command line, less ``skip`` and options left unset (None, False)."""
    return [f"--{k.replace('_', '-')}" + ("" if v is True else f"={v}") for k, v in vars(args).items()
            if k not in skip and v is not None and v is not False]


def run_children(module: str, flags: list[str], runs: list[tuple], name: Callable[[tuple], str], out: Path,
                 jobs: int) -> tuple[list[int], float]:
    """``python -m module *flags --one a:b:...`` for every run, ``jobs`` at once, each logging to
    ``out/name(run).log``. Returns (exit codes in the order of ``runs``, wall seconds)."""
    def launch(run: tuple) -> int:
        with (out / f"{name(run)}.log").open("w") as log:
            return subprocess.run([sys.executable, "-m", module, *flags, "--one", ":".join(map(str, run))],
                                  stdout=log, stderr=subprocess.STDOUT, check=False).returncode

    start = time.time()
    with ThreadPoolExecutor(jobs) as pool:
        codes = list(pool.map(launch, runs))
    return codes, round(time.time() - start, 1)
