"""Linear attention with the gated delta rule (Gated DeltaNet): a recurrent state per head,

    S_t = exp(g_t) (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T,    o_t = S_t^T q_t,

with L2-normalised q and k, a learned decay ``g_t <= 0`` and write strength ``beta_t`` in (0, 1).
Knob ``conv`` (the registry sets 4; 0, the mixer's own default, for checkpoints made before it): a short
causal depthwise convolution of that width over q, k and v before the SiLU, as in the published Gated DeltaNet; it puts the previous tokens into each key, so
that a value can be written under the key before it.
Training and prefill use the chunked form (within a chunk the delta rule's coupling is a unit
lower-triangular solve, between chunks the state is carried); decoding one token applies the
recurrence once. Cost is O(T) in time and O(1) in memory per layer at inference. On a GPU the
prefill runs through ``kernels.linear.gated_delta_rule`` (Triton chunk kernels, forward only), and
training runs through flash-linear-attention's ``chunk_gated_delta_rule`` (Triton forward and
backward) when it is installed (the ``fla`` extra); else through the chunked form above.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from longctx.models.zoo.fla_ops import fla_op
from longctx.models.zoo.trunk import RMSNorm, ZooConfig, causal_conv


def _chunks(x: torch.Tensor, c: int) -> torch.Tensor:
    """``[B, H, T, *]`` (T a multiple of c) -> ``[B, H, T // c, c, *]``."""
    return x.reshape(*x.shape[:2], x.shape[2] // c, c, *x.shape[3:])


def gated_delta_chunked(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, beta: torch.Tensor, g: torch.Tensor,
                        state: torch.Tensor | None = None, chunk: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """q, k: [B, H, T, Dk]; v: [B, H, T, Dv]; beta, g: [B, H, T]; state: [B, H, Dk, Dv] or None.
    Returns (o [B, H, T, Dv], final state). Computed in float32 (float64 for float64 inputs); differentiable."""
    B, H, T, Dk = q.shape
    Dv, dtype = v.shape[-1], v.dtype
    acc = torch.promote_types(v.dtype, torch.float32)  # float32, or float64 in the tests
    c = min(chunk, T)
    pad = (-T) % c
    # padded steps have k = v = beta = g = 0, so they leave the state untouched
    q, k, v = (F.pad(t.to(acc), (0, 0, 0, pad)) for t in (q, k, v))
    beta, g = (F.pad(t.to(acc), (0, pad)) for t in (beta, g))
    q, k, v, beta, g = (_chunks(t, c) for t in (q, k, v, beta, g))
    gc = g.cumsum(-1)                                              # [B, H, N, c]
    lower = torch.ones(c, c, dtype=torch.bool, device=q.device).tril()
    # decay[i, j] = exp(gc_i - gc_j) for j <= i, 0 above the diagonal (masked before exp)
    decay = (gc[..., :, None] - gc[..., None, :]).masked_fill(~lower, float("-inf")).exp()
    strict = beta[..., :, None] * (k @ k.transpose(-1, -2)) * decay * (~torch.eye(c, dtype=torch.bool, device=q.device))
    eye = torch.eye(c, device=q.device).expand_as(strict)
    rhs = torch.cat([v * beta[..., None], k * (beta * gc.exp())[..., None]], dim=-1)
    solved = torch.linalg.solve_triangular(strict + eye, rhs, upper=False, unitriangular=True)
    u0, w = solved[..., :Dv], solved[..., Dv:]                     # u = u0 - w @ S_prev
    S = q.new_zeros(B, H, Dk, Dv) if state is None else state.to(acc)
    qk = (q @ k.transpose(-1, -2)) * decay
    outs = []
    for n in range(q.shape[2]):
        u = u0[:, :, n] - w[:, :, n] @ S
        outs.append((q[:, :, n] * gc[:, :, n, :, None].exp()) @ S + qk[:, :, n] @ u)
        last = gc[:, :, n, -1]
        S = S * last[..., None, None].exp() + (k[:, :, n] * (last[..., None] - gc[:, :, n]).exp()[..., None]).transpose(-1, -2) @ u
    o = torch.stack(outs, dim=2).reshape(B, H, -1, Dv)[:, :, :T]
    return o.to(dtype), S


def gated_delta_step(q, k, v, beta, g, state):
    """One token of the recurrence: q, k [B, H, Dk]; v [B, H, Dv]; beta, g [B, H]; state [B, H, Dk, Dv]."""
    acc = torch.promote_types(v.dtype, torch.float32)
    S = state.to(acc) * g.to(acc).exp()[..., None, None]
    kf, vf, b = k.to(acc), v.to(acc), beta.to(acc)[..., None]
    S = S + kf[..., :, None] * (b * (vf - (kf[..., :, None] * S).sum(-2)))[..., None, :]
    return (q.to(acc)[..., :, None] * S).sum(-2).to(v.dtype), S


class GatedDeltaNet(nn.Module):
    """Gated-delta-rule mixer; ``x: [B, T, d_model]``. Inference state: ``[B, H, Dk, Dv]`` (float32), with
    ``conv`` also the convolution's last inputs (see ``step``)."""

    def __init__(self, cfg: ZooConfig, layer: int):
        super().__init__()
        self.n_heads, self.head_dim = cfg.n_heads, cfg.head_dim
        self.chunk = int(cfg.mixer.get("chunk", 64))
        d = cfg.d_model
        self.qkvg = nn.Linear(d, 4 * d, bias=False)
        self.kernel = int(cfg.mixer.get("conv", 0))
        if self.kernel:
            self.conv = nn.Conv1d(3 * d, 3 * d, self.kernel, groups=3 * d, bias=False)
        self.ab = nn.Linear(d, 2 * self.n_heads, bias=True)
        self.A_log = nn.Parameter(torch.log(torch.linspace(1.0, 16.0, self.n_heads)))
        self.norm = RMSNorm(self.head_dim)
        self.out = nn.Linear(d, d, bias=False)

    def _inputs(self, x: torch.Tensor, conv_state: torch.Tensor | None = None):
        """x: [B, T, d]; conv_state: the last ``conv - 1`` inputs of q, k, v before ``x`` ([B, 3d, conv - 1]).
        Returns q, k [B, H, T, D], v, gate [B, H, T, D], beta, g [B, H, T], and the next conv state."""
        B, T, d = x.shape
        qkv, gate = self.qkvg(x).split([3 * d, d], dim=-1)
        if self.kernel:
            qkv, conv_state = causal_conv(self.conv, qkv.transpose(1, 2), conv_state)
            qkv = qkv.transpose(1, 2)
        q, k, v = qkv.view(B, T, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        gate = gate.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        q = F.normalize(F.silu(q), dim=-1) / math.sqrt(self.head_dim)
        k = F.normalize(F.silu(k), dim=-1)
        v = F.silu(v) if self.kernel else v
        a, b = self.ab(x).transpose(1, 2).chunk(2, dim=1)          # [B, H, T] each
        g = -self.A_log.exp()[:, None] * F.softplus(a - 4.0)       # decay starts near 1
        return q, k, v, gate, b.sigmoid(), g, conv_state

    def _output(self, o: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        B, H, T, D = o.shape
        o = self.norm(o) * F.silu(gate)
        return self.out(o.transpose(1, 2).reshape(B, T, H * D))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v, gate, beta, g, _ = self._inputs(x)
        fla = _fla_chunk() if x.is_cuda else None
        if fla is not None:   # fla takes [B, T, H, *] and one dtype for q, k, v (autocast leaves q, k in float32)
            qkv = [t.transpose(1, 2).to(v.dtype).contiguous() for t in (q, k, v)]
            o, _ = fla(*qkv, g.transpose(1, 2).float().contiguous(), beta.transpose(1, 2).contiguous(), scale=1.0)
            o = o.transpose(1, 2)
        else:
            o, _ = gated_delta_chunked(q, k, v, beta, g, chunk=self.chunk)
        return self._output(o, gate)

    def step(self, x: torch.Tensor, state) -> tuple[torch.Tensor, object]:
        """Prefill (``state=None``) or continue. State: ``S [B, H, Dk, Dv]``, or with ``conv`` the dict
        ``{"conv": [B, 3d, conv - 1], "ssm": S}``."""
        conv_state, S = (state["conv"], state["ssm"]) if isinstance(state, dict) else (None, state)
        q, k, v, gate, beta, g, conv_state = self._inputs(x, conv_state)
        if x.shape[1] == 1 and S is not None:
            o, S = gated_delta_step(q[:, :, 0], k[:, :, 0], v[:, :, 0], beta[:, :, 0], g[:, :, 0], S)
            o = o[:, :, None]
        elif (kernel := _kernel() if x.is_cuda else None) is not None:   # q, k float32 under autocast
            o, S = kernel(q.to(v.dtype), k.to(v.dtype), v, g, beta, scale=1.0, initial_state=S,
                          output_final_state=True)
        else:
            o, S = gated_delta_chunked(q, k, v, beta, g, S, chunk=self.chunk)
        return self._output(o, gate), ({"conv": conv_state, "ssm": S} if self.kernel else S)


def _kernel():
    try:
        from longctx.kernels.linear import gated_delta_rule
    except ImportError:
        return None
    return gated_delta_rule


def _fla_chunk():
    return fla_op("gated_delta_rule", "chunk_gated_delta_rule")


def make(cfg: ZooConfig, layer: int) -> GatedDeltaNet:
    return GatedDeltaNet(cfg, layer)
