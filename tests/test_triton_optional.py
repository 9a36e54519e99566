"""Without Triton (the README's base install) every command but ``bench`` and the kernel ``probe`` works, and
those two exit 2 with one line saying what to install. Each test runs ``evals`` in a fresh interpreter in
which ``import triton`` fails."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HINT = "pip install 'longctx-evals[triton]'"
# a fresh interpreter where `import triton` raises ImportError, running the `evals` command line
NO_TRITON = "import sys; sys.modules['triton'] = None; from longctx.evals.cli import main; sys.argv[0] = 'evals'; main()"


def evals_without_triton(*args: str, home: Path) -> subprocess.CompletedProcess:
    """``evals ARGS`` run in ``home`` (also its HOME: caches land there) by an interpreter without Triton."""
    return subprocess.run([sys.executable, "-c", NO_TRITON, *args], cwd=home, capture_output=True, text=True,
                          timeout=600, check=False, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                                                         "OMP_NUM_THREADS": "1", "HOME": str(home)})


@pytest.mark.slow
@pytest.mark.parametrize("args", [["bench", "--n", "128"], ["probe", "--n", "256", "--kernels", "flash_dense"]],
                         ids=["bench", "probe"])
def test_bench_and_probe_exit_2_saying_what_to_install(args, tmp_path):
    done = evals_without_triton(*args, home=tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and HINT in lines[0], done.stderr


@pytest.mark.slow
def test_tasks_and_a_sparse_attention_swap_run_on_the_float64_references(tiny_llama_dir, tmp_path):
    done = evals_without_triton("tasks", home=tmp_path)
    assert done.returncode == 0 and "niah_single_1\t" in done.stdout, done.stderr[-2000:]
    spec = f"hf:{tiny_llama_dir},attn=dsa:topk=16"
    done = evals_without_triton("run", "niah_single_1", "--ctx", "1k", "-n", "1", "--model", spec,
                                "--out", str(tmp_path / "results"), "--json", home=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert list((tmp_path / "results").glob("*/niah_single_1/1k/metrics.json"))
