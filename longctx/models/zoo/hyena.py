"""Hyena operator of order 2 ("Hyena Hierarchy", Poli et al., 2023): gated long convolutions whose filters are
as long as the input and given implicitly by a small MLP over positions.

Projections ``v, x1, x2`` (one linear layer to ``3·d_model``, then a width-3 causal depthwise conv), then

    z = x1 ⊙ (h1 * v + b1 ⊙ v),    y = x2 ⊙ (h2 * z + b2 ⊙ z),    out = W y

with ``*`` the causal long convolution over time. The filters ``h1, h2: [d_model, T]`` are one MLP (sine
activations) over positional features of ``t / filter_scale`` (the position and ``bands`` sin/cos pairs), times
an exponential decay window ``exp(-α_c t / filter_scale)``, ``α_c`` spread over the channels so that the
slowest channel falls to 1e-2 at ``1.5 · filter_scale`` and the fastest at ``0.3 · filter_scale``. The filter
at position t never depends on the sequence length, so prefill, decode and training agree.

Training: FFT convolutions (``kernels.longconv.long_conv(method="fft")``, PyTorch, autograd). Inference:
prefill through ``kernels.longconv.long_conv`` (method by filter length); decoding keeps every past ``v`` and
``z`` (and the filter values computed so far) and computes the new position directly with
``kernels.longconv.long_conv_last``: O(t · d_model) per token and O(t · d_model) state per layer, growing with
the context (there is no finite state for an arbitrary long filter). A continuation of several tokens
recomputes the convolution over the whole history by FFT, O(t log t).
Inference state: ``{"short": [B, 3d, 2], "v": [B, d, t], "z": [B, d, t], "h": [2, d, t]}``.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from longctx.kernels.longconv import long_conv, long_conv_last
from longctx.models.zoo.trunk import ZooConfig, causal_conv

SHORT = 3        # width of the causal depthwise conv on the projections
DECAY_TARGET = 1e-2


class ImplicitFilter(nn.Module):
    """``h(t0, t1) -> [2, d, t1 - t0]``: the two long filters at positions t0 <= t < t1."""

    def __init__(self, d: int, width: int, bands: int, scale: float):
        super().__init__()
        self.d, self.bands, self.scale = d, bands, scale
        self.inp = nn.Linear(1 + 2 * bands, width)
        self.mid = nn.Linear(width, width)
        self.head = nn.Linear(width, 2 * d, bias=False)
        self.freq = nn.Parameter(torch.ones(2, width))                 # learned frequency of each sine
        fast, slow = math.log(DECAY_TARGET) / 0.3, math.log(DECAY_TARGET) / 1.5
        self.register_buffer("alpha", torch.linspace(-slow, -fast, d).repeat(2, 1), persistent=False)

    def forward(self, t0: int, t1: int) -> torch.Tensor:
        w = self.inp.weight
        t = torch.arange(t0, t1, device=w.device, dtype=torch.float64) / self.scale   # float64: exact at 1M
        ang = 2 * math.pi * t[:, None] * torch.arange(1, self.bands + 1, device=w.device, dtype=torch.float64)
        z = torch.cat([t[:, None], ang.sin(), ang.cos()], dim=-1).to(w.dtype)
        z = torch.sin(self.freq[0] * self.inp(z))
        z = torch.sin(self.freq[1] * self.mid(z))
        h = self.head(z).T.reshape(2, self.d, -1)
        return h * torch.exp(-self.alpha[..., None] * t.to(w.dtype))


class Hyena(nn.Module):
    """``x: [B, T, d_model] -> [B, T, d_model]``."""

    def __init__(self, cfg: ZooConfig, layer: int):
        super().__init__()
        d = self.d = cfg.d_model
        self.in_proj = nn.Linear(d, 3 * d)
        self.short = nn.Conv1d(3 * d, 3 * d, SHORT, groups=3 * d)
        self.filter = ImplicitFilter(d, int(cfg.mixer.get("filter_width", 64)), int(cfg.mixer.get("bands", 8)),
                                     float(cfg.mixer.get("filter_scale", 1024)))
        self.bias = nn.Parameter(torch.randn(2, d) * 0.02)              # the long convs' skip term
        self.out = nn.Linear(d, d)

    def _project(self, x: torch.Tensor, prev: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        """x: [B, T, d] -> v, x1, x2 each [B, d, T], and the last SHORT - 1 projections for the next call."""
        y, tail = causal_conv(self.short, self.in_proj(x).transpose(1, 2), prev)
        return (*y.split(self.d, dim=1), tail)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v, x1, x2, _ = self._project(x, None)
        h = self.filter(0, x.shape[1])
        z = x1 * long_conv(v, h[0], self.bias[0], method="fft")
        y = x2 * long_conv(z, h[1], self.bias[1], method="fft")
        return self.out(y.transpose(1, 2))

    def step(self, x: torch.Tensor, state: dict | None) -> tuple[torch.Tensor, dict]:
        v, x1, x2, short = self._project(x, state["short"] if state else None)
        m = x.shape[1]
        if state is None:
            h = self.filter(0, m)
        else:
            t = state["v"].shape[-1]
            h = torch.cat([state["h"], self.filter(t, t + m)], dim=-1)
            v = torch.cat([state["v"], v], dim=-1)
        if state is not None and m == 1:
            z_new = x1[:, :, 0] * long_conv_last(v, h[0], self.bias[0])
            z = torch.cat([state["z"], z_new[:, :, None]], dim=-1)
            y = x2 * long_conv_last(z, h[1], self.bias[1])[:, :, None]
        else:
            z_new = x1 * long_conv(v, h[0], self.bias[0])[:, :, -m:]
            z = z_new if state is None else torch.cat([state["z"], z_new], dim=-1)
            y = x2 * long_conv(z, h[1], self.bias[1])[:, :, -m:]
        return self.out(y.transpose(1, 2)), {"short": short, "v": v, "z": z, "h": h}


def make(cfg: ZooConfig, layer: int) -> Hyena:
    return Hyena(cfg, layer)
