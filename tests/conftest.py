"""Shared fixtures: a tiny Llama built locally (with and without a chat template) and a real
OpenAI-compatible server on loopback serving it. Also the one place ``TRITON_INTERPRET`` is set."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

# Triton reads TRITON_INTERPRET when it first compiles a kernel: the kernel tests run compiled on a CUDA
# machine and under Triton's CPU interpreter elsewhere (TRITON_INTERPRET=0 or 1 set by hand wins)
os.environ.setdefault("TRITON_INTERPRET", "0" if torch.cuda.is_available() else "1")

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))

from tiny_llama import build_tiny_llama  # noqa: E402

SERVED_NAME = "tiny-llama"


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    """A tiny Llama (2 layers, hidden 64, ~1200-token BPE vocab) whose tokenizer has a chat template."""
    return build_tiny_llama(tmp_path_factory.mktemp("tiny_llama_chat"), chat=True)


@pytest.fixture(scope="session")
def tiny_llama_base_dir(tmp_path_factory) -> Path:
    """The same tiny Llama with no chat template (a base model: the plain template applies)."""
    return build_tiny_llama(tmp_path_factory.mktemp("tiny_llama_base"), chat=False)


@pytest.fixture(scope="session")
def openai_server(tiny_llama_dir):
    """A real ``models.serve`` server on 127.0.0.1 (free port) serving the tiny chat model as ``tiny-llama``."""
    from longctx.models.load import load_model
    from longctx.models.serve import OpenAIServer

    model = load_model(f"hf:{tiny_llama_dir},device=cpu")
    server = OpenAIServer(model, SERVED_NAME).start()
    yield server
    server.shutdown()
    server.server_close()
    model.close()


@pytest.fixture()
def evals_cli(capsys):
    """Run the `evals` command line in this process: ``evals_cli([...]) -> (exit status, stdout, stderr)``."""
    from longctx.evals.cli import main

    def run(args: list[str]) -> tuple[int, str, str]:
        argv, sys.argv = sys.argv, ["evals", *args]
        try:
            main()
            code = 0
        except SystemExit as e:
            code = e.code or 0
        finally:
            sys.argv = argv
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture
def poison(monkeypatch):
    """Every float buffer made with torch.empty / empty_like starts as NaN, so an unwritten element fails a test."""
    import torch

    real_empty, real_like = torch.empty, torch.empty_like

    def empty(*a, **kw):
        t = real_empty(*a, **kw)
        return t.fill_(float("nan")) if t.is_floating_point() else t

    def empty_like(*a, **kw):
        t = real_like(*a, **kw)
        return t.fill_(float("nan")) if t.is_floating_point() else t

    monkeypatch.setattr(torch, "empty", empty)
    monkeypatch.setattr(torch, "empty_like", empty_like)
