"""Score a model over tasks x context lengths (``evals run``): ``run_eval(model, RunConfig(...)) -> RunResult``.

Example: ``evals run ruler --ctx 4k-128k --model hf:/models/llama --samples 50``, or from Python
``run_eval("hf:/models/llama", RunConfig(["niah_single_1"], [4096], samples=50))``. A rerun of the
same command resumes: samples already recorded are skipped.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from longctx.evals.ctx import fmt_ctx
from longctx.evals.errors import EvalError
from longctx.evals.manifest import manifest, now
from longctx.evals.runner import Job, Overhead, RunConfig, generation_settings, run_job, template_overhead
from longctx.evals.store import model_slug, write_json_atomic
from longctx.evals.summary import build_summary
from longctx.models.load import load_model
from longctx.tasks.tokenizers import load_tokenizer

# The shipped zoo checkpoint `evals run` uses when no --model is given (the best sub-quadratic one:
# Mamba-2 layers and one content-routed sparse attention layer), and its sample count per task x ctx
# when no --samples is given (`evals run ruler --ctx 128k` on 2 CPU cores: see the README).
DEFAULT_MODEL, DEFAULT_MODEL_SAMPLES, DEFAULT_SAMPLES = "zoo:hybrid_ssa", 1, 100


@dataclass(frozen=True)
class RunResult:
    """What ``run_eval`` did: the model's summary (``summary.json``), its results folder and the context
    lengths it ran (those within the model's maximum)."""

    summary: dict[str, Any]
    folder: Path
    ctxs: list[int]


def run_eval(model: str, cfg: RunConfig, tokenizer: str | None = None, strict: bool = False, executor: str = "local",
             ray_address: str | None = None, command: list[str] | None = None,
             console: Console | None = None) -> RunResult:
    """Run MODEL on ``cfg.tasks`` at each of ``cfg.ctxs``; score, record (resuming) and summarise.

    ``tokenizer`` sizes the prompts (default: the model's own); ``strict`` refuses context lengths above the
    model's maximum instead of skipping them; ``command`` is what the manifest records (default: ``sys.argv``);
    progress goes to ``console`` (default: stderr)."""
    console = console or Console(stderr=True)
    names, ctxs = cfg.tasks, cfg.ctxs
    if executor not in ("local", "ray"):
        raise EvalError(f"--executor must be local or ray, got {executor!r}")
    if executor == "ray":
        from longctx.evals import ray_executor

        ray_executor.connect(ray_address)  # before the model loads: an address that does not answer fails fast
    with console.status(f"loading {model}"):
        m = ray_executor.RemoteModel(model) if executor == "ray" else load_model(model)  # ray: on a worker only
    try:
        tok_spec = tokenizer or m.tokenizer_spec
        if tok_spec is None:
            raise EvalError(f"{model} does not say which tokenizer it uses: pass --tokenizer (hf:PATH, tiktoken:NAME or byte) "
                            "so that prompts are sized in its tokens")
        tok = load_tokenizer(tok_spec)
        runnable = [c for c in ctxs if c <= m.max_context]
        skipped = [c for c in ctxs if c > m.max_context]
        if skipped:
            msg = f"{model} accepts {m.max_context} tokens; context lengths above it: {', '.join(map(fmt_ctx, skipped))}"
            if strict or not runnable:
                raise EvalError(msg)
            console.print(f"[yellow]skipping[/] {msg}")
        model_dir = cfg.out / model_slug(model)
        man = manifest(command or sys.argv, model=model, tasks=names, ctxs=runnable, skipped_ctxs=skipped, seed=cfg.seed,
                       samples=cfg.samples, tokenizer=tok.name, task_options=cfg.options,
                       generation=generation_settings(m, cfg), training=getattr(m, "training", None),
                       mqar=getattr(m, "mqar", None))
        write_json_atomic(model_dir / "manifest.json", man)
        overhead = template_overhead(m, tok, cfg.answer_prefix)
        if executor == "ray":
            ray_executor.run_grid_ray(m, tok, cfg, names, runnable, overhead, console)
        else:
            _run_grid(m, tok, cfg, names, runnable, overhead, console)
        summary = build_summary(model_dir, model)
        man["generation"] = generation_settings(m, cfg)  # what a server accepted: it may refuse extension knobs
        man["ended"] = now()
        write_json_atomic(model_dir / "manifest.json", man)
        with (model_dir / "runs.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps(man) + "\n")
    finally:
        m.close()
    return RunResult(summary, model_dir, runnable)


def _run_grid(m, tok, cfg: RunConfig, names: list[str], ctxs: list[int], overhead: Overhead, console: Console) -> None:
    """One progress bar per job (task x ctx) with ETA and prompt tokens per second."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[tps]} tok/s"), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        for name in names:
            for c in ctxs:
                label = f"{name} @ {fmt_ctx(c)}"
                bar = progress.add_task(label, total=cfg.samples, tps="-")
                t0, sent = time.perf_counter(), [0]

                def advance(n: int, tokens: int, bar=bar, t0=t0, sent=sent) -> None:
                    sent[0] += tokens
                    fields = {"tps": f"{sent[0] / (time.perf_counter() - t0):,.0f}"} if tokens else {}
                    progress.update(bar, advance=n, **fields)

                try:
                    result = run_job(m, tok, Job(name, c), cfg, overhead, advance)
                except BaseException:
                    progress.update(bar, visible=False)  # the error that follows is the job's last word, not "0/n"
                    raise
                if result.metrics["n"]:
                    progress.update(bar, description=f"{label}: {100 * result.metrics['mean']:.1f}")
