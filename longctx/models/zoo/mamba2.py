"""Mamba-2: a short causal depthwise convolution, then the SSD recurrence per head,

    h_t = exp(dt_t A) h_{t-1} + dt_t B_t x_t^T,    y_t = h_t^T C_t + D x_t,

with input-dependent step ``dt_t``, scalar decay ``A < 0`` per head, and B, C shared by all heads
(one group). Training and prefill use the chunked SSD form (quadratic within a chunk, state
carried between chunks); decoding one token applies the recurrence once. Inference state:
``{"conv": [B, C_conv, K-1], "ssm": [B, H, N, P]}``. On a GPU the inference scan runs through
``kernels.linear.gated_linear_attention`` (the Triton chunk kernels that ``kernels.ssd`` uses), and
training through flash-linear-attention's ``chunk_simple_gla`` (forward and backward in Triton)
when it is installed (the ``fla`` extra).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from longctx.models.zoo.fla_ops import fla_op
from longctx.models.zoo.trunk import RMSNorm, ZooConfig, causal_conv


def ssd_chunked(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor,
                state: torch.Tensor | None = None, chunk: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Scalar-decay linear attention ``S_t = exp(g_t) S_{t-1} + k_t v_t^T``, ``o_t = S_t^T q_t``.
    q, k: [B, H, T, N]; v: [B, H, T, P]; g: [B, H, T] (<= 0); state: [B, H, N, P] or None.
    Returns (o [B, H, T, P], final state), computed in float32 (float64 for float64 inputs)."""
    B, H, T, N = q.shape
    P, dtype = v.shape[-1], v.dtype
    acc = torch.promote_types(v.dtype, torch.float32)  # float32, or float64 in the tests
    c = min(chunk, T)
    pad = (-T) % c
    q, k, v = (F.pad(t.to(acc), (0, 0, 0, pad)) for t in (q, k, v))
    g = F.pad(g.to(acc), (0, pad))
    n = q.shape[2] // c
    q, k, v = (t.reshape(B, H, n, c, -1) for t in (q, k, v))
    gc = g.reshape(B, H, n, c).cumsum(-1)
    lower = torch.ones(c, c, dtype=torch.bool, device=q.device).tril()
    decay = (gc[..., :, None] - gc[..., None, :]).masked_fill(~lower, float("-inf")).exp()
    intra = ((q @ k.transpose(-1, -2)) * decay) @ v                 # [B, H, n, c, P]
    S = q.new_zeros(B, H, N, P) if state is None else state.to(acc)
    outs = []
    for i in range(n):
        outs.append(intra[:, :, i] + (q[:, :, i] * gc[:, :, i, :, None].exp()) @ S)
        last = gc[:, :, i, -1]
        S = S * last[..., None, None].exp() + (k[:, :, i] * (last[..., None] - gc[:, :, i]).exp()[..., None]).transpose(-1, -2) @ v[:, :, i]
    o = torch.stack(outs, dim=2).reshape(B, H, n * c, P)[:, :, :T]
    return o.to(dtype), S


class Mamba2(nn.Module):
    def __init__(self, cfg: ZooConfig, layer: int):
        super().__init__()
        d = cfg.d_model
        self.expand_dim = int(cfg.mixer.get("expand", 2)) * d
        self.head_p = int(cfg.mixer.get("head_dim", 32))
        if self.expand_dim % self.head_p:
            raise ValueError(f"mamba2: expand * d_model = {self.expand_dim} is not a multiple of head_dim = {self.head_p}")
        self.n_heads = self.expand_dim // self.head_p
        self.d_state = int(cfg.mixer.get("d_state", 64))
        kernel = int(cfg.mixer.get("conv", 4))
        self.chunk = int(cfg.mixer.get("chunk", 64))
        conv_dim = self.expand_dim + 2 * self.d_state
        self.in_proj = nn.Linear(d, self.expand_dim + conv_dim + self.n_heads, bias=False)
        self.conv = nn.Conv1d(conv_dim, conv_dim, kernel, groups=conv_dim, bias=True)
        dt = torch.exp(torch.linspace(math.log(1e-3), math.log(1e-1), self.n_heads))
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))   # inverse softplus
        self.A_log = nn.Parameter(torch.log(torch.linspace(1.0, 16.0, self.n_heads)))
        self.D = nn.Parameter(torch.ones(self.n_heads))
        self.norm = RMSNorm(self.expand_dim)
        self.out = nn.Linear(self.expand_dim, d, bias=False)

    def _split(self, x: torch.Tensor):
        z, xbc, dt = self.in_proj(x).split([self.expand_dim, self.expand_dim + 2 * self.d_state, self.n_heads], -1)
        return z, xbc, dt

    def _ssm(self, xbc: torch.Tensor, z: torch.Tensor, dt: torch.Tensor, state: torch.Tensor | None,
             infer: bool = False):
        B, T, _ = xbc.shape
        xs, b, c = xbc.split([self.expand_dim, self.d_state, self.d_state], -1)
        xs = xs.view(B, T, self.n_heads, self.head_p).transpose(1, 2)       # [B, H, T, P]
        dt = F.softplus(dt + self.dt_bias).transpose(1, 2)                   # [B, H, T]
        g = dt * -self.A_log.exp()[:, None]
        kernel = _kernel() if infer and xs.is_cuda else None
        fla = _fla_chunk() if not infer and xs.is_cuda else None
        if kernel is not None:   # one group: B and C broadcast over the heads inside the kernel
            y, state = kernel(c[:, None], b[:, None], xs * dt[..., None].to(xs.dtype), g, scale=1.0,
                              initial_state=state, output_final_state=True)
        elif fla is not None:    # fla takes [B, T, H, *], B and C repeated per head
            v = (xs * dt[..., None].to(xs.dtype)).transpose(1, 2)
            qk = [t[:, :, None].expand(B, T, self.n_heads, self.d_state).to(v.dtype).contiguous() for t in (c, b)]
            y, state = fla(*qk, v.contiguous(), g.transpose(1, 2).float().contiguous(), scale=1.0)
            y = y.transpose(1, 2)
        else:
            q = c[:, None].expand(B, self.n_heads, T, self.d_state)
            k = b[:, None].expand(B, self.n_heads, T, self.d_state)
            y, state = ssd_chunked(q, k, xs * dt[..., None].to(xs.dtype), g, state, self.chunk)
        y = y + self.D[:, None, None] * xs
        y = y.transpose(1, 2).reshape(B, T, self.expand_dim)
        return self.out(self.norm(y * F.silu(z))), state

    def _conv(self, xbc: torch.Tensor, prev: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """xbc [B, T, C_conv] -> SiLU of the causal conv, and the conv state for the next call."""
        y, tail = causal_conv(self.conv, xbc.transpose(1, 2), prev)
        return F.silu(y.transpose(1, 2)), tail

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z, xbc, dt = self._split(x)
        return self._ssm(self._conv(xbc, None)[0], z, dt, None)[0]

    def step(self, x: torch.Tensor, state: dict | None) -> tuple[torch.Tensor, dict]:
        z, xbc, dt = self._split(x)
        conv, tail = self._conv(xbc, state["conv"] if state else None)
        y, ssm = self._ssm(conv, z, dt, state["ssm"] if state else None, infer=True)
        return y, {"conv": tail, "ssm": ssm}


def _kernel():
    try:
        from longctx.kernels.linear import gated_linear_attention
    except ImportError:
        return None
    return gated_linear_attention


def _fla_chunk():
    return fla_op("simple_gla", "chunk_simple_gla")


def make(cfg: ZooConfig, layer: int) -> Mamba2:
    return Mamba2(cfg, layer)
