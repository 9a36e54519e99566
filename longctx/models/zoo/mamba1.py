"""Mamba-1: in-projection to ``x`` and the gate ``z`` (``expand · d_model`` channels each), a short causal
depthwise convolution and SiLU on ``x``, then the selective scan per channel,

    h_t = exp(dt_t A) h_{t-1} + dt_t B_t x_t,    y_t = C_t h_t + D x_t,

with ``A [channels, d_state]`` negative (S4D-real init ``-(1..N)``), and ``dt``, ``B``, ``C`` computed from
``x`` (``x_proj`` to a rank-``dt_rank`` step, B and C shared by all channels; ``dt_proj`` back to every
channel, then softplus), gated by ``SiLU(z)``, then the out-projection.

Training uses ``kernels.scan.selective_scan_train`` on CUDA (Triton forward and backward, one custom op that
``torch.compile`` keeps whole) and ``kernels.scan.selective_scan_torch`` on the CPU (a doubling scan with a
custom backward, PyTorch).
Inference: prefill with ``state=None`` or continue from ``{"conv": [B, channels, K-1], "ssm": [B, channels,
N]}`` (constant size per token); on a GPU the scan and the convolution run through the Triton kernels of
``kernels.scan`` and ``kernels.ssd``, on the CPU through the same PyTorch code as training.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from longctx.kernels.scan import selective_scan_torch, selective_scan_train
from longctx.models.zoo.trunk import ZooConfig


class Mamba1(nn.Module):
    def __init__(self, cfg: ZooConfig, layer: int):
        super().__init__()
        d = cfg.d_model
        self.channels = int(cfg.mixer.get("expand", 2)) * d
        self.d_state = int(cfg.mixer.get("d_state", 16))
        self.kernel = int(cfg.mixer.get("conv", 4))
        self.dt_rank = int(cfg.mixer.get("dt_rank", math.ceil(d / 16)))
        self.in_proj = nn.Linear(d, 2 * self.channels, bias=False)
        self.conv = nn.Conv1d(self.channels, self.channels, self.kernel, groups=self.channels, bias=True)
        self.x_proj = nn.Linear(self.channels, self.dt_rank + 2 * self.d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.channels, bias=False)
        dt = torch.exp(torch.linspace(math.log(1e-3), math.log(1e-1), self.channels))
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))   # inverse softplus: dt in [1e-3, 1e-1]
        self.A_log = nn.Parameter(torch.log(torch.arange(1, self.d_state + 1, dtype=torch.float32)).repeat(self.channels, 1))
        self.D = nn.Parameter(torch.ones(self.channels))
        self.out = nn.Linear(self.channels, d, bias=False)

    def _scan_inputs(self, xc: torch.Tensor):
        """xc: [B, channels, T] after conv and SiLU -> dt [B, channels, T], A, B and C [B, 1, N, T]."""
        dt_r, b, c = self.x_proj(xc.transpose(1, 2)).split([self.dt_rank, self.d_state, self.d_state], -1)
        dt = F.softplus(self.dt_proj(dt_r) + self.dt_bias).transpose(1, 2)
        return dt, -self.A_log.exp(), b.transpose(1, 2)[:, None], c.transpose(1, 2)[:, None]

    def _conv(self, xpad: torch.Tensor) -> torch.Tensor:
        """Causal depthwise conv of ``[B, channels, K - 1 + T]`` (history first) -> ``[B, channels, T]``, as K
        shifted products: on the CPU autograd's depthwise ``conv1d`` backward took 4.7 s a call at T = 1024."""
        T, w = xpad.shape[-1] - self.kernel + 1, self.conv.weight[:, 0]
        y = self.conv.bias[:, None] + w[:, :1] * xpad[..., :T]
        for i in range(1, self.kernel):
            y = y + w[:, i:i + 1] * xpad[..., i:i + T]
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs, z = self.in_proj(x).transpose(1, 2).chunk(2, dim=1)          # [B, channels, T] each
        xc = F.silu(self._conv(F.pad(xs, (self.kernel - 1, 0))))
        scan = selective_scan_train if xc.is_cuda else selective_scan_torch
        y, _ = scan(xc, *self._scan_inputs(xc), self.D, z)
        return self.out(y.transpose(1, 2))

    def step(self, x: torch.Tensor, state: dict | None) -> tuple[torch.Tensor, dict]:
        xs, z = self.in_proj(x).transpose(1, 2).chunk(2, dim=1)
        B, _, T = xs.shape
        conv_state = state["conv"] if state else xs.new_zeros(B, self.channels, self.kernel - 1)
        ssm = state["ssm"] if state else None
        kernels = _kernels(x)
        w, bias = self.conv.weight[:, 0], self.conv.bias
        if kernels is None:
            full = torch.cat([conv_state, xs], dim=-1)
            xc = F.silu(self._conv(full))
            conv_state = full[:, :, -(self.kernel - 1):]
            y, ssm = selective_scan_torch(xc, *self._scan_inputs(xc), self.D, z, ssm)
        elif T == 1 and state:
            xc, conv_state = kernels.causal_conv1d_step(xs[..., 0], conv_state, w, bias, activation="silu")
            dt, A, b, c = self._scan_inputs(xc[..., None])
            y, ssm = kernels.selective_step(xc, dt[..., 0], A, b[..., 0], c[..., 0], ssm, self.D, z[..., 0],
                                            validate=False)   # dt = softplus(.) >= 0, A = -exp(.) < 0
            y = y[..., None]
        else:
            xc, conv_state = kernels.causal_conv1d(xs, w, bias, conv_state=conv_state, activation="silu")
            y, ssm = kernels.selective_scan(xc, *self._scan_inputs(xc), self.D, z, initial_state=ssm,
                                            output_final_state=True, validate=False)
        return self.out(y.transpose(1, 2)), {"conv": conv_state, "ssm": ssm}


class _Kernels:
    """The GPU inference ops, imported only when a CUDA tensor asks for them."""

    def __init__(self):
        from longctx.kernels.scan import selective_scan, selective_step
        from longctx.kernels.ssd import causal_conv1d, causal_conv1d_step

        self.selective_scan, self.selective_step = selective_scan, selective_step
        self.causal_conv1d, self.causal_conv1d_step = causal_conv1d, causal_conv1d_step


def _kernels(x: torch.Tensor) -> _Kernels | None:
    """The Triton ops for a CUDA tensor (None on the CPU, or where Triton is missing)."""
    if not x.is_cuda:
        return None
    try:
        return _Kernels()
    except ImportError:
        return None


def make(cfg: ZooConfig, layer: int) -> Mamba1:
    return Mamba1(cfg, layer)
