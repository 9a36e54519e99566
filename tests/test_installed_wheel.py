"""The project as a user installs it: a wheel, installed (not editable) into a folder of its own, beside Hugging
Face's ``kernels`` (transformers requires it) and OpenAI's ``evals``. Its ``evals`` command runs a task, builds a
leaderboard and draws the plots from ``/`` and from the repository root with the source tree off ``sys.path``,
reading its schema, page, task data and checkpoints from the installed package; both third-party packages keep
their import names."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]

pytestmark = pytest.mark.slow


def run(cmd: list, cwd: Path, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the package (the work tree gets no build folders)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT / "longctx", src / "longctx", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    built = run([*PIP, "wheel", "--no-deps", "--no-build-isolation", "-w", tmp / "dist", src], cwd=tmp)
    if built.returncode:  # no setuptools in this environment: let pip fetch the build backend
        built = run([*PIP, "wheel", "--no-deps", "-w", tmp / "dist", src], cwd=tmp)
    assert built.returncode == 0, built.stderr[-3000:]
    return next((tmp / "dist").glob("longctx_evals-*.whl"))


@pytest.fixture(scope="module")
def site(wheel, tmp_path_factory) -> Path:
    """The wheel installed with ``pip install --no-deps --target``: ``site/longctx`` and ``site/bin/evals``."""
    target = tmp_path_factory.mktemp("site")
    done = run([*PIP, "install", "--no-deps", "--target", target, wheel], cwd=target)
    assert done.returncode == 0, done.stderr[-3000:]
    return target


@pytest.fixture(scope="module")
def openai_evals(tmp_path_factory) -> Path | None:
    """OpenAI's ``evals`` from PyPI (its own dependencies left out: only its import name matters), or None offline."""
    target = tmp_path_factory.mktemp("openai_evals")
    done = run([*PIP, "install", "--no-deps", "--target", target, "evals"], cwd=target)
    return target if done.returncode == 0 and (target / "evals" / "__init__.py").is_file() else None


def environment(site: Path, openai_evals: Path | None, home: Path) -> dict[str, str]:
    path = [str(site)] + ([str(openai_evals)] if openai_evals else [])
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": os.pathsep.join(path), "HOME": str(home),
            "EVALS_CACHE": str(home / "cache"), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def test_the_wheel_carries_every_data_file_of_the_package(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    data = [p.relative_to(ROOT).as_posix() for p in (ROOT / "longctx").rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc")]
    assert {"longctx/evals/board/schema.json", "longctx/tasks/lm_eval/group_longctx_ruler.yaml"} <= set(data) | names
    missing = [d for d in data if d not in names]
    assert not missing, f"not in the wheel: {missing[:10]}"
    assert any(n.startswith("longctx/models/checkpoints/hybrid_ssa/") and n.endswith(".safetensors") for n in names)
    assert any(n.endswith(".dist-info/entry_points.txt") for n in names)


@pytest.mark.parametrize("cwd", [Path("/"), ROOT], ids=["from-root-folder", "from-repo-root"])
def test_the_installed_command_runs_a_task_builds_a_board_and_plots(site, openai_evals, tiny_llama_dir, tmp_path, cwd):
    env = environment(site, openai_evals, tmp_path)
    evals = site / "bin" / "evals"
    results, boards, plots = tmp_path / "results", tmp_path / "boards", tmp_path / "plots"
    for args in (["run", "niah_single_1", "--ctx", "4k", "-n", "2", "--model", f"hf:{tiny_llama_dir},max_context=4096",
                  "--out", results],
                 ["leaderboard", "build", "--results", results, "--out", boards],
                 ["plot", "all", "--results", results, "--out", plots]):
        done = run([evals, *args], cwd=cwd, env=env)
        assert done.returncode == 0, f"evals {args[0]}: {done.stderr[-3000:]}"
    assert list(results.glob("*/niah_single_1/4k/metrics.json")) and (boards / "main.json").is_file()
    assert list(plots.glob("*.png"))


def test_hugging_face_kernels_and_openai_evals_keep_their_names(site, openai_evals, tmp_path):
    if openai_evals is None:
        pytest.skip("OpenAI's evals could not be installed from PyPI here (offline?)")
    check = ("import importlib.util, kernels, longctx, longctx.kernels.flash; "
             "print(longctx.__file__); print(kernels.__file__); print(importlib.util.find_spec('evals').origin)")
    done = run([sys.executable, "-c", check], cwd=tmp_path, env=environment(site, openai_evals, tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    ours, theirs_kernels, theirs_evals = (Path(line) for line in done.stdout.split())
    assert ours.is_relative_to(site)
    assert not theirs_kernels.is_relative_to(site) and not theirs_kernels.is_relative_to(ROOT / "longctx")
    assert "site-packages" in theirs_kernels.parts  # Hugging Face's own install (the venv may sit in the repo)
    assert theirs_evals == openai_evals / "evals" / "__init__.py"
