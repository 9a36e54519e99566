"""Training-free sparse attention for a Hugging Face model: ``hf:PATH,attn=METHOD[:key=value[:key=value...]]``.

Each in-repo method is registered with transformers' attention-function interface
(``AttentionInterface.register``) under its own name, and the model is loaded with
``attn_implementation=<that name>``: no model file is edited, no class is patched. Arguments are
separated by ':' (',' already separates spec options), e.g.
``hf:./llama,attn=ssa:topk=16:local=2:dense_layers=2``. Methods and their arguments:

* ``dense``: exact causal attention (the flash kernel on a GPU, the reference on CPU).
* ``swa:window=W`` (4096): sliding window, query i sees keys (i - W, i].
* ``blocks:block_size=B:local=L:stride=S`` (64, 4, 0 = none): fixed block pattern (first blocks,
  ``L`` local blocks with the diagonal, every ``S``-th block back).
* ``dsa:topk=K:dim=M`` (2048, 0 = full): each query keeps the ``K`` keys with the largest score
  ``sum_g mean_{h in g}(q_h) . k_g`` (the model's own logits, summed over kv heads, the query heads of
  a group averaged), optionally on a fixed random projection of that concatenation to ``M`` dims;
  the selection is shared by the heads (as DeepSeek's indexer), then sparse attention over it.
* ``ssa:block_size=B:topk=K:beam=W:fanout=F:local=L:top_cap=C`` (64, 16, 8, 8, 2, 64): the SSA
  kernel (hierarchical block selection). Decode steps score every key-block mean directly
  (``O(T / B)`` per step) instead of the beam search.
* ``hyper:block_size=B:n_samples=M:n_bits=N:seed=S`` (128, 1024, 8, 0): HyperAttention on prefill;
  decode steps attend densely (the method approximates the prefill).

Shared arguments: ``dense_layers=N`` (the first N layers run dense), ``sink=S`` and ``recent=R``
(always keep the first S and last R tokens; for ``dsa`` in tokens, for ``blocks``/``ssa`` rounded
up to whole blocks, ``ssa`` needing S <= block_size; refused by dense, swa and hyper).

Any query length works: a prefill (T_q == T_k) runs the method's kernel; a decode or chunked step
(T_q < T_k, the cache already concatenated) builds the method's keep mask for query i at absolute
position T_k - T_q + i and runs masked attention. Left padding (batched generation) is honoured by
dropping each row's padded keys; padded query rows return zeros. A budget that covers the whole
context gives exactly dense attention.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from models.errors import ModelError

METHODS = {
    "dense": {},
    "swa": {"window": 4096},
    "blocks": {"block_size": 64, "local": 4, "stride": 0},
    "dsa": {"topk": 2048, "dim": 0},
    "ssa": {"block_size": 64, "topk": 16, "beam": 8, "fanout": 8, "local": 2, "top_cap": 64},
    "hyper": {"block_size": 128, "n_samples": 1024, "n_bits": 8, "seed": 0},
}
SHARED = {"dense_layers": 0, "sink": 0, "recent": 0}
KEEPS_SINK_RECENT = ("blocks", "dsa", "ssa")
BLOCK_SIZES = (16, 32, 64, 128)
HEAD_DIMS = (16, 32, 64, 128, 256)
PREFIX = "longctx_sparse"


@dataclass(frozen=True)
class SparseConfig:
    """A parsed ``attn=`` value: the method and every argument (defaults filled in)."""

    method: str
    args: dict[str, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The name registered with transformers (letters, digits and '_' only)."""
        return "_".join([PREFIX, self.method, *(f"{k}{v}" for k, v in sorted(self.args.items()))])


def parse_attn(value: str) -> SparseConfig:
    """``"ssa:topk=16:local=2"`` -> SparseConfig; ModelError on an unknown method, argument or value."""
    method, *parts = value.split(":")
    method = method.strip()
    if method not in METHODS:
        raise ModelError(f"attn={value!r}: unknown method {method!r}; use one of {', '.join(METHODS)}")
    allowed = {**METHODS[method], **SHARED}
    args = dict(allowed)
    for part in parts:
        key, eq, raw = part.partition("=")
        key = key.strip()
        if not eq or key not in allowed:
            raise ModelError(f"attn={value!r}: {part!r} is not one of {method}'s arguments "
                             f"({', '.join(f'{k}=N' for k in allowed)}), written METHOD:key=value:key=value")
        try:
            args[key] = int(raw)
        except ValueError:
            raise ModelError(f"attn={value!r}: {key}={raw!r} is not an integer") from None
        if args[key] < 0:
            raise ModelError(f"attn={value!r}: {key}={raw} must be >= 0")
    cfg = SparseConfig(method, args)
    _check_args(value, cfg)
    return cfg


def _check_args(value: str, cfg: SparseConfig) -> None:
    a, m = cfg.args, cfg.method
    if m not in KEEPS_SINK_RECENT and (a["sink"] or a["recent"]):
        raise ModelError(f"attn={value!r}: {m} does not take sink/recent (they apply to blocks, dsa and ssa)")
    positive = {"swa": ("window",), "blocks": ("block_size", "local"), "dsa": ("topk",),
                "ssa": ("block_size", "topk", "beam", "fanout", "local", "top_cap"),
                "hyper": ("block_size", "n_samples", "n_bits")}.get(m, ())
    for key in positive:
        if a[key] <= 0:
            raise ModelError(f"attn={value!r}: {key} must be a positive integer")
    if "block_size" in a and a["block_size"] not in BLOCK_SIZES:
        raise ModelError(f"attn={value!r}: block_size must be one of {BLOCK_SIZES}")
    if m == "ssa":
        if a["fanout"] < 2:
            raise ModelError(f"attn={value!r}: fanout must be at least 2")
        if a["topk"] > a["beam"] * a["fanout"]:
            raise ModelError(f"attn={value!r}: topk={a['topk']} exceeds beam * fanout = {a['beam'] * a['fanout']}")
        if a["sink"] > a["block_size"]:
            raise ModelError(f"attn={value!r}: ssa keeps one sink block, so sink must be <= block_size")
    if m == "hyper" and a["n_bits"] > 30:
        raise ModelError(f"attn={value!r}: n_bits must be at most 30")


def check_swappable(config) -> None:
    """ModelError (saying why) when a transformers config's model cannot run a registered attention function."""
    from transformers import AutoModelForCausalLM

    try:
        cls = AutoModelForCausalLM._model_mapping[type(config)]
    except KeyError:
        raise ModelError(f"attn=: {config.model_type!r} has no causal-LM class in transformers") from None
    if not getattr(cls, "_supports_attention_backend", False):
        raise ModelError(f"attn=: {cls.__name__} cannot be swapped: its attention does not go through "
                         "transformers' AttentionInterface (the class does not declare _supports_attention_backend)")
    text = getattr(config, "text_config", None) or config
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    if head_dim not in HEAD_DIMS:
        raise ModelError(f"attn=: {cls.__name__} has head dim {head_dim}; the in-repo kernels take {HEAD_DIMS}")
    if getattr(text, "attn_logit_softcapping", None):
        raise ModelError(f"attn=: {cls.__name__} soft-caps its attention logits, which the in-repo kernels do not")


def register(value: str | SparseConfig, config=None) -> str:
    """Register the method with transformers (and the sdpa-style padding mask); return the name to load with."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    cfg = parse_attn(value) if isinstance(value, str) else value
    if config is not None:
        check_swappable(config)

    def attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
        return sparse_forward(cfg, module, query, key, value, attention_mask, scaling, **kwargs)

    AttentionInterface.register(cfg.name, attention)
    AttentionMaskInterface.register(cfg.name, sdpa_mask)
    return cfg.name


def sparse_forward(cfg: SparseConfig, module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                   attention_mask: torch.Tensor | None, scaling: float | None = None, **kwargs):
    """The registered function: q ``[B, H, T_q, D]``, k/v ``[B, H_kv, T_k, D]`` -> (``[B, T_q, H, D]``, None)."""
    if kwargs.get("sliding_window") is not None or kwargs.get("softcap") is not None:
        raise ModelError(f"attn={cfg.method}: this layer asks for a sliding window or logit soft-capping, "
                         "which the swapped attention does not reproduce")
    D = query.shape[-1]
    scale = scaling if scaling is not None else D ** -0.5
    q = query * (scale * math.sqrt(D))  # the kernels scale by 1/sqrt(D)
    layer = getattr(module, "layer_idx", None)
    method = "dense" if layer is not None and layer < cfg.args["dense_layers"] else cfg.method
    starts = _pad_starts(attention_mask)
    if starts is None:
        out = attend(method, cfg.args, q, key, value)
    else:
        out = torch.zeros_like(q)
        T_q, T_k = q.shape[2], key.shape[2]
        for b, p in enumerate(starts):
            q0 = max(0, p - (T_k - T_q))
            if q0 < T_q:
                out[b:b + 1, :, q0:] = attend(method, cfg.args, q[b:b + 1, :, q0:], key[b:b + 1, :, p:],
                                              value[b:b + 1, :, p:])
    return out.transpose(1, 2).contiguous(), None


def _pad_starts(mask: torch.Tensor | None) -> list[int] | None:
    """Per row, the first key the last query may see (left padding), or None when no row is padded."""
    if mask is None:
        return None
    last = mask[:, 0, -1, :] if mask.dtype == torch.bool else mask[:, 0, -1, :] == 0
    starts = last.int().argmax(-1).tolist()
    return None if not any(starts) else starts


def attend(method: str, a: dict[str, int], q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """One method on unpadded q ``[B, H, T_q, D]`` (pre-scaled for 1/sqrt(D)), k/v ``[B, H_kv, T_k, D]``."""
    from kernels.flash import (
        block_sparse_attention,
        decode_attention,
        fixed_pattern,
        flash_attention,
    )
    from kernels.hyper import hyper_attention
    from kernels.ssa import ssa_attention

    B, H, T_q, _ = q.shape
    T_k = k.shape[2]
    prefill = T_q == T_k
    if method in ("dense", "swa", "hyper") and not prefill:
        window = a["window"] if method == "swa" else None
        if T_q <= 64:
            return decode_attention(q, k, v, window=window)
        return masked_attention(q, k, v, causal(T_q, T_k, q.device, window))
    if method == "dense":
        return flash_attention(q, k, v)
    if method == "swa":
        return flash_attention(q, k, v, window=a["window"])
    if method == "hyper":
        return hyper_attention(q, k, v, a["block_size"], min(a["n_samples"], T_k), a["n_bits"], a["seed"])
    bs = a.get("block_size", 64)
    sinks = -(-a["sink"] // bs)
    local = max(a.get("local", 1), -(-a["recent"] // bs) + 1)
    if method == "blocks":
        if prefill:
            idx = fixed_pattern(B, H, T_q, bs, local, a["stride"] or None, sinks, q.device)
            return block_sparse_attention(q, k, v, idx, bs)
        return masked_attention(q, k, v, block_keep(T_q, T_k, bs, local, a["stride"], sinks, q.device))
    if method == "ssa":
        if not prefill:
            return masked_attention(q, k, v, ssa_decode_keep(q, k, bs, a["topk"], local))
        if a["topk"] * bs > T_k:  # the kernel's limit; such a budget already selects every block
            return flash_attention(q, k, v)
        return ssa_attention(q, k, v, bs, a["topk"], a["beam"], a["fanout"], local, a["top_cap"])
    if method == "dsa":
        idx = dsa_topk(q, k, a["topk"], a["dim"], a["sink"], a["recent"])
        if prefill:
            from kernels.dsa import sparse_attention

            return sparse_attention(q, k, v, idx)
        keep = torch.zeros(B, 1, T_q, T_k + 1, dtype=torch.bool, device=q.device)
        keep.scatter_(-1, torch.where(idx < 0, T_k, idx).long()[:, None], True)
        return masked_attention(q, k, v, keep[..., :T_k])
    raise ModelError(f"unknown attention method {method!r}")


def causal(T_q: int, T_k: int, device, window: int | None = None) -> torch.Tensor:
    """``[T_q, T_k]`` bool: query i (position T_k - T_q + i) sees keys (p - window, p]."""
    p = torch.arange(T_k - T_q, T_k, device=device)[:, None]
    j = torch.arange(T_k, device=device)[None, :]
    keep = j <= p
    return keep & (j > p - window) if window is not None else keep


def masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Attention where ``keep`` (broadcastable to ``[B, H, T_q, T_k]``, causal already) says which keys count."""
    from kernels.flash.reference import attention_ref

    if not q.is_cuda:
        return attention_ref(q, k, v, mask=keep)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=keep, enable_gqa=True)


def block_keep(T_q: int, T_k: int, bs: int, local: int, stride: int, sinks: int, device) -> torch.Tensor:
    """The ``blocks`` pattern for queries at positions T_k - T_q + i -> ``[T_q, T_k]`` bool (as ``fixed_pattern``)."""
    qb = (torch.arange(T_k - T_q, T_k, device=device) // bs)[:, None]
    kb = (torch.arange(T_k, device=device) // bs)[None, :]
    keep = (kb < sinks) | (kb > qb - local)
    if stride:
        keep |= (qb - kb) % stride == 0
    return keep & causal(T_q, T_k, device)


def ssa_decode_keep(q: torch.Tensor, k: torch.Tensor, bs: int, topk: int, local: int) -> torch.Tensor:
    """SSA's rule for a few queries: block 0, ``local`` recent blocks, and the ``topk`` key blocks whose mean
    key has the largest dot product with any of the queries (per head) -> ``[B, H, T_q, T_k]`` bool."""
    B, H, T_q, D = q.shape
    Hk, T_k = k.shape[1], k.shape[2]
    nkb = -(-T_k // bs)
    counts = torch.bincount(torch.arange(T_k, device=q.device) // bs).float()
    means = F.pad(k.float(), (0, 0, 0, nkb * bs - T_k)).view(B, Hk, nkb, bs, D).sum(3) / counts[:, None]
    score = (q.float() @ means.repeat_interleave(H // Hk, 1).transpose(-1, -2)).amax(2)  # [B, H, nkb]
    blocks = torch.arange(nkb, device=q.device)
    fixed = (blocks == 0) | (blocks > nkb - 1 - local)
    score = score.masked_fill(fixed, float("-inf"))
    val, chosen = score.topk(min(topk, nkb), -1)
    sel = torch.zeros(B, H, nkb, dtype=torch.bool, device=q.device).scatter_(-1, chosen, val > float("-inf"))
    sel |= fixed
    tok = sel.repeat_interleave(bs, -1)[..., :T_k]
    return tok[:, :, None, :] & causal(T_q, T_k, q.device)


def dsa_topk(q: torch.Tensor, k: torch.Tensor, topk: int, dim: int, sink: int, recent: int) -> torch.Tensor:
    """Training-free DSA selection: per query the first ``sink``, last ``recent`` and ``topk`` best-scoring keys.

    Score ``sum_g mean_{h in g}(q_h) . k_g`` (optionally on a fixed random ``dim``-dim projection of the
    concatenated heads), computed over query chunks. -> int32 ``[B, T_q, K]`` key positions, -1 unused.
    """
    B, H, T_q, D = q.shape
    Hk, T_k = k.shape[1], k.shape[2]
    qc = q.float().view(B, Hk, H // Hk, T_q, D).mean(2).transpose(1, 2).reshape(B, T_q, Hk * D)
    kc = k.float().transpose(1, 2).reshape(B, T_k, Hk * D)
    if dim and dim < Hk * D:
        gen = torch.Generator(device="cpu").manual_seed(0)
        proj = (torch.randn(Hk * D, dim, generator=gen) / math.sqrt(dim)).to(q.device)
        qc, kc = qc @ proj, kc @ proj
    K = min(topk + sink + recent, T_k)
    out = torch.empty(B, T_q, K, dtype=torch.int32, device=q.device)
    chunk = max(1, (1 << 24) // max(T_k, 1))
    j = torch.arange(T_k, device=q.device)[None, :]
    for t0 in range(0, T_q, chunk):
        t1 = min(T_q, t0 + chunk)
        s = qc[:, t0:t1] @ kc.transpose(1, 2)
        p = torch.arange(T_k - T_q + t0, T_k - T_q + t1, device=q.device)[:, None]
        s = s.masked_fill((j < sink) | (j > p - recent), float("inf")).masked_fill(j > p, float("-inf"))
        val, idx = s.topk(K, -1)
        out[:, t0:t1] = torch.where(val > float("-inf"), idx, -1)
    return out



def layer_errors(model, cfg: SparseConfig, input_ids: torch.Tensor) -> list[float]:
    """Per layer, ``||o_method - o_dense|| / ||o_dense||`` of the attention output on one prefill of
    ``input_ids [B, T]``, both computed on the stock model's own queries and keys (the residual stream
    follows dense attention, so every layer sees the inputs the unmodified model would give it)."""
    from transformers import AttentionInterface

    errors: dict[int, float] = {}

    def probe(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
        dense, _ = sparse_forward(SparseConfig("dense", dict(SHARED)), module, query, key, value, None, scaling)
        out, _ = sparse_forward(cfg, module, query, key, value, None, scaling)
        errors[module.layer_idx] = float((out.double() - dense.double()).norm() / dense.double().norm())
        return dense, None

    name = f"{cfg.name}_probe"
    AttentionInterface.register(name, probe)
    previous = model.config._attn_implementation
    model.set_attn_implementation(name)
    try:
        with torch.inference_mode():
            model(input_ids=input_ids, use_cache=False)
    finally:
        model.set_attn_implementation(previous)
    return [errors[i] for i in sorted(errors)]
