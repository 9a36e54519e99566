"""Runner and scoring overhead per sample, with a model that answers instantly.

Run: ``python -m benchmarks.runner.bench_runner [--ctx 128k] [--samples 50] [--task niah_single_1]``. The
sample set is generated (and cached) first; then the job is timed twice with ``overwrite``:
everything the runner does per sample (resume bookkeeping, request building, prompt-token
count, scoring, record write, metrics) is in the figure, the model's own time is ~0.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from longctx.evals.ctx import parse_one
from longctx.evals.runner import Job, Overhead, RunConfig, run_job
from longctx.models.base import Completion, Request
from longctx.models.prompting import plain_prompt
from longctx.tasks.cache import generate_samples
from longctx.tasks.tokenizers import ByteTokenizer


class InstantModel:
    """Answers every request with an empty string at once; byte-level, plain template."""

    spec, tokenizer_spec, template, max_context = "instant", "byte", "plain", 1 << 30

    def count_prompt_tokens(self, request: Request) -> int:
        return len(plain_prompt(request).encode("utf-8"))

    def generate(self, batch: list[Request]) -> list[Completion]:
        return [Completion("", output_tokens=0) for _ in batch]

    def close(self) -> None:
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ctx", default="128k")
    ap.add_argument("--samples", type=int, default=50)
    ap.add_argument("--task", default="niah_single_1")
    args = ap.parse_args()
    ctx, tok, model = parse_one(args.ctx), ByteTokenizer(), InstantModel()
    t0 = time.perf_counter()
    generate_samples(args.task, ctx, args.samples, 0, tok)
    print(f"sample set ({args.samples} x {args.ctx}) generated or read from cache in {time.perf_counter() - t0:.2f} s")
    with tempfile.TemporaryDirectory() as out:
        cfg = RunConfig([args.task], [ctx], args.samples, 0, Path(out), overwrite=True)
        for attempt in (1, 2):
            t0 = time.perf_counter()
            run_job(model, tok, Job(args.task, ctx), cfg, overhead=Overhead(0, 0))
            per = (time.perf_counter() - t0) / args.samples * 1000
            print(f"run {attempt}: {per:.2f} ms per sample (runner + scoring + record, model time ~0)")


if __name__ == "__main__":
    main()
