"""The runner: drive one model over a grid of tasks x context lengths, score, and keep every record.

For each job (task, ctx) the samples come from ``tasks.cache.generate_samples`` sized to the
model's tokenizer; samples whose hash already has a record are skipped (resume); the rest are
sent in batches of similar length; each scored record is appended before the next batch starts;
``metrics.json`` is rewritten atomically at the end of the job from the file's records.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from longctx.evals.aggregate import metrics_for, sample_set_hash
from longctx.evals.ctx import fmt_ctx
from longctx.evals.errors import EvalError
from longctx.evals.scoring import score
from longctx.evals.store import RecordWriter, model_slug, read_records, write_json_atomic
from longctx.models.base import Model, Request
from longctx.tasks.cache import generate_samples
from longctx.tasks.registry import get_task
from longctx.tasks.sample import Sample
from longctx.tasks.tokenizers import Tokenizer


@dataclass(frozen=True)
class RunConfig:
    tasks: list[str]
    ctxs: list[int]
    samples: int = 100
    seed: int = 0
    out: Path = Path("results")
    batch_size: int = 1
    max_new_tokens: int | None = None  # None: each task's published answer budget
    answer_prefix: bool = True
    overwrite: bool = False
    use_cache: bool = True
    options: dict[str, str] = field(default_factory=dict)  # task config fields set by --set / --haystack


@dataclass(frozen=True)
class Job:
    task: str
    ctx: int


@dataclass
class JobResult:
    job: Job
    metrics: dict[str, Any]
    new_records: int
    seconds: float
    prompt_tokens: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def generation_settings(model: Model, cfg: RunConfig) -> dict[str, Any]:
    """How the run decodes, for its manifest: whether the answer prefix really reaches the model (an
    ``openai:`` chat endpoint drops it by default), the endpoint, and the sampling settings a server is sent."""
    g = {"greedy": True, "max_new_tokens": cfg.max_new_tokens,
         "answer_prefix": cfg.answer_prefix and getattr(model, "sends_prefill", True),
         "batch_size": cfg.batch_size, "template": model.template}
    if getattr(model, "endpoint", None):
        g["endpoint"] = model.endpoint
    if isinstance(getattr(model, "params", None), dict):
        g["params"] = model.params
    return g


def job_dir(out: Path, model_spec: str, job: Job) -> Path:
    return out / model_slug(model_spec) / job.task / fmt_ctx(job.ctx)


@dataclass(frozen=True)
class Overhead:
    """Tokens the model's prompt format adds: around a one-message prompt (with the prefill), and
    per further message (what multi-turn samples are charged for each turn)."""

    prompt: int
    per_message: int


def template_overhead(model: Model, tokenizer: Tokenizer, answer_prefix: bool) -> Overhead:
    """Measure the model's format on short probes: one user turn (with and without the prefill),
    and user/assistant/user, whose two extra turns cost their contents plus two per-message tolerances."""
    user, reply, prefill = "Hello there.", "Hi.", " The answer is"
    n = lambda text: len(tokenizer.encode(text))  # noqa: E731
    u = {"role": "user", "content": user}
    one = model.count_prompt_tokens(Request([u], prefill if answer_prefix else None))
    single = model.count_prompt_tokens(Request([u]))
    three = model.count_prompt_tokens(Request([u, {"role": "assistant", "content": reply}, u]))
    per_message = -(-(three - single - n(reply) - n(user)) // 2)  # ceil: never under
    return Overhead(max(0, one - n(user) - (n(prefill) if answer_prefix else 0)), max(0, per_message))


def job_samples(job: Job, cfg: RunConfig, tokenizer: Tokenizer, overhead: Overhead) -> list[Sample]:
    """The job's sample set, sized so prompt, the model's format and the answer budget fit in ctx."""
    return generate_samples(job.task, job.ctx, cfg.samples, cfg.seed, tokenizer, overhead=overhead.prompt,
                            turn_overhead=overhead.per_message, options=cfg.options, use_cache=cfg.use_cache)


def request_for(sample: Sample, cfg: RunConfig) -> Request:
    prefill = sample.answer_prefix if cfg.answer_prefix and sample.answer_prefix else None
    return Request(sample.chat(), prefill, cfg.max_new_tokens or sample.max_new_tokens, {"id": sample.id})


def prompt_sha256(req: Request) -> str:
    blob = json.dumps({"messages": req.messages, "prefill": req.prefill}, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def run_job(model: Model, tokenizer: Tokenizer, job: Job, cfg: RunConfig, overhead: Overhead,
            on_progress: Callable[[int, int], None] = lambda samples, tokens: None) -> JobResult:
    """Generate, send, score and record every sample of ``job`` not already recorded."""
    start = time.perf_counter()
    samples = job_samples(job, cfg, tokenizer, overhead)
    path = job_dir(cfg.out, model.spec, job) / "samples.jsonl"
    done = set() if cfg.overwrite else {r["hash"] for r in read_records(path)}
    todo = sorted((s for s in samples if s.hash not in done), key=lambda s: s.prompt_tokens)
    on_progress(len(samples) - len(todo), 0)
    writer = RecordWriter(path)
    sent_tokens = 0
    try:
        for i in range(0, len(todo), cfg.batch_size):
            records, tokens = complete_batch(model, todo[i : i + cfg.batch_size], cfg)
            for r in records:
                writer.write(r)
            sent_tokens += tokens
            on_progress(len(records), tokens)
    finally:
        writer.close()
    metrics = write_metrics(path, samples, model.spec, tokenizer.name, cfg.seed)
    return JobResult(job, metrics, len(todo), time.perf_counter() - start, sent_tokens)


def complete_batch(model: Model, batch: list[Sample], cfg: RunConfig) -> tuple[list[dict[str, Any]], int]:
    """Send one batch, score it; returns its records and the prompt tokens sent."""
    requests = [request_for(s, cfg) for s in batch]
    counts = [checked_prompt_tokens(model, s, r) for s, r in zip(batch, requests)]
    t0 = time.perf_counter()
    completions = model.generate(requests)
    per_sample = (time.perf_counter() - t0) / len(batch)
    return [make_record(s, r, n, c, model, per_sample) for s, r, n, c in zip(batch, requests, counts, completions)], sum(counts)


def checked_prompt_tokens(model: Model, sample: Sample, req: Request) -> int:
    """The prompt tokens the model will see; an error if prompt plus answer budget do not fit."""
    n = model.count_prompt_tokens(req)
    if n + req.max_new_tokens > model.max_context:
        raise EvalError(
            f"sample {sample.id} needs {n} prompt + {req.max_new_tokens} answer tokens, more than the "
            f"{model.max_context} {model.spec} accepts; prompts are never truncated: use a smaller --ctx")
    return n


def make_record(s: Sample, req: Request, prompt_tokens: int, c: Any, model: Model, seconds: float) -> dict[str, Any]:
    scores = score(c.text, s)
    return {
        "id": s.id, "hash": s.hash, "task": s.task, "ctx": s.ctx, "model": model.spec, "metric": s.metric,
        "scores": scores, "score": scores[s.metric], "prediction": c.text, "answers": s.answers,
        "prompt_tokens": prompt_tokens, "output_tokens": c.output_tokens, "meta": s.meta,
        "timing": {"seconds": round(seconds, 6)},
        "sent": sent_record(model, req, c),
    }


def sent_record(model: Model, req: Request, c: Any) -> dict[str, Any]:
    """What the model was actually sent: template, endpoint (HTTP backends), the answer prefix if it went
    out (the chat endpoint leaves it out by default), and the server's decoding settings where known."""
    sent = {"template": model.template, "prefill": req.prefill if getattr(model, "sends_prefill", True) else None,
            "prompt_sha256": prompt_sha256(req), "max_new_tokens": req.max_new_tokens}
    if getattr(model, "endpoint", None):
        sent["endpoint"] = model.endpoint
    if getattr(c, "params", None) is not None:
        sent["params"] = c.params
    return sent


def write_metrics(path: Path, samples: list[Sample], model_spec: str, tokenizer: str, seed: int) -> dict[str, Any]:
    """Aggregate the records of exactly this sample set (one per sample) into ``metrics.json``."""
    wanted = {s.hash for s in samples}
    by_hash: dict[str, dict[str, Any]] = {}
    for r in read_records(path):
        if r["hash"] in wanted:
            by_hash[r["hash"]] = r  # --overwrite appends: the latest record of a sample wins
    task = get_task(samples[0].task)
    metrics = {"model": model_spec, "task": task.name, "task_version": task.version, "ctx": samples[0].ctx,
               "metric": samples[0].metric, "tokenizer": tokenizer, "seed": seed,
               "sample_set_hash": sample_set_hash(wanted), "complete": len(by_hash) == len(wanted),
               **metrics_for(list(by_hash.values()))}
    if by_hash:
        write_json_atomic(path.parent / "metrics.json", metrics)
    return metrics
