"""S4D: a diagonal state-space layer per channel, run as a long convolution, as in "On the Parameterization
and Initialization of Diagonal State Space Models" (Gu et al., 2022).

Each of the ``d_model`` channels holds ``d_state`` complex modes (the conjugate half implied):
``h_t = exp(Δ A) h_{t-1} + B̄ u_t``, ``y_t = 2 Re(C h_t) + D u_t`` with ``A = -exp(log_A_real) + i·A_imag``
(S4D-Lin initialisation: ``-1/2 + iπn``), ``B`` folded into ``C``; then GELU and a position-wise linear
layer to ``2·d_model`` with a GLU, as in S4D's block. Training: the S4D kernel materialised to length T and
an FFT convolution (``kernels.longconv``, PyTorch, autograd). Inference: prefill through
``kernels.longconv.s4d_prefill`` (the long convolution op, Triton direct kernel for short prompts on a GPU)
which also returns the state; decoding applies the diagonal recurrence, O(d_state) per channel per token,
constant in the context length. Inference state: ``[B, d_model, d_state]`` complex.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from longctx.kernels.longconv import long_conv, s4d_kernel, s4d_prefill, s4d_step
from longctx.models.zoo.trunk import ZooConfig


class S4D(nn.Module):
    """``x: [B, T, d_model] -> [B, T, d_model]``."""

    def __init__(self, cfg: ZooConfig, layer: int):
        super().__init__()
        d, n = cfg.d_model, int(cfg.mixer.get("d_state", 32))
        dt_min, dt_max = float(cfg.mixer.get("dt_min", 1e-3)), float(cfg.mixer.get("dt_max", 1e-1))
        g = torch.Generator().manual_seed(1000 + layer)
        self.log_dt = nn.Parameter(torch.rand(d, generator=g) * (math.log(dt_max) - math.log(dt_min))
                                   + math.log(dt_min))
        self.log_A_real = nn.Parameter(torch.full((d, n), math.log(0.5)))
        self.A_imag = nn.Parameter(math.pi * torch.arange(n, dtype=torch.float32).expand(d, n).clone())
        self.C = nn.Parameter(torch.randn(d, n, 2, generator=g) * 0.5 ** 0.5)   # complex, unit variance
        self.D = nn.Parameter(torch.randn(d, generator=g))
        self.out = nn.Linear(d, 2 * d)

    def _params(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        A = torch.complex(-self.log_A_real.exp(), self.A_imag)
        return self.log_dt, A, torch.view_as_complex(self.C)

    def _output(self, y: torch.Tensor) -> torch.Tensor:
        """y: [B, d, T] -> GELU, linear to 2d, GLU -> [B, T, d]."""
        return F.glu(self.out(F.gelu(y.transpose(1, 2))), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        log_dt, A, C = self._params()
        u = x.transpose(1, 2)
        return self._output(long_conv(u, s4d_kernel(log_dt, A, C, u.shape[-1]), self.D, method="fft"))

    def step(self, x: torch.Tensor, state: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        log_dt, A, C = self._params()
        u = x.transpose(1, 2)
        if state is not None and u.shape[-1] == 1:
            y, state = s4d_step(u[:, :, 0], state, log_dt, A, C, self.D)
            return self._output(y[:, :, None]), state
        y, state = s4d_prefill(u, log_dt, A, C, self.D, state)
        return self._output(y), state


def make(cfg: ZooConfig, layer: int) -> S4D:
    return S4D(cfg, layer)
