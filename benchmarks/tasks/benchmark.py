"""Generation benchmark: the 13 RULER tasks and MRCR 8-needle at 128K under a real ~32K BPE.

Trains a byte-level BPE tokenizer of about 32K tokens locally with the ``tokenizers`` library on
generated text (essays, pseudo-words, numbers, uuids), then generates every task's samples and
prints seconds per task, the total, the peak resident memory and the machine's load. Nothing is
downloaded and the sample cache is not used. Figures seen are kept in ``benchmarks/tasks/BENCHMARK.md``.

    python -m benchmarks.tasks.benchmark                       # 13 x 100 at 131072, then mrcr_8needle x 100
    python -m benchmarks.tasks.benchmark --samples 10 --ctx 32768 --tasks niah_single_1,cwe
"""
from __future__ import annotations

import argparse
import os
import random
import resource
import string
import tempfile
import time
from pathlib import Path

from longctx.tasks import vocab
from longctx.tasks.haystack import essay_haystack
from longctx.tasks.registry import TASKS, resolve
from longctx.tasks.sizing import tolerance
from longctx.tasks.tokenizers import HFTokenizer


def training_text(n_lines: int = 60_000, seed: int = 0) -> list[str]:
    """Generated lines in the mix the tasks produce: prose, made-up words, numbers, uuids, codes."""
    rng = random.Random(f"benchmark-bpe|{seed}")
    prose = essay_haystack().units
    lines = list(prose)
    for _ in range(n_lines - len(lines)):
        kind = rng.random()
        if kind < 0.4:
            lines.append(" ".join(vocab.pseudo_word(rng, "train", (1, 4)) for _ in range(12)))
        elif kind < 0.6:
            lines.append(" ".join("".join(rng.choices(string.ascii_lowercase, k=6)) for _ in range(10)))
        elif kind < 0.8:
            lines.append(" ".join(f"{rng.randrange(10**6, 10**7)} {vocab.uuid4(rng, 'train')}" for _ in range(3)))
        else:
            first = rng.randrange(1, 9000)
            lines.append(" ".join(f"{i}. {rng.choice(vocab.words('train'))}" for i in range(first, 9000, 37)))
    return lines


def train_bpe(path: Path, vocab_size: int = 32_000) -> HFTokenizer:
    """A byte-level BPE (GPT-2 style pre-tokenizer) trained on ``training_text``, saved to ``path``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(training_text(), trainer=trainer)
    tok.save(str(path))
    return HFTokenizer(path)


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kilobytes on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ctx", type=int, default=131_072)
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--tasks", default="ruler,mrcr_8needle")
    ap.add_argument("--tokenizer", help="a tokenizer.json to use instead of training one")
    args = ap.parse_args()
    names = resolve(args.tasks)
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        tok = HFTokenizer(args.tokenizer) if args.tokenizer else train_bpe(Path(d) / "tokenizer.json")
        vocab_size = tok._tok.get_vocab_size()
        train_s = time.perf_counter() - t0
        print(f"tokenizer: {tok.name}, vocab {vocab_size}, ready in {train_s:.1f} s")
        print(f"{'task':18} {'seconds':>8} {'per sample':>10} {'min..max prompt tokens':>24}")
        groups: dict[str, float] = {}
        for name in names:
            task = TASKS[name]
            start = time.perf_counter()
            samples = list(task.generate(args.ctx, args.samples, 0, tok))
            sec = time.perf_counter() - start
            lengths = [s.prompt_tokens for s in samples]
            target = args.ctx - task.answer_budget
            ok = all(target - tolerance(target) <= n <= target for n in lengths)
            print(f"{name:18} {sec:8.1f} {sec / max(len(samples), 1):10.3f} {min(lengths):>11}..{max(lengths):<11}"
                  f"{'' if ok else ' OUT OF TOLERANCE'}")
            group = "mrcr" if name.startswith("mrcr") else "ruler"
            groups[group] = groups.get(group, 0.0) + sec
    for group, sec in groups.items():
        print(f"total {group}: {sec:.1f} s")
    print(f"peak RSS: {peak_rss_gb():.2f} GB; load average before {load0[0]:.2f}, after {os.getloadavg()[0]:.2f} "
          f"({os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
