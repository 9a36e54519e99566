"""The ``evals`` command line: run, generate, tasks, bench, probe, plot, leaderboard, results, merge, train.

Each command is a thin wrapper: it turns options into arguments of a library call (``run_eval``,
``generate_sets``, ``run_bench``, ``run_probe``, ``make_plots``, ``build_leaderboard``, ``plan_merge``,
``train_curriculum``) and prints what comes back; scripts call those functions directly. Errors a user
can cause are printed as one line and exit with status 2, never as a traceback.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from longctx.evals.ctx import parse_ctx
from longctx.evals.errors import EvalError
from longctx.evals.generate import catalog, catalog_table, generate_sets, task_options
from longctx.evals.plots.common import DEFAULT_THRESHOLD
from longctx.evals.plot import KINDS
from longctx.evals.run import DEFAULT_MODEL, DEFAULT_MODEL_SAMPLES, DEFAULT_SAMPLES
from longctx.evals.train import ARCHS, TrainConfig
from longctx.tasks.registry import resolve

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help text is plain: brackets such as zoo:ARCH[@CKPT] or [default: ...] stay as written
    help="Long-context evaluation suite: RULER, MRCR and recall-decay tasks over any model, at any context length.",
)
board_app = typer.Typer(no_args_is_help=True, help="Build, merge and publish leaderboards (JSON + a static page).")
app.add_typer(board_app, name="leaderboard")
err = Console(stderr=True)
results_app = typer.Typer(no_args_is_help=True, help="Pack a results folder into one file (for a published board), or unpack it.")
app.add_typer(results_app, name="results")


@results_app.command("pack")
def results_pack(
    folder: Path = typer.Argument(..., help="results folder written by `evals run` (a root of model folders, or one)"),
    out: Path = typer.Option(..., "--out", "-o", help="the packed file, *.jsonl.gz (`evals leaderboard build --results` reads it)"),
) -> None:
    """Pack every file of FOLDER into one gzipped JSON-lines file: one row per sample record or JSON file."""
    from longctx.evals.results_pack import pack

    print(f"{out}: {pack(folder, out)} rows")


@results_app.command("unpack")
def results_unpack(
    file: Path = typer.Argument(..., help="a file written by `evals results pack`"),
    out: Path = typer.Option(..., "--out", "-o", help="folder to write the results into (none of its files may exist yet)"),
) -> None:
    """Write the files of a packed results file back into a folder, byte for byte."""
    from longctx.evals.results_pack import unpack

    print(f"{out}: {unpack(file, out)} files")
TASK_HELP = "A task, a group (ruler, mrcr, decay, all) or a comma list."
SET_HELP = ("KEY=VALUE: a task option for the tasks that have it, e.g. depth=50, source=squad.json, "
            "path=mrcr/ (mrcr_official). Repeatable.")
HAYSTACK_HELP = "Filler for tasks that have one: noise, essay, or your text file, folder of .txt or saved datasets dataset."


@app.command()
def run(
    tasks: str = typer.Argument(..., help=TASK_HELP),
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
    haystack: Optional[str] = typer.Option(None, help=HAYSTACK_HELP),
    sets: list[str] = typer.Option([], "--set", help=SET_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
    executor: str = typer.Option("local", "--executor", help="local: jobs in this process | ray: jobs sharded over a Ray cluster's workers."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray cluster HOST:PORT for --executor ray; default: RAY_ADDRESS, else a local cluster."),
) -> None:
    """Run MODEL on TASKS at each context length; score, record and summarise."""
    from longctx.evals.aggregate import RULER_AVERAGE_METHOD
    from longctx.evals.run import run_eval
    from longctx.evals.runner import RunConfig
    from longctx.evals.summary import summary_table, table_has_ruler_average

    console = Console(stderr=True)
    names = resolve(tasks)
    ctxs = parse_ctx(ctx)
    if samples is None:
        samples = DEFAULT_MODEL_SAMPLES if model == DEFAULT_MODEL else DEFAULT_SAMPLES
        console.print(f"{model}: {samples} sample(s) per task and context length (--samples to change)")
    options = task_options(names, sets, haystack)
    cfg = RunConfig(names, ctxs, samples, seed, out, batch_size, max_new_tokens, not no_answer_prefix, overwrite,
                    not no_cache, options)
    result = run_eval(model, cfg, tokenizer, strict, executor, ray_address, console=console)
    console.print(summary_table(result.summary, result.ctxs, names))
    if table_has_ruler_average(names):
        console.print(f"RULER average: {RULER_AVERAGE_METHOD}.", soft_wrap=True)
    console.print(f"results in {result.folder}")
    if as_json:
        print(json.dumps(result.summary, indent=2))


@app.command("tasks")
def list_tasks(as_json: bool = typer.Option(False, "--json", help="Print the catalog as JSON.")) -> None:
    """List every task with its group, metric, answer budget and a one-line description."""
    rows = catalog()
    if as_json:
        print(json.dumps(rows, indent=2))
    elif sys.stdout.isatty():
        Console().print(catalog_table(rows))
    else:  # piped or redirected: one whole line per task, tab-separated, for grep and cut
        print("\t".join(rows[0]))
        for r in rows:
            print("\t".join(str(v) for v in r.values()))


@app.command()
def generate(
    tasks: str = typer.Argument(..., help=TASK_HELP),
    ctx: str = typer.Option("4k", "--ctx", help="Context lengths: 4k, 128k, 1m, lists or power-of-two ranges (4k-128k)."),
    samples: int = typer.Option(100, "--samples", "-n", min=1),
    tokenizer: str = typer.Option("byte", help="byte | hf:PATH | tiktoken:NAME"),
    seed: int = typer.Option(0),
    split: str = typer.Option("eval", help="Vocabulary split of keys and values: eval (default) or train."),
    out: Path = typer.Option(Path("data"), "--out", "-o"),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl, or hf for a datasets dataset saved to disk."),
    haystack: Optional[str] = typer.Option(None, help=HAYSTACK_HELP),
    sets: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Generate sample sets (one file per task x ctx), token-exact for TOKENIZER."""
    names, ctxs = resolve(tasks), parse_ctx(ctx)
    generate_sets(names, ctxs, samples, tokenizer, seed, split, out, fmt, task_options(names, sets, haystack))


MERGE_HELP = (
    "Merge results folders into DIR, cell by cell (<model>/<task>/<ctx>), never overwriting anything.\n\n"
    "A cell is copied (its metrics.json and samples.jsonl, so that `evals run --out DIR` skips it and "
    "`evals leaderboard build` and `evals plot` read it) only when its metrics.json says complete; partial "
    "cells are counted and skipped.\n\n"
    "A cell DIR already has is left as it is: the same sample-set hash counts as 'same'; a different one "
    "(or an unfinished cell in DIR) is a conflict, printed with both files. Conflicts do not stop the "
    "merge: every other cell is merged, each conflict is printed, and the command exits 2. Between two "
    "sources, the earlier SRC's cell is kept.\n\n"
    "Each model's manifest.json is kept as manifest-TAG.json (refused, as a conflict, if a different file "
    "has that name) and becomes DIR's manifest.json if DIR has none; runs.jsonl lines are appended unless "
    "already there, so merging the same source twice changes nothing. summary.json is rebuilt for every "
    "model that gained cells. Leaderboard JSON files are merged by `evals leaderboard merge`."
)


@app.command(help=MERGE_HELP)
def merge(
    sources: list[Path] = typer.Argument(..., metavar="SRC", help="Results folders written by `evals run --out` (one per machine or lane), merged in this order."),
    into: Path = typer.Option(..., "--into", metavar="DIR", help="The merged results folder (created if missing)."),
    tags: list[str] = typer.Option([], "--tag", help="Name of each source's manifest copy, manifest-TAG.json: one per SRC, in order "
                                   "(default: the source folder's name and a hash of its absolute path)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print what would be merged; write nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
) -> None:
    """Merge SRC folders into DIR; exit 2 after merging the rest if any cell or manifest conflicts."""
    from longctx.evals.merge import apply_merge, plan_merge
    from longctx.evals.merge_report import report, report_table

    plan = plan_merge(sources, into, tags or None)
    if not dry_run:
        apply_merge(plan)
    Console(stderr=as_json).print(report_table(plan, dry_run))
    for w in plan.warnings:
        err.print(f"[yellow]warning:[/] {w}", highlight=False, soft_wrap=True)
    for c in plan.conflicts:
        err.print(f"[red]conflict:[/] {c}", highlight=False, soft_wrap=True)
    if as_json:
        print(json.dumps(report(plan, dry_run), indent=2))
    if plan.conflicts:
        done = "would be merged" if dry_run else "was merged"
        raise EvalError(f"{len(plan.conflicts)} conflict(s) above were not merged (everything else {done}): rerun one "
                        "side with the other's --seed and --samples or merge it into another folder; for a manifest, "
                        "pass another --tag")


@app.command("plot")
def plot_cmd(
    kind: str = typer.Argument(..., help=f"one of {', '.join(KINDS)}"),
    results: Path = typer.Option(None, "--results", help="results folder written by `evals run` (root or one model folder), or a file packed by `evals results pack`"),
    bench: Path = typer.Option(None, "--bench", help="JSON written by `evals bench --out`"),
    probe: Path = typer.Option(None, "--probe", help="JSON written by `evals probe --out` (trilemma retrieval)"),
    out: Path = typer.Option(Path("plots"), "--out", help="folder for the pictures"),
    fmt: str = typer.Option("png,svg", "--format", help="png, svg or png,svg"),
    threshold: float = typer.Option(DEFAULT_THRESHOLD, "--threshold", help="effective-length threshold in percent (RULER: Llama-2-7B at 4K)"),
) -> None:
    """Draw recall-decay curves, depth x length heatmaps, score vs length, cost curves or the trilemma card."""
    from longctx.evals.plot import make_plots, parse_formats

    for p in make_plots(kind, results, bench, probe, out, parse_formats(fmt), threshold):
        Console().print(str(p), highlight=False)


@board_app.command("build")
def build_cmd(
    results: list[Path] = typer.Option(..., "--results", help="results folder(s) written by `evals run`, or files packed by `evals results pack` (repeat the option for several)"),
    name: str = typer.Option("main", "--name", help="board name: writes OUT/<name>.json"),
    out: Path = typer.Option(Path("leaderboards"), "--out", help="folder for the board"),
    bench: Path = typer.Option(None, "--bench", help="`evals bench --out` JSON whose kernels match the models' attention"),
    threshold: float = typer.Option(DEFAULT_THRESHOLD, "--threshold", help="effective-length threshold in percent"),
) -> None:
    """Build a leaderboard JSON from results folders, validated against the leaderboard schema."""
    from longctx.evals.leaderboard import build_leaderboard

    Console().print(str(build_leaderboard(results, name, out, bench, threshold)), highlight=False)


@board_app.command("merge")
def board_merge_cmd(
    boards: list[Path] = typer.Argument(..., help="board JSON files to merge, in order"),
    name: str = typer.Option("merged", "--name", help="name of the merged board"),
    out: Path = typer.Option(Path("leaderboards"), "--out", help="folder for the merged board"),
) -> None:
    """Merge boards of the same schema; refuses a row whose sample-set hash differs from the board's."""
    from longctx.evals.leaderboard import merge_leaderboards

    Console().print(str(merge_leaderboards(boards, name, out)), highlight=False)


@board_app.command("publish")
def publish_cmd(
    board: Path = typer.Argument(..., help="board JSON (from `evals leaderboard build`)"),
    out: Path = typer.Option(None, "--out", help="folder for the JSON and the page (default: the board's folder)"),
    page: str = typer.Option("index.html", "--page", help="file name of the page inside OUT"),
    plots: Path = typer.Option(None, "--plots", help="folder of `evals plot` pictures to show (linked by relative path; "
                               "copied to OUT/plots when outside OUT)"),
) -> None:
    """Write the board JSON and a static page (sortable table, per-model detail with plots; no network needed)."""
    from longctx.evals.leaderboard import publish_board

    json_path, page_path = publish_board(board, out, page, plots)
    Console().print(f"{json_path}\n{page_path}", highlight=False)


@app.command()
def bench(
    kernels: str = typer.Option(None, help="comma list of kernels (default: all, with sdpa_flash and sdpa_cudnn on a GPU)"),
    n: str = typer.Option(None, help="context lengths, e.g. 4k,16k or 16k-1m (default 256,512,1k on CPU; 16k-1m on GPU)"),
    B: int = typer.Option(1, "--B", help="batch"),
    H: int = typer.Option(8, "--H", help="query heads"),
    H_kv: int = typer.Option(None, "--H-kv", help="key/value heads (default: H)"),
    D: int = typer.Option(128, "--D", help="head dim"),
    dtype: str = typer.Option(None, help="bf16, fp16 or fp32 (default bf16 on GPU, fp32 on CPU)"),
    max_seconds: float = typer.Option(10.0, help="skip an n whose predicted time per call exceeds this"),
    out: Path = typer.Option(None, help="write the JSON here"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of the table"),
) -> None:
    """Time the kernels against SDPA flash/cuDNN; report TFLOP/s, memory and the fitted exponent."""
    import torch

    from longctx.evals.bench import REFERENCES, check_shape, collect_cases, parse_dtype, parse_kernels, print_table, run_bench

    _need_triton()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    ns = parse_ctx(n or ("16k-1m" if device == "cuda" else "256,512,1k"))
    available = list(collect_cases()) + (REFERENCES if device == "cuda" else [])
    names = parse_kernels(kernels, available)
    H_kv = check_shape(B, H, H_kv, D)
    dt = parse_dtype(dtype or ("bf16" if device == "cuda" else "fp32"))
    console = Console(stderr=as_json, width=160)
    result = run_bench(names, ns, B, H, H_kv, D, dt, device, max_seconds, log=console.print)
    _emit(result, out, as_json)
    if not as_json:
        print_table(result, console)


@app.command()
def probe(
    kernels: str = typer.Option(None, help="comma list (default: flash_dense, flash_window, dsa, ssa, hyper, performer)"),
    n: str = typer.Option(None, help="context lengths, e.g. 4k-1m (default 256,1k on CPU; 4k-1m on GPU)"),
    trials: int = typer.Option(16, help="needles per head per distance per call"),
    B: int = typer.Option(1, "--B", help="batch"),
    H: int = typer.Option(8, "--H", help="query heads"),
    H_kv: int = typer.Option(None, "--H-kv", help="key/value heads (default: H)"),
    D: int = typer.Option(128, "--D", help="head dim"),
    dtype: str = typer.Option(None, help="bf16, fp16 or fp32 (default bf16 on GPU, fp32 on CPU)"),
    strength: str = typer.Option("1-2:0.25", help="needle key = strength * its query: a list 1,1.5,2 or a range 1-2:0.25"),
    seed: int = typer.Option(0, help="random seed"),
    max_seconds: float = typer.Option(120.0, help="skip an n whose predicted time exceeds this"),
    out: Path = typer.Option(None, help="write the JSON here"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of the table"),
    model: str = typer.Option(None, "--model", help="hf:PATH,attn=METHOD:...: per-layer error vs dense instead"),
) -> None:
    """Needle recall of each kernel against needle strength, distance d and length n, and dense's reference strength."""
    import torch

    from longctx.evals.bench import check_shape, parse_dtype, parse_kernels
    from longctx.evals.probe import _kernels, model_errors, parse_strengths, print_table, run_probe

    device = "cuda" if torch.cuda.is_available() else "cpu"
    ns = parse_ctx(n or ("4k-1m" if device == "cuda" else "256,1k"))
    if model:
        result = model_errors(model, ns, seed)
        _emit(result, out, as_json)
        if not as_json:
            for ctx, errs in result["errors"].items():
                print(f"{model}  n={ctx}  " + "  ".join(f"L{i}:{e:.3g}" for i, e in enumerate(errs)))
        return
    _need_triton()
    names = parse_kernels(kernels, list(_kernels()))
    H_kv = check_shape(B, H, H_kv, D)
    if trials < 1:
        raise EvalError(f"bad --trials {trials}: it must be at least 1")
    strengths = parse_strengths(strength)
    if min(ns) < 128:
        raise EvalError(f"bad --n: {min(ns)} is below 128, the smallest length the sparse kernels accept")
    console = Console(stderr=as_json, width=160)
    result = run_probe(names, ns, trials, B, H, H_kv, D, parse_dtype(dtype or ("bf16" if device == "cuda" else "fp32")),
                       device, strengths, seed, max_seconds, log=console.print)
    _emit(result, out, as_json)
    if not as_json:
        print_table(result, console)


def _need_triton() -> None:
    """The kernels' timings and retrieval are the Triton kernels': without Triton there is nothing to measure."""
    from longctx.kernels import backend

    if not backend.available():
        raise EvalError(backend.INSTALL_HINT)


def _emit(result: dict, out: Path | None, as_json: bool) -> None:
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1))
    if as_json:
        print(json.dumps(result))


T = TrainConfig  # the options' defaults are the recipe's


@app.command()
def train(
    arch: str = typer.Option("dense", help=f"Architectures, comma-separated, or 'all' ({ARCHS})."),
    size: str = typer.Option(T.size, help="Model size: tiny (tests) or small (the shipped checkpoints)."),
    tasks: str = typer.Option(",".join(T.tasks), help="Training tasks from tasks/, comma-separated."),
    seq_len: int = typer.Option(T.seq_len, min=64, help="Training length in bytes (tokens)."),
    rows: int = typer.Option(T.rows, min=1, help="Training rows generated (the data pool; repeated if steps need more)."),
    steps: int = typer.Option(T.steps, min=0, help="Optimizer steps (same for every architecture); 0 skips the task "
                                                   "phase (with --init and --length-steps: a length-phase fine-tune)."),
    batch: int = typer.Option(T.batch, min=1, help="Rows per step."),
    lr: float = typer.Option(T.lr, help="Peak learning rate (AdamW, warm-up then cosine)."),
    warmup: int = typer.Option(T.warmup, min=0, help="Warm-up steps."),
    answer_weight: float = typer.Option(T.answer_weight, help="Loss weight of answer tokens (text tokens weigh 1)."),
    lm_fraction: float = typer.Option(T.lm_fraction, min=0.0, max=0.9, help="Share of rows that are plain text."),
    copy_fraction: float = typer.Option(T.copy_fraction, min=0.0, max=1.0, help="Share of the text rows that repeat a span."),
    copy_spans: str = typer.Option(T.copy_spans, help="What copy rows repeat: 'essay' text or 'random' letters and digits "
                                                      "(2-6 spans a row; copying is then the only way to predict a repeat)."),
    drill_fraction: float = typer.Option(T.drill_fraction, min=0.0, max=0.9, help="Share of the task rows replaced by recall "
                                                                             "drill rows (many needles, several questions; >= 512 bytes)."),
    copy_len: int = typer.Option(T.copy_len, min=64, help="Length of the first phase's copy rows (bytes)."),
    copy_steps: int = typer.Option(T.copy_steps, min=0, help="Steps of a first phase on short copy rows only (batch x2), "
                                                             "before the task phase; 0 = none."),
    length_steps: int = typer.Option(T.length_steps, min=0, help="Steps of a last phase on the task data with PoSE position skips "
                                                                 "(a quarter of the learning rate), after the task phase; 0 = none."),
    pose_span: int = typer.Option(T.pose_span, min=2, help="The last phase's RoPE positions spread over [0, N): rotary "
                                                           "models see distances up to N while training at --seq-len."),
    seed: int = typer.Option(T.seed, help="Seed of data and initialization."),
    save_every: int = typer.Option(T.save_every, min=1, help="Checkpoint every N steps (resume point)."),
    compiled: bool = typer.Option(T.compiled, "--compile", help="Run the forward through torch.compile (same loss, "
                                                                "fewer launches; compiles once per phase)."),
    stop_after: float | None = typer.Option(None, min=0, help="Save and stop after this many seconds; "
                                                               "the same command resumes (for time-limited machines)."),
    init: Path | None = typer.Option(None, "--init", help="Start each architecture from INIT/ARCH, a checkpoint folder "
                                                          "(e.g. longctx/models/checkpoints) instead of fresh weights."),
    out: Path = typer.Option(Path("runs"), "--out", "-o", help="Run folder; one subfolder per architecture."),
    device: str | None = typer.Option(None, help="cuda or cpu (default: cuda when present)."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Train zoo architectures with one shared recipe; resumable; loss logged to OUT/ARCH/loss.jsonl."""
    from longctx.evals.train import train_curriculum, train_table

    console = Console(stderr=True)
    cfg = TrainConfig(size=size, tasks=tuple(t.strip() for t in tasks.split(",") if t.strip()), seq_len=seq_len, rows=rows,
                      steps=steps, batch=batch, lr=lr, warmup=warmup, answer_weight=answer_weight, lm_fraction=lm_fraction,
                      copy_fraction=copy_fraction, copy_spans=copy_spans, drill_fraction=drill_fraction, copy_len=copy_len,
                      copy_steps=copy_steps, length_steps=length_steps, pose_span=pose_span, seed=seed,
                      save_every=save_every, compiled=compiled, init=init)
    archs = [a.strip() for a in arch.split(",") if a.strip()]
    result = train_curriculum(archs, cfg, out, device, progress, stop_after, console)
    console.print(train_table(result))
    if result.stopped:
        console.print("stopped by --stop-after; run the same command again to resume")


def user_errors() -> tuple[type[Exception], ...]:
    from longctx.models.errors import ModelError
    from longctx.tasks.errors import TaskError

    return (EvalError, ModelError, TaskError)


def main() -> None:
    try:
        app()  # usage errors (unknown option, bad value) are click's: it prints them and exits 2
    except user_errors() as e:
        err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        sys.exit(2)
