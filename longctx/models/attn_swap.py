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
  kernel (hierarchical block selection); a decode step runs the same selector for its query.
* ``hyper:block_size=B:n_samples=M:n_bits=N:seed=S`` (128, 1024, 8, 0): HyperAttention (sorted LSH
  blocks plus ``M`` sampled key columns); a decode step sees its LSH bucket's key block and the samples.

Shared arguments: ``dense_layers=N`` (the first N layers run dense), ``sink=S`` and ``recent=R``
(always keep the first S and last R tokens; for ``dsa`` in tokens, for ``blocks``/``ssa`` rounded
up to whole blocks, ``ssa`` needing S <= block_size; refused by dense, swa and hyper).

Any query length works: a prefill (T_q == T_k) runs the method's kernel; a decode or chunked step
(T_q < T_k, the cache already concatenated) builds the method's keep mask for query i at absolute
position T_k - T_q + i (hyper: its log-weights) and runs masked attention. Left padding (batched generation) is honoured by
dropping each row's padded keys; padded query rows return zeros. A budget that covers the whole
context gives exactly dense attention.

CUDA tensors run the Triton kernels of ``kernels/``; CPU tensors run their float64 PyTorch references
(whatever ``TRITON_INTERPRET`` says), unless ``KERNELS_ON_CPU`` is set (the interpreter test).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from longctx.models.errors import ModelError

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
# The swap's ssa routes with the selector's v2 rule (top level pruned to ``beam``, identity basis only, no
# query truncation; top_cap comes from its own arguments), not the selector's two-basis defaults
# (longctx/kernels/ssa/README.md), so swapped-model results keep one routing rule.
SSA_V2 = {"top_beam": None, "bases": 1, "trunc": 0.0}
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


# Run the Triton kernels on CPU tensors too. Only meaningful under TRITON_INTERPRET=1 (set before
# triton is imported): the interpreter test sets it to cover the GPU path on a CPU.
KERNELS_ON_CPU = False


def use_kernels(t: torch.Tensor) -> bool:
    """The GPU path (``kernels/``' Triton ops) for CUDA tensors; the float64 references for CPU ones."""
    return t.is_cuda or KERNELS_ON_CPU


def attend(method: str, a: dict[str, int], q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """One method on unpadded q ``[B, H, T_q, D]`` (pre-scaled for 1/sqrt(D)), k/v ``[B, H_kv, T_k, D]``."""
    from longctx.kernels.flash import fixed_pattern

    B, H, T_q, _ = q.shape
    T_k = k.shape[2]
    if T_q < T_k:
        return attend_cached(method, a, q, k, v)
    if method == "dense":
        return _flash(q, k, v)
    if method == "swa":
        return _flash(q, k, v, a["window"])
    if method == "hyper":
        return _hyper(q, k, v, a["block_size"], min(a["n_samples"], T_k), a["n_bits"], a["seed"])
    if method == "dsa":
        return _token_sparse(q, k, v, dsa_topk(q, k, a["topk"], a["dim"], a["sink"], a["recent"]))
    bs, sinks, local = _block_budget(a)
    if method == "blocks":
        return _block_sparse(q, k, v, fixed_pattern(B, H, T_q, bs, local, a["stride"] or None, sinks, q.device), bs)
    if method == "ssa":
        if a["topk"] * bs > T_k:  # the kernel's limit; such a budget already selects every block
            return _flash(q, k, v)
        idx = _ssa_selector(q)(q, k, bs, a["topk"], a["beam"], a["fanout"], local, a["top_cap"], **SSA_V2)
        return _block_sparse(q, k, v, idx, bs)
    raise ModelError(f"unknown attention method {method!r}")


def attend_cached(method: str, a: dict[str, int], q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """A decode or chunked step: the T_q queries sit at the last positions of the T_k cached keys.

    Each method keeps what its prefill would: ``blocks`` its pattern, ``dsa`` its top-k tokens, ``ssa``
    the blocks of its hierarchical selector (run per query), ``hyper`` its LSH bucket and sampled columns.
    """
    T_q, T_k = q.shape[2], k.shape[2]
    if method in ("dense", "swa"):
        window = a["window"] if method == "swa" else None
        if not use_kernels(q):
            return attention_ref(q, k, v, window=window)
        if T_q <= 64:
            from longctx.kernels.flash import decode_attention

            return decode_attention(q, k, v, window=window)
        return masked_attention(q, k, v, causal(T_q, T_k, q.device, window))
    if method == "hyper":
        bias = hyper_decode_bias(q, k, a["block_size"], min(a["n_samples"], T_k), a["n_bits"], a["seed"])
        return weighted_attention(q, k, v, bias)
    if method == "dsa":
        return _token_sparse(q, k, v, dsa_topk(q, k, a["topk"], a["dim"], a["sink"], a["recent"]))
    bs, sinks, local = _block_budget(a)
    if method == "blocks":
        return masked_attention(q, k, v, block_keep(T_q, T_k, bs, local, a["stride"], sinks, q.device))
    if method == "ssa":
        keep = ssa_decode_keep(q, k, bs, a["topk"], a["beam"], a["fanout"], local, a["top_cap"])
        return masked_attention(q, k, v, keep)
    raise ModelError(f"unknown attention method {method!r}")


def _block_budget(a: dict[str, int]) -> tuple[int, int, int]:
    """(block size, sink blocks, local blocks) of a block method, sink/recent rounded up to whole blocks."""
    bs = a["block_size"]
    return bs, -(-a["sink"] // bs), max(a["local"], -(-a["recent"] // bs) + 1)


def _flash(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int | None = None) -> torch.Tensor:
    if not use_kernels(q):
        return attention_ref(q, k, v, window=window)
    from longctx.kernels.flash import flash_attention

    return flash_attention(q, k, v, window=window)


def _block_sparse(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, idx: torch.Tensor, bs: int) -> torch.Tensor:
    if not use_kernels(q):
        from longctx.kernels.flash.reference import block_mask

        return attention_ref(q, k, v, mask=block_mask(idx, q.shape[2], bs))
    from longctx.kernels.flash import block_sparse_attention

    return block_sparse_attention(q, k, v, idx, bs)


def _token_sparse(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Every head of query i attends to the keys ``idx [B, T_q, K]`` (-1 unused)."""
    if not use_kernels(q):
        from longctx.kernels.dsa.reference import sparse_attention_ref

        return sparse_attention_ref(q, k, v, idx)
    if q.shape[2] == k.shape[2]:
        from longctx.kernels.dsa import sparse_attention

        return sparse_attention(q, k, v, idx)
    B, _, T_q, _ = q.shape
    T_k = k.shape[2]
    keep = torch.zeros(B, 1, T_q, T_k + 1, dtype=torch.bool, device=q.device)
    keep.scatter_(-1, torch.where(idx < 0, T_k, idx).long()[:, None], True)
    return masked_attention(q, k, v, keep[..., :T_k])


def _ssa_selector(q: torch.Tensor):
    """``kernels.ssa.ssa_select`` on the GPU path, its float64 reference ``select_ref`` on the CPU (same blocks)."""
    if use_kernels(q):
        from longctx.kernels.ssa import ssa_select

        return ssa_select
    from longctx.kernels.ssa.reference import select_ref

    return select_ref


def _hyper(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bs: int, m: int, n_bits: int, seed: int) -> torch.Tensor:
    if not use_kernels(q):
        from longctx.kernels.hyper.lsh import make_plan
        from longctx.kernels.hyper.reference import hyper_ref

        return hyper_ref(q, k, v, make_plan(q, k, bs, m, n_bits, seed), bs)
    from longctx.kernels.hyper import hyper_attention

    return hyper_attention(q, k, v, bs, m, n_bits, seed)


def causal(T_q: int, T_k: int, device, window: int | None = None) -> torch.Tensor:
    """``[T_q, T_k]`` bool: query i (position T_k - T_q + i) sees keys (p - window, p]."""
    p = torch.arange(T_k - T_q, T_k, device=device)[:, None]
    j = torch.arange(T_k, device=device)[None, :]
    keep = j <= p
    return keep & (j > p - window) if window is not None else keep


def attention_ref(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
                  window: int | None = None) -> torch.Tensor:
    """The flash family's float64 reference (queries at the last T_q of the T_k keys)."""
    from longctx.kernels.flash.reference import attention_ref as ref

    return ref(q, k, v, mask=mask, window=window)


def masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Attention where ``keep`` (broadcastable to ``[B, H, T_q, T_k]``, causal already) says which keys count."""
    if not use_kernels(q):
        return attention_ref(q, k, v, mask=keep)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=keep, enable_gqa=True)


def weighted_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Softmax attention with an additive log-weight ``bias [B, H, T_q, T_k]`` (-inf drops a key); a row
    that keeps no key returns zeros. float64 on the CPU, SDPA on a GPU."""
    if use_kernels(q):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), enable_gqa=True).nan_to_num(0.0)
    group = q.shape[1] // k.shape[1]
    kd, vd = (x.double().repeat_interleave(group, 1) for x in (k, v))
    s = q.double() @ kd.transpose(-1, -2) / math.sqrt(q.shape[-1]) + bias
    return (torch.softmax(s, -1).nan_to_num(0.0) @ vd).to(q.dtype)


def block_keep(T_q: int, T_k: int, bs: int, local: int, stride: int, sinks: int, device) -> torch.Tensor:
    """The ``blocks`` pattern for queries at positions T_k - T_q + i -> ``[T_q, T_k]`` bool (as ``fixed_pattern``)."""
    qb = (torch.arange(T_k - T_q, T_k, device=device) // bs)[:, None]
    kb = (torch.arange(T_k, device=device) // bs)[None, :]
    keep = (kb < sinks) | (kb > qb - local)
    if stride:
        keep |= (qb - kb) % stride == 0
    return keep & causal(T_q, T_k, device)


def ssa_decode_keep(q: torch.Tensor, k: torch.Tensor, bs: int, topk: int, beam: int, fanout: int, local: int,
                    top_cap: int) -> torch.Tensor:
    """SSA's hierarchical selection for each of a few queries -> ``[B, H, T_q, T_k]`` bool, causal.

    Query i (position p = T_k - T_q + i) keeps the key blocks SSA's selector (``kernels.ssa.ssa_select``, or
    its reference on the CPU) picks for a query block that holds it alone: the selector runs over the keys
    0..p with every row of p's block set to this query, so a decode step follows the prefill's rule (its beam
    search over the key hierarchy, block 0 and the ``local`` blocks ending at its own) whatever that rule is.
    Cost per query: one selection pass over the cache, like the prefill's; ``topk * bs >= p + 1`` keeps all.
    """
    select = _ssa_selector(q)
    B, H, T_q, D = q.shape
    T_k = k.shape[2]
    keep = causal(T_q, T_k, q.device).expand(B, H, T_q, T_k).clone()
    for i in range(T_q):
        n = T_k - T_q + i + 1
        if topk * bs >= n:
            continue
        start = (n - 1) // bs * bs
        alone = torch.zeros(B, H, n, D, dtype=q.dtype, device=q.device)
        alone[:, :, start:] = q[:, :, i : i + 1]
        idx = select(alone, k[:, :, :n], bs, topk, beam, fanout, local, top_cap, **SSA_V2)[:, :, -1]
        blocks = torch.zeros(B, H, -(-n // bs) + 1, dtype=torch.bool, device=q.device)
        blocks.scatter_(-1, torch.where(idx < 0, blocks.shape[-1] - 1, idx).long(), True)
        keep[:, :, i, :n] = blocks[..., torch.arange(n, device=q.device) // bs]
    return keep


def hyper_decode_bias(q: torch.Tensor, k: torch.Tensor, bs: int, m: int, n_bits: int, seed: int) -> torch.Tensor:
    """HyperAttention's rule for a few queries -> log-weights ``[B, H, T_q, T_k]`` (-inf = dropped).

    With the hyperplanes and sampled columns ``kernels.hyper.lsh.make_plan`` draws for T_k keys (same seed,
    same order), the keys are sorted by LSH bucket as on prefill; a query sees, with weight 1, the sorted
    key block holding the place its own bucket takes in that order, and with weight T_k / m each of the
    ``m`` sampled keys outside it; causal on positions. ``m = T_k`` keeps every key with weight 1 (dense).
    """
    from longctx.kernels.hyper.lsh import _gray_rank

    B, H, T_q, D = q.shape
    Hk, T_k = k.shape[1], k.shape[2]
    group = H // Hk
    gen = torch.Generator(device="cpu").manual_seed(seed)
    planes = torch.randn(Hk, D, n_bits, generator=gen).to(device=q.device, dtype=torch.float32)
    samples = torch.randperm(T_k, generator=gen)[:m].to(q.device)
    k_code = _gray_rank((torch.einsum("bhtd,hdn->bhtn", k.float(), planes) > 0).long())
    q_code = _gray_rank((torch.einsum("bhtd,hdn->bhtn", q.float(), planes.repeat_interleave(group, 0)) > 0).long())
    sorted_code, k_perm = k_code.sort(dim=-1, stable=True)
    rank = torch.empty_like(k_perm).scatter_(-1, k_perm, torch.arange(T_k, device=q.device).expand(B, Hk, T_k))
    at = torch.searchsorted(sorted_code.repeat_interleave(group, 1), q_code.contiguous())  # [B, H, T_q]
    same = (rank.repeat_interleave(group, 1) // bs)[:, :, None, :] == (at.clamp_max(T_k - 1) // bs)[..., None]
    sampled = torch.zeros(T_k, dtype=torch.bool, device=q.device)
    sampled[samples] = True
    dtype = torch.float32 if use_kernels(q) else torch.float64
    bias = torch.full(same.shape, float("-inf"), dtype=dtype, device=q.device)
    bias = bias.masked_fill(sampled & ~same, math.log(T_k / m)).masked_fill(same, 0.0)
    return bias.masked_fill(~causal(T_q, T_k, q.device), float("-inf"))


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
    chunk = max(1, (1 << (26 if q.is_cuda else 24)) // max(T_k, 1))  # scores of a chunk: 256 MB on a GPU
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
