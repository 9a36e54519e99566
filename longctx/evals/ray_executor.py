"""The job grid on a Ray cluster: ``evals run ... --executor ray [--ray-address HOST:PORT]``.

The driver (the ``evals run`` process) builds every (task, ctx) job's sample set and resume list exactly
as the local runner does, cuts the samples still to do into the same length-sorted batches, and hands the
batches to a pool of Ray actors. Each actor loads the model once and keeps it for every batch it is given
(GPU actors ask Ray for a GPU through ``num_gpus``); it generates and scores its batch with the runner's
own functions and returns the records. The driver loads no model: ``RemoteModel`` starts the pool's
first actor and asks it what the runner needs before the jobs exist (tokenizer, template, context limit,
prompt token counts), and the pool takes that actor over. The driver is the only process that writes: it appends each
batch's records to the job's ``samples.jsonl`` as they arrive and writes ``metrics.json`` with the runner's
``write_metrics`` once the job's last batch is in.

Why the driver writes: ``samples.jsonl`` keeps a single appender, so a run killed at any moment (driver or
workers) loses at most the batches in flight and a torn last line, which ``read_records`` cuts off; a
rerun skips every recorded hash and ends with exactly one record per sample, as with the local executor.
It also needs no file system shared between the cluster's nodes.

Address: ``--ray-address``, else ``RAY_ADDRESS``, else a local cluster started for the run. Install with
``pip install '.[ray]'``.
"""
from __future__ import annotations

import os
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from longctx.evals.ctx import fmt_ctx
from longctx.evals.errors import EvalError
from longctx.evals.runner import Job, Overhead, RunConfig, complete_batch, job_dir, job_samples, write_metrics
from longctx.evals.store import RecordWriter, read_records
from longctx.models.base import Completion, Model, Request
from longctx.models.errors import ModelError
from longctx.models.load import load_model
from longctx.models.spec import parse_spec
from longctx.tasks.errors import TaskError
from longctx.tasks.sample import Sample
from longctx.tasks.tokenizers import Tokenizer

CONNECT_TIMEOUT_S = 5.0  # TCP connect to the address
GCS_WAIT_S = 10  # then Ray's own tries to reach the cluster's control store (its default is ~20 one-second tries)
GPU_SCHEMES = ("zoo", "hf", "vllm")  # backends that run the model in the worker's own process


@dataclass(frozen=True)
class RayOptions:
    """How many actors, and what each asks Ray for; None picks from the cluster (see ``_pool_size``)."""

    workers: int | None = None
    num_gpus: float | None = None
    num_cpus: float = 1.0
    in_flight: int = 2  # batches queued per actor, so it never waits for the driver


@dataclass
class RayRunStats:
    """What the pool did: one entry per actor (its process id, node and the batches it ran)."""

    workers: list[dict[str, Any]] = field(default_factory=list)
    batches: int = 0


def connect(address: str | None) -> None:
    """Attach to the cluster at ``address`` (or ``RAY_ADDRESS``), or start a local one (stopped at exit).

    An already initialised Ray (a caller's own cluster) is used as it is. A host:port that does not accept
    a connection within ``CONNECT_TIMEOUT_S``, or is not a Ray cluster answering within ``GCS_WAIT_S``
    (``RAY_gcs_server_port_wait_time_s`` overrides it), raises EvalError naming the address.
    """
    try:
        import ray
    except ImportError:
        raise EvalError("--executor ray needs Ray: pip install '.[ray]' (or pip install 'ray[default]')") from None
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    remote = address not in (None, "auto", "local")
    if remote:
        _probe(address)
    wait = os.environ.setdefault("RAY_gcs_server_port_wait_time_s", str(GCS_WAIT_S)) if remote else None
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = address or "a new local cluster"
        raise EvalError(f"cannot start or reach the Ray cluster at {where}: {str(e).splitlines()[0]}") from None
    finally:
        if wait == str(GCS_WAIT_S):
            del os.environ["RAY_gcs_server_port_wait_time_s"]


def _probe(address: str) -> None:
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise EvalError(f"Ray address {address!r} is not HOST:PORT (or ray://HOST:PORT, auto, local)")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        raise EvalError(f"the Ray cluster at {address} does not answer ({e.strerror or e}); start one with "
                        "`ray start --head` or fix --ray-address / RAY_ADDRESS") from None


class Worker:
    """A Ray actor: one model for its whole life, one batch per call. A user error while loading (a path
    that is not there) is kept and raised by every call, so the driver reports it as itself."""

    def __init__(self, spec: str, load: Callable[[str], Model]):
        self.model, self.error, self.batches = None, None, 0
        try:
            self.model = load(spec)
        except (EvalError, ModelError, TaskError) as e:
            self.error = e

    def _loaded(self) -> Model:
        if self.error is not None:
            raise self.error
        return self.model

    def facts(self) -> dict[str, Any]:
        """What the driver needs to know of the model: its tokenizer, template and context limit."""
        m = self._loaded()
        return {"tokenizer_spec": m.tokenizer_spec, "template": m.template, "max_context": m.max_context}

    def count_prompt_tokens(self, request: Request) -> int:
        return self._loaded().count_prompt_tokens(request)

    def generate(self, batch: list[Request]) -> list[Completion]:
        return self._loaded().generate(batch)

    def run_batch(self, samples: list[Sample], cfg: RunConfig) -> tuple[list[dict[str, Any]], int]:
        """Generate and score one batch; returns its records and the prompt tokens sent."""
        self.batches += 1
        return complete_batch(self._loaded(), samples, cfg)

    def info(self) -> dict[str, Any]:
        import ray

        return {"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id(), "batches": self.batches}

    def close(self) -> None:
        if self.model is not None:
            self.model.close()


class RemoteModel:
    """The driver's stand-in for the model under ``--executor ray``: the ``Model`` protocol answered by a
    Ray actor that holds the model, so the driver loads none. ``run_grid_ray`` takes the actor into its
    pool as the first worker (``connect`` first)."""

    def __init__(self, spec: str, load: Callable[[str], Model] = load_model, opts: RayOptions = RayOptions()):
        import ray

        self.spec = spec
        self.actor = ray.remote(num_cpus=opts.num_cpus, num_gpus=_gpus_per_actor(spec, opts))(Worker).remote(spec, load)
        try:
            facts = _get(ray, self.actor.facts.remote())
        except BaseException:
            self.close()
            raise
        self.tokenizer_spec, self.template, self.max_context = facts["tokenizer_spec"], facts["template"], facts["max_context"]

    def count_prompt_tokens(self, request: Request) -> int:
        import ray

        return _get(ray, self.actor.count_prompt_tokens.remote(request))

    def generate(self, batch: list[Request]) -> list[Completion]:
        import ray

        return _get(ray, self.actor.generate.remote(batch))

    def close(self) -> None:
        import ray

        ray.kill(self.actor)


@dataclass
class _JobState:
    job: Job
    samples: list[Sample]
    path: Path
    writer: RecordWriter | None
    batches: list[list[Sample]]
    left: int  # batches not yet written
    bar: int


def _gpus_per_actor(spec: str, opts: RayOptions) -> float:
    """One GPU per actor for in-process backends on a GPU cluster, else none (``opts.num_gpus`` overrides)."""
    import ray

    if opts.num_gpus is not None:
        return opts.num_gpus
    try:
        local_model = parse_spec(spec).scheme in GPU_SCHEMES
    except ModelError:
        local_model = False
    return 1.0 if local_model and ray.cluster_resources().get("GPU", 0) >= 1 else 0.0


def _pool_size(spec: str, n_batches: int, opts: RayOptions) -> tuple[int, float]:
    """(actors, GPUs per actor): one actor per GPU for in-process backends on a GPU cluster, else one per CPU."""
    import ray

    res = ray.cluster_resources()
    num_gpus = _gpus_per_actor(spec, opts)
    fit = res.get("GPU", 0) // num_gpus if num_gpus else res.get("CPU", 1) // opts.num_cpus
    workers = opts.workers or int(max(1, fit))
    return max(1, min(workers, n_batches)), num_gpus


def run_grid_ray(model: Model, tok: Tokenizer, cfg: RunConfig, names: list[str], ctxs: list[int], overhead: Overhead,
                 console: Console, opts: RayOptions = RayOptions(), load: Callable[[str], Model] = load_model) -> RayRunStats:
    """Run every (task, ctx) job of the grid on the connected Ray cluster (``connect`` first).

    ``model`` is used only for its spec, and, when it is a ``RemoteModel``, its actor becomes the pool's
    first worker; every other actor builds its own model with ``load(spec)``. Records and metrics land
    where the local executor puts them, with the same contents.
    """
    import ray

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[tps]} tok/s"), TimeElapsedColumn(), TimeRemainingColumn())
    stats, jobs, queue = RayRunStats(), [], deque()
    try:
        with Progress(*columns, console=console) as progress:
            for name in names:
                for c in ctxs:
                    state = _plan(Job(name, c), model.spec, tok, cfg, overhead, progress)
                    jobs.append(state)
                    queue.extend((state, b) for b in state.batches)
                    if not state.batches:
                        _finish(state, model.spec, tok, cfg, progress)
            if queue:
                first = model.actor if isinstance(model, RemoteModel) else None
                stats = _drain(ray, queue, model.spec, cfg, tok, opts, load, progress, first)
    finally:
        for state in jobs:
            if state.writer is not None:
                state.writer.close()
    return stats


def _plan(job: Job, spec: str, tok: Tokenizer, cfg: RunConfig, overhead: Overhead, progress: Progress) -> _JobState:
    """The job's samples and its batches still to do, cut exactly as ``run_job`` cuts them."""
    samples = job_samples(job, cfg, tok, overhead)
    path = job_dir(cfg.out, spec, job) / "samples.jsonl"
    done = set() if cfg.overwrite else {r["hash"] for r in read_records(path)}
    todo = sorted((s for s in samples if s.hash not in done), key=lambda s: s.prompt_tokens)
    batches = [todo[i : i + cfg.batch_size] for i in range(0, len(todo), cfg.batch_size)]
    bar = progress.add_task(f"{job.task} @ {fmt_ctx(job.ctx)}", total=len(samples), completed=len(samples) - len(todo), tps="-")
    return _JobState(job, samples, path, RecordWriter(path) if batches else None, batches, len(batches), bar)


def _drain(ray, queue: deque, spec: str, cfg: RunConfig, tok: Tokenizer, opts: RayOptions,
           load: Callable[[str], Model], progress: Progress, first=None) -> RayRunStats:
    """Keep every actor ``in_flight`` batches busy; write each batch's records as it returns."""
    n, num_gpus = _pool_size(spec, len(queue), opts)
    actor_cls = ray.remote(num_cpus=opts.num_cpus, num_gpus=num_gpus)(Worker)
    actors = ([first] if first is not None else []) + [actor_cls.remote(spec, load) for _ in range(n - (first is not None))]
    pending: dict[Any, tuple[Any, _JobState]] = {}
    t0, sent = time.perf_counter(), 0
    stats = RayRunStats()

    def submit(actor) -> None:
        if queue:
            state, batch = queue.popleft()
            pending[actor.run_batch.remote(batch, cfg)] = (actor, state)

    try:
        for actor in actors:
            for _ in range(opts.in_flight):
                submit(actor)
        while pending:
            [ref], _ = ray.wait(list(pending), num_returns=1)
            actor, state = pending.pop(ref)
            records, tokens = _get(ray, ref)
            for r in records:
                state.writer.write(r)
            sent += tokens
            stats.batches += 1
            progress.update(state.bar, advance=len(records), tps=f"{sent / (time.perf_counter() - t0):,.0f}")
            state.left -= 1
            if state.left == 0:
                _finish(state, spec, tok, cfg, progress)
            submit(actor)
        stats.workers = [_get(ray, a.info.remote()) for a in actors]
        ray.get([a.close.remote() for a in actors])
    finally:
        for actor in actors:
            ray.kill(actor)  # also drops the batches still queued on it
    return stats


def _finish(state: _JobState, spec: str, tok: Tokenizer, cfg: RunConfig, progress: Progress) -> None:
    if state.writer is not None:
        state.writer.close()
        state.writer = None
    metrics = write_metrics(state.path, state.samples, spec, tok.name, cfg.seed)
    if metrics["n"]:
        progress.update(state.bar, description=f"{state.job.task} @ {fmt_ctx(state.job.ctx)}: {100 * metrics['mean']:.1f}")


def _get(ray, ref) -> Any:
    """``ray.get`` that re-raises a worker's user error (a prompt too long, a server that refuses) as itself."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, (EvalError, ModelError, TaskError)):
            raise cause from None
        raise
    except ray.exceptions.RayActorError as e:
        raise EvalError(f"a Ray worker died while loading or running the model: {str(e).splitlines()[0]}; "
                        "everything recorded so far is kept: rerun the same command to resume") from None
