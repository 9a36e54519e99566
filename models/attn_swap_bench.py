"""Prefill time of a ~1B Llama (random weights, bf16, one GPU) with each swapped attention vs stock SDPA.

The issue-8 target: at 128K, ``ssa`` prefill at least 3x faster than the model's stock SDPA. Every
method runs on the same model in one process (``set_attn_implementation`` between them); each is
warmed up on a short prompt (Triton autotuning) and then timed over ``--repeats`` full prefills of
``--n`` random token ids (``logits_to_keep=1``, no cache). Prints and optionally writes JSON.
Run: ``python -m models.attn_swap_bench --n 131072 --out attn_swap_128k.json`` (needs CUDA).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from models.attn_swap import register

METHODS = ["dense", "swa:window=4096", "blocks:block_size=64:local=16:stride=64", "dsa:topk=2048:dim=64",
           "ssa:block_size=64:topk=16", "hyper:block_size=128:n_samples=1024"]


def build_llama_1b(max_positions: int):
    """A Llama-architecture model of about 1.2B parameters (hidden 2048, 16 layers, GQA 32/8, head dim 64)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                         num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=max_positions,
                         rope_theta=500000.0, attn_implementation="sdpa")
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    return model.eval()


def prefill_seconds(model, n: int, repeats: int) -> float:
    """Median wall time of ``repeats`` prefills of ``n`` tokens."""
    ids = torch.randint(0, model.config.vocab_size, (1, n), device="cuda")
    times = []
    with torch.inference_mode():
        for _ in range(repeats):
            torch.cuda.synchronize()
            t = time.perf_counter()
            model(input_ids=ids, use_cache=False, logits_to_keep=1)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=131072)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--methods", default=";".join(METHODS), help="';'-separated attn= values")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("error: this benchmark needs a CUDA GPU")
    model = build_llama_1b(args.n)
    results = {"n": args.n, "device": torch.cuda.get_device_name(), "seconds": {}, "speedup_vs_sdpa": {}}
    for name, impl in [("sdpa", "sdpa")] + [(m, register(m)) for m in args.methods.split(";")]:
        model.set_attn_implementation(impl)
        prefill_seconds(model, 4096, 1)
        results["seconds"][name] = prefill_seconds(model, args.n, args.repeats)
        results["speedup_vs_sdpa"][name] = results["seconds"]["sdpa"] / results["seconds"][name]
        print(f"{name:45s} {results['seconds'][name]:8.3f} s  x{results['speedup_vs_sdpa'][name]:.2f}", flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
