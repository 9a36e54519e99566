"""``evals run TASKS --ctx 4k,128k --model SPEC``: score a model over tasks x context lengths.

Example: ``evals run ruler --ctx 4k-128k --model hf:/models/llama --samples 50``. A rerun of the
same command resumes: samples already recorded are skipped.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from longctx.evals.cli import app
from longctx.evals.ctx import fmt_ctx, parse_ctx
from longctx.evals.errors import EvalError
from longctx.evals.generate_cmd import task_options
from longctx.evals.manifest import manifest, now
from longctx.evals.runner import Job, Overhead, RunConfig, generation_settings, run_job, template_overhead
from longctx.evals.store import model_slug, write_json_atomic
from longctx.evals.aggregate import RULER_AVERAGE_METHOD
from longctx.evals.summary import build_summary, summary_table, table_has_ruler_average
from longctx.models.load import load_model
from longctx.tasks.registry import resolve
from longctx.tasks.tokenizers import load_tokenizer

# The shipped zoo checkpoint `evals run` uses when no --model is given (the best sub-quadratic one:
# Mamba-2 layers and one content-routed sparse attention layer), and its sample count per task x ctx
# when no --samples is given (`evals run ruler --ctx 128k` on 2 CPU cores: see the README).
DEFAULT_MODEL, DEFAULT_MODEL_SAMPLES, DEFAULT_SAMPLES = "zoo:hybrid_ssa", 1, 100


@app.command()
def run(
    tasks: str = typer.Argument(..., help="A task, a group (ruler, mrcr, decay, all) or a comma list."),
    ctx: str = typer.Option("4k", "--ctx", help="Context lengths: 4k, 128k, 1m, lists (4k,8k) or power-of-two ranges (4k-128k)."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="zoo:ARCH[@CKPT] | hf:PATH | vllm:PATH | openai:MODEL@URL | lm-eval:NAME,ARGS"),
    samples: Optional[int] = typer.Option(None, "--samples", "-n", min=1, help=f"Samples per task and context length [default: {DEFAULT_SAMPLES}; {DEFAULT_MODEL_SAMPLES} for the default model]."),
    seed: int = typer.Option(0, help="Seed of the sample set (same seed, same samples on any machine)."),
    out: Path = typer.Option(Path("results"), "--out", "-o", help="Results folder."),
    batch_size: int = typer.Option(1, "--batch-size", "-b", min=1, help="Requests per generate call (sorted by length)."),
    max_new_tokens: Optional[int] = typer.Option(None, "--max-new-tokens", min=1, help="Answer budget; default: each task's published budget."),
    no_answer_prefix: bool = typer.Option(False, "--no-answer-prefix", help="Do not prefill the task's answer prefix (reasoning models)."),
    tokenizer: Optional[str] = typer.Option(None, help="Tokenizer sizing the prompts (byte | hf:PATH | tiktoken:NAME); default: the model's own."),
    overwrite: bool = typer.Option(False, help="Redo samples that already have a record (the newest record wins)."),
    strict: bool = typer.Option(False, help="Refuse context lengths above the model's maximum instead of skipping them."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Regenerate samples instead of reading the sample cache."),
    haystack: Optional[str] = typer.Option(None, help="Filler for tasks that have one: noise, essay, or your text file, folder of .txt or saved datasets dataset."),
    sets: list[str] = typer.Option([], "--set", help="KEY=VALUE: a task option for the tasks that have it, e.g. depth=50, source=squad.json, path=mrcr/ (mrcr_official). Repeatable."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
    executor: str = typer.Option("local", "--executor", help="local: jobs in this process | ray: jobs sharded over a Ray cluster's workers."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray cluster HOST:PORT for --executor ray; default: RAY_ADDRESS, else a local cluster."),
) -> None:
    """Run MODEL on TASKS at each context length; score, record and summarise."""
    console = Console(stderr=True)
    names = resolve(tasks)
    ctxs = parse_ctx(ctx)
    if samples is None:
        samples = DEFAULT_MODEL_SAMPLES if model == DEFAULT_MODEL else DEFAULT_SAMPLES
        console.print(f"{model}: {samples} sample(s) per task and context length (--samples to change)")
    options = task_options(names, sets, haystack)
    cfg = RunConfig(names, ctxs, samples, seed, out, batch_size, max_new_tokens, not no_answer_prefix, overwrite,
                    not no_cache, options)
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
        model_dir = out / model_slug(model)
        man = manifest(sys.argv, model=model, tasks=names, ctxs=runnable, skipped_ctxs=skipped, seed=seed,
                       samples=samples, tokenizer=tok.name, task_options=options,
                       generation=generation_settings(m, cfg))
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
    console.print(summary_table(summary, runnable, names))
    if table_has_ruler_average(names):
        console.print(f"RULER average: {RULER_AVERAGE_METHOD}.", soft_wrap=True)
    console.print(f"results in {model_dir}")
    if as_json:
        print(json.dumps(summary, indent=2))


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
