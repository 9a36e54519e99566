"""Prefill time of a 1.1B Llama (random weights, bf16, one GPU) with each swapped attention vs stock SDPA.

The issue-8 target: at 128K, ``ssa`` prefill at least 3x faster than the model's stock SDPA. Every
method runs on the same model in one process (``set_attn_implementation`` between them); each is
warmed up on a short prompt (Triton autotuning) and then timed over ``--repeats`` full prefills of
``--n`` random token ids (``logits_to_keep=1``, no cache). Prints and optionally writes JSON.
Each method's last-position logits are compared with SDPA's (``logit_rel_diff``: 0 for the exact
methods, finite for the sparse ones). Results go to ``--out`` after every method, so a run cut short
keeps what it measured. A prefill over ``--slow`` seconds is not repeated.
Run: ``python -m benchmarks.models.attn_swap_bench --n 131072 --out attn_swap_128k.json`` (needs CUDA; numbers in
``benchmarks/models/ATTN_SWAP_NOTES.md``). Plumbing check on a CPU: ``--size tiny --device cpu --n 512``.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from longctx.models.attn_swap import register

METHODS = ["ssa:block_size=64:topk=16", "dense", "swa:window=4096", "blocks:block_size=64:local=16:stride=64",
           "hyper:block_size=128:n_samples=1024", "dsa:topk=2048:dim=64"]
SIZES = {  # (hidden, intermediate, layers, heads, kv heads): head dim 64 for both
    "1b": (2048, 8192, 16, 32, 8),  # 1.10B parameters with the 32000-token vocabulary
    "tiny": (256, 512, 2, 4, 2),
}


def build_llama(size: str, max_positions: int, device: str, dtype: torch.dtype):
    """A Llama-architecture model with random weights (seed 0), GQA, RoPE base 500000, in ``dtype``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    hidden, inter, layers, heads, kv = SIZES[size]
    config = LlamaConfig(vocab_size=32000, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=kv, max_position_embeddings=max_positions,
                         rope_theta=500000.0, attn_implementation="sdpa")
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(dtype)
    return model.eval()


def prefill(model, ids: torch.Tensor, repeats: int, slow: float) -> tuple[float, torch.Tensor]:
    """(median wall seconds, last-position logits ``[V]``) of up to ``repeats`` prefills of ``ids [1, n]``."""
    times = []
    with torch.inference_mode():
        for _ in range(repeats):
            _sync(ids)
            t = time.perf_counter()
            logits = model(input_ids=ids, use_cache=False, logits_to_keep=1).logits[0, -1].float()
            _sync(ids)
            times.append(time.perf_counter() - t)
            if times[-1] > slow:
                break
    return sorted(times)[len(times) // 2], logits


def _sync(t: torch.Tensor) -> None:
    if t.is_cuda:
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=131072)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--slow", type=float, default=10.0, help="seconds over which a prefill is not repeated")
    ap.add_argument("--methods", default=";".join(METHODS), help="';'-separated attn= values")
    ap.add_argument("--size", choices=sorted(SIZES), default="1b")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: this benchmark needs a CUDA GPU (or --size tiny --device cpu for a plumbing check)")
    cuda = args.device == "cuda"
    model = build_llama(args.size, args.n, args.device, torch.bfloat16 if cuda else torch.float32)
    ids = torch.randint(0, model.config.vocab_size, (1, args.n), device=args.device,
                        generator=torch.Generator(args.device).manual_seed(1))
    results = {"n": args.n, "size": args.size, "params": sum(p.numel() for p in model.parameters()),
               "device": torch.cuda.get_device_name() if cuda else "cpu", "methods": {}}
    ref = None
    for name, impl in [("sdpa", "sdpa")] + [(m, register(m)) for m in args.methods.split(";")]:
        model.set_attn_implementation(impl)
        prefill(model, ids[:, : min(args.n, 4096)], 1, args.slow)  # warm-up: Triton compiles and tunes
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        seconds, logits = prefill(model, ids, args.repeats, args.slow)
        ref = logits if ref is None else ref
        row = {"seconds": seconds, "speedup_vs_sdpa": results["methods"].get("sdpa", {}).get("seconds", seconds) / seconds,
               "logit_rel_diff": float((logits - ref).norm() / ref.norm()),
               "peak_gb": torch.cuda.max_memory_allocated() / 1e9 if cuda else None}
        results["methods"][name] = row
        print(f"{name:42s} {seconds:8.3f} s  x{row['speedup_vs_sdpa']:5.2f}  logits rel diff {row['logit_rel_diff']:.3e}"
              + (f"  peak {row['peak_gb']:.1f} GB" if cuda else ""), flush=True)
        if args.out:
            args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
