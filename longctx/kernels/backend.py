"""Which path an op takes, and Triton imported only when that path is Triton.

``use_triton(t)`` is the one rule every kernel family dispatches on: the Triton kernel for CUDA tensors, and
for CPU tensors under Triton's interpreter (``TRITON_INTERPRET=1``, read at each call); otherwise the
family's PyTorch path. Triton is optional (``pip install 'longctx-evals[triton]'`` adds it): without it
every op takes the PyTorch path. The ops modules import Triton and their kernels on first use:

    triton = lazy_module("triton")                                        # triton.cdiv(...) imports it
    _fwd, _decode = lazy_names("longctx.kernels.flash.triton_attn", "_fwd", "_decode")   # _fwd[grid](...)
"""
from __future__ import annotations

import functools
import importlib
import os
from types import ModuleType
from typing import Any

import torch

INSTALL_HINT = "Triton is not installed: pip install 'longctx-evals[triton]'"


@functools.cache
def available() -> bool:
    """True when ``import triton`` works (read once per process)."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def interpreting() -> bool:
    """True under Triton's CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def use_triton(t: torch.Tensor) -> bool:
    """The Triton kernel for CUDA tensors, or for any under the interpreter, when Triton is installed."""
    return (t.is_cuda or interpreting()) and available()


def load(module: str) -> ModuleType:
    """``importlib.import_module(module)``; a missing Triton is an ImportError that says what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        if e.name == "triton" or (e.name or "").startswith("triton."):
            raise ModuleNotFoundError(INSTALL_HINT, name=e.name) from e
        raise


class lazy_module:
    """A module imported at its first attribute access."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(load(self._name), attr)


class _LazyName:
    """One name of a module imported at first use: ``kernel[grid](...)``, ``fn(...)`` or an attribute."""

    def __init__(self, module: str, name: str):
        self._module, self._name = module, name

    def resolve(self) -> Any:
        return getattr(load(self._module), self._name)

    def __getitem__(self, key: Any) -> Any:
        return self.resolve()[key]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.resolve(), attr)


def lazy_names(module: str, *names: str) -> tuple[_LazyName, ...]:
    """Stand-ins for ``from module import names`` that import ``module`` when one is first used."""
    return tuple(_LazyName(module, n) for n in names)
