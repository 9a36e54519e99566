"""Which part of the needle task stops the zoo's recurrent mixers: the question's form, isolated.

Byte rows of ``--width`` tokens: BOS, RULER's noise sentences with two needles ("One of the special
magic numbers for {key} is: {value}.", word keys and 7-digit values from ``tasks.vocab``'s train
split), then one question about one of them and its answer (loss on the answer bytes and EOS only).
Two forms of the question, everything else equal:

- ``ruler``: RULER's question and answer prefix; the key is then followed by 35 bytes of boilerplate
  (" mentioned in the provided text is") before the answer, so a recurrent model must carry the key
  across them and match it against what it stored after a different context (" is: ").
- ``echo``: the needle's own words ("One of the special magic numbers for {key} is:"), so the bytes
  before the answer are those that preceded the value in the needle (the associative-recall form
  Zoology's MQAR has: the query is the key, the answer follows it).

Each architecture trains its shipped-size config (``registry.config(arch, 'small')``; ``--size tiny`` for a CPU) from scratch with the
zoo's optimizer and schedule; held-out rows (eval split) count as right when every answer byte is the
argmax. ``--warm N`` first trains N steps of token-level MQAR on byte ids (``tasks.mqar.mqar_tokens``: 256
ids, 16 pairs in 128 positions, padded to the row), the associative recall in its plainest form, before the
needle rows; ``--single-first N`` trains N steps of one-needle rows before rows of ``--needles`` (a curriculum:
the copy first, then the key match). ``--seed`` changes the initialisation and the order of the rows. Runs go
``--jobs`` at a time and the table goes to ``OUT/needle_forms.json``; with ``--state DIR`` a run stopped by
``--stop-at`` resumes from its state when the command runs again. ``--ship DIR`` writes each finished run's
weights as an 8-bit checkpoint folder ``DIR/ARCH`` (one run an architecture), the first phase of the zoo's
recipe (``benchmarks/zoo/retrain.sh``):

    python -m benchmarks.zoo.needle_forms --arch dense,mamba2,linear,mamba1 --steps 1500 --jobs 8 --out /tmp/nf
    python -m benchmarks.zoo.needle_forms --arch linear --forms ruler --lr 3e-3 --warm 0,300 --compile --out /tmp/nf
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch

from benchmarks.zoo.children import child_flags, run_children
from benchmarks.zoo.mqar_sweep import Batch, predictions, train_recall
from longctx.models.zoo import checkpoint, registry
from longctx.models.zoo.trainer import Recipe
from longctx.models.zoo.trunk import BOS, EOS, PAD
from longctx.tasks import vocab
from longctx.tasks.haystack import noise_haystack
from longctx.tasks.mqar import IGNORE, mqar_tokens
from longctx.tasks.niah import NEEDLE

FORMS = {
    "ruler": "\nWhat is the special magic number for {key} mentioned in the provided text?\n"
             " The special magic number for {key} mentioned in the provided text is",
    "echo": "\nOne of the special magic numbers for {key} is:",
}


def needle_row(form: str, width: int, rng: random.Random, split: str,
               n_needles: int = 2) -> tuple[list[int], list[int]]:
    """``ids [width]`` and ``targets [width]`` (the next byte at answer positions, IGNORE elsewhere); ``n_needles``
    needles with distinct keys, one asked (with one, RULER's niah_single_1: no key to tell apart)."""
    keys = vocab.draw_distinct("words", rng, split, n_needles)
    values = vocab.draw_distinct("numbers", rng, split, n_needles)
    needles = [(" " + NEEDLE.format(label="numbers", key=k, value=v)).encode() for k, v in zip(keys, values)]
    ask = rng.randrange(n_needles)
    question, answer = FORMS[form].format(key=keys[ask]).encode(), f" {values[ask]}.".encode()
    room = width + 1 - 1 - len(question) - len(answer) - 1 - sum(map(len, needles))
    if room < 0:
        raise ValueError(f"{n_needles} needle(s) and the {form} question need {width - room} bytes, more than {width}")
    units, start, filler = noise_haystack().units, rng.randrange(7), []
    while room > 0:
        s = units[(start + len(filler)) % len(units)].encode()[:room]
        filler.append(s)
        room -= len(s)
    slots = sorted(rng.choices(range(len(filler) + 1), k=n_needles))
    parts = list(filler)
    for i, slot in reversed(list(enumerate(slots))):
        parts.insert(slot, needles[i])
    seq = [BOS, *b"".join(parts), *question, *answer, EOS]
    seq = (seq + [PAD] * (width + 1))[:width + 1]
    first = 1 + len(b"".join(parts)) + len(question)
    target = [IGNORE] * (width + 1)
    target[first:first + len(answer) + 1] = seq[first:first + len(answer) + 1]
    return seq[:-1], target[1:]


def needle_batch(form: str, n: int, width: int, seed: str, split: str = "train", n_needles: int = 2) -> Batch:
    rng = random.Random(seed)
    rows = [needle_row(form, width, rng, split, n_needles) for _ in range(n)]
    return torch.tensor([r[0] for r in rows]), torch.tensor([r[1] for r in rows])


def mqar_byte_batch(n: int, width: int, seed: int) -> Batch:
    """Zoology's MQAR on byte ids (keys 1-127, values 128-255; 16 pairs in 128 positions, as the vocabulary
    must exceed the length), each row padded with PAD to ``width``: ``(ids [n, width], targets [n, width])``."""
    x, y = mqar_tokens(n, 128, 16, 256, seed=seed)
    ids = torch.full((n, width), PAD, dtype=torch.long)
    targets = torch.full((n, width), IGNORE, dtype=torch.long)
    ids[:, :128], targets[:, :128] = torch.from_numpy(x), torch.from_numpy(y)
    return ids, targets


def rows_right(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``[B]`` bool: every answer byte (and EOS) of the row is the argmax (``pred``, ``y``: ``[B, T]``)."""
    return ((pred == y) | (y == IGNORE)).all(-1)


def exact(model, batches: list[Batch], device: str) -> float:
    """Share of rows whose every answer byte (and EOS) is the argmax."""
    right = total = 0
    for pred, y in predictions(model, batches, device):
        right += int(rows_right(pred, y).sum())
        total += y.shape[0]
    return right / max(total, 1)


def needle_card(run: dict) -> dict:
    """The checkpoint card of one run (``run_one``'s result): its rows, recipe, steps and held-out score."""
    recipe = Recipe(steps=run["steps"], batch=run["batch"], lr=run["lr"], seed=run["seed"], log_every=50)
    return {"from": "scratch",
            "data": {"rows": f"benchmarks/zoo/needle_forms.py, {run['form']} form", "seq_len": run["width"],
                     "needles": run["needles"], "single_first": run["single_first"],
                     "warm_mqar_steps": run["warm_mqar_steps"], "split": "train", "seed": run["seed"], "tokenizer": "byte"},
            "recipe": {k: v for k, v in vars(recipe).items() if k not in ("save_every", "pose_span")},
            "steps": run["steps"], "tokens_seen": run["steps"] * run["batch"] * run["width"],
            "final_loss": run["final_loss"], "held_out_exact": run["exact"], "exact_curve": run["exact_curve"],
            "wall_time_s": run["seconds"], "hardware": checkpoint.hardware(), "git_hash": checkpoint.git_hash()}


def run_one(arch: str, form: str, lr: float, warm: int, a: argparse.Namespace) -> dict:
    """One model: ``warm`` MQAR steps, then needle rows of ``form`` up to ``a.steps`` steps in all."""
    cfg = registry.config(arch, a.size)
    start = time.time()

    def batch_at(step: int) -> Batch:
        if step < warm:
            return mqar_byte_batch(a.batch, a.width, seed=step)
        needles = 1 if step < warm + a.single_first else a.needles
        rows = f"{form}|{step}" if a.seed == 0 else f"{form}|{a.seed}|{step}"
        return needle_batch(form, a.batch, a.width, rows, n_needles=needles)

    test = [needle_batch(form, 100, a.width, f"test|{form}|{i}", split="eval", n_needles=a.needles)
            for i in range(a.test // 100)]
    name = f"{arch}-{form}-{lr:g}-{warm}" + (f"-s{a.seed}" if a.seed else "")
    model, log = train_recall(cfg, batch_at, a.steps, lr, a.device, seed=a.seed, stop_at=a.stop_at,
                              compiled=a.compile, probe=lambda m: exact(m, test[:1], a.device),
                              probe_every=a.probe_every, state=a.state / f"{name}.pt" if a.state else None)
    losses = [e for e in log if "loss" in e]
    result = {"arch": arch, "form": form, "lr": lr, "warm_mqar_steps": warm, "size": a.size,
            "parameters": model.num_params(), "width": a.width, "needles": a.needles, "single_first": a.single_first,
            "seed": a.seed, "steps": losses[-1]["step"], "batch": a.batch,
            "exact": round(exact(model, test, a.device), 4), "final_loss": losses[-1]["loss"],
            "exact_curve": [(e["step"], e["probe"]) for e in log if "probe" in e],
            "seconds": round(time.time() - start, 1), "loss_log": log}
    if a.ship and result["steps"] == a.steps:
        checkpoint.save(a.ship / arch, model, needle_card(result), int8=True)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="dense,mamba2,linear,mamba1")
    p.add_argument("--forms", default="ruler,echo")
    p.add_argument("--lr", default="1e-3", help="learning rates, comma-separated (each arch and form at each)")
    p.add_argument("--warm", default="0", help="MQAR steps before the needle rows, comma-separated (each run at each)")
    p.add_argument("--extra", default="", help="more runs, ARCH:FORM:LR:WARM comma-separated")
    p.add_argument("--size", default="small", choices=list(registry.SIZES), help="registry size (small: the shipped one)")
    p.add_argument("--width", type=int, default=512, help="row length in bytes")
    p.add_argument("--needles", type=int, default=2, help="needles a row (1: niah_single_1, nothing to tell apart)")
    p.add_argument("--single-first", type=int, default=0,
                   help="a curriculum: this many steps of one-needle rows (after any MQAR) before rows of --needles")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--seed", type=int, default=0, help="the models' initialisation and the order of their rows")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--test", type=int, default=500)
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--probe-every", type=int, default=0, help="score 100 held-out rows every N steps (0: only at the end)")
    p.add_argument("--compile", action="store_true", help="train through torch.compile (CUDA graphs on a GPU)")
    p.add_argument("--stop-at", type=float, default=None, help="a time.time() at which every run stops training")
    p.add_argument("--state", type=Path, default=None,
                   help="folder of each run's training state: a stopped run resumes from it when run again")
    p.add_argument("--ship", type=Path, default=None,
                   help="write each finished run's weights to SHIP/ARCH as an 8-bit checkpoint (one run an architecture)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)   # ARCH:FORM:LR:WARM, run by the parent
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    if a.one:
        arch, form, lr, warm = a.one.split(":")
        (a.out / f"{a.one.replace(':', '-')}.json").write_text(json.dumps(run_one(arch, form, float(lr), int(warm), a)))
        return
    runs = [(arch, form, lr, warm) for warm in a.warm.split(",") for lr in a.lr.split(",")
            for form in a.forms.split(",") for arch in a.arch.split(",") if arch]
    runs += [tuple(r.split(":")) for r in a.extra.split(",") if r]
    if a.ship and len({r[0] for r in runs}) < len(runs):
        p.error("--ship keeps one checkpoint an architecture: give each architecture one run")
    flags = child_flags(a, ("one", "jobs", "arch", "forms", "lr", "warm", "extra"))
    codes, wall = run_children("benchmarks.zoo.needle_forms", flags, runs, "-".join, a.out, a.jobs)
    results = [json.loads(f.read_text()) for r in runs if (f := a.out / f"{'-'.join(r)}.json").is_file()]
    summary = {"command": " ".join(sys.argv), "device": torch.cuda.get_device_name() if a.device == "cuda" else "cpu",
               "wall_s": wall, "failed": ["-".join(r) for r, c in zip(runs, codes) if c],
               "runs": results}
    (a.out / "needle_forms.json").write_text(json.dumps(summary, indent=1))
    print(f"exact answers on held-out rows, {a.width} bytes, {a.needles} needle(s), size {a.size}")
    print("arch".ljust(10) + "form".ljust(7) + "lr".rjust(8) + "warm".rjust(6) + "steps".rjust(7) + "exact".rjust(8)
          + "loss".rjust(8))
    for r in results:
        print(r["arch"].ljust(10) + r["form"].ljust(7) + f"{r['lr']:g}".rjust(8) + str(r["warm_mqar_steps"]).rjust(6)
              + str(r["steps"]).rjust(7) + f"{100 * r['exact']:.1f}".rjust(8) + f"{r['final_loss']}".rjust(8))
    print("failed:", summary["failed"] or "none", f"wall {summary['wall_s']} s")


if __name__ == "__main__":
    main()
