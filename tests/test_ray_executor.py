"""The Ray executor on a local 2-CPU Ray cluster: same records and scores as the local executor,
one model per worker and none on the driver, resumable after an interrupted run; a model that does not
load and a dead address fail with the user's message (exit 2).

Run: ``pytest tests/test_ray_executor.py -q`` (skipped without Ray: ``pip install '.[ray]'``).
"""
from __future__ import annotations

import functools
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from benchmarks.runner.bench_runner import InstantModel
from longctx.evals.runner import Job, RunConfig, job_dir, run_job, template_overhead
from longctx.evals.store import read_records
from longctx.models.base import Completion, Request
from longctx.models.errors import ModelError
from longctx.models.prompting import plain_prompt
from longctx.tasks.tokenizers import ByteTokenizer

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install '.[ray]' to test --executor ray")
from longctx.evals.ray_executor import RayOptions, RemoteModel, run_grid_ray  # noqa: E402  (needs ray only at call time, but skip together)

TASK_NAMES = ["decay_distance", "decay_depth"]
CTXS = [1024, 2048]
SAMPLES, BATCH = 6, 2


class GuessModel(InstantModel):
    """Deterministic, content-dependent answers: the prompt's first 7-digit number, or 'none' for some prompts."""

    spec = "test:guess"

    def generate(self, batch: list[Request]) -> list[Completion]:
        out = []
        for r in batch:
            prompt = plain_prompt(r)
            nums = re.findall(r"\d{7}", prompt)
            out.append(Completion(nums[0] if nums and len(prompt) % 3 else "none", output_tokens=1))
        return out


class FailingModel(GuessModel):
    """Dies on its second batch, like a worker killed mid-run."""

    calls = 0

    def generate(self, batch: list[Request]) -> list[Completion]:
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("worker killed")
        return super().generate(batch)


def load_guess(spec: str, log: Path | None = None) -> GuessModel:
    if log is not None:
        with log.open("a") as f:
            f.write(f"{os.getpid()}\n")
    return GuessModel()


def load_failing(spec: str) -> FailingModel:
    return FailingModel()


def load_missing(spec: str) -> GuessModel:
    raise ModelError(f"{spec}: no model at /nowhere")


@pytest.fixture(scope="module")
def cluster():
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _cfg(out: Path) -> RunConfig:
    return RunConfig(TASK_NAMES, CTXS, SAMPLES, seed=0, out=out, batch_size=BATCH)


def _run_ray(out: Path, load=load_guess):
    """The grid as ``evals run --executor ray`` runs it: the driver's model is a RemoteModel (a worker's)."""
    model, tok = RemoteModel(GuessModel.spec, load), ByteTokenizer()
    try:
        return run_grid_ray(model, tok, _cfg(out), TASK_NAMES, CTXS, template_overhead(model, tok, True),
                            Console(file=io.StringIO()), RayOptions(), load)
    finally:
        model.close()


def _results(out: Path) -> dict[tuple[str, int], tuple[dict, dict]]:
    """Per job: records by sample hash (timing left out) and metrics.json."""
    res = {}
    for t in TASK_NAMES:
        for c in CTXS:
            d = job_dir(out, GuessModel.spec, Job(t, c))
            recs = read_records(d / "samples.jsonl")
            by_hash = {r["hash"]: {k: v for k, v in r.items() if k != "timing"} for r in recs}
            assert len(by_hash) == len(recs) == SAMPLES, f"{t}@{c}: {len(recs)} records for {SAMPLES} samples"
            res[t, c] = by_hash, json.loads((d / "metrics.json").read_text())
    return res


@pytest.fixture(scope="module")
def local_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    model, tok = GuessModel(), ByteTokenizer()
    for t in TASK_NAMES:
        for c in CTXS:
            run_job(model, tok, Job(t, c), _cfg(out), template_overhead(model, tok, True))
    return _results(out)


def test_ray_equals_local_with_one_model_per_worker_and_none_on_the_driver(cluster, local_results, tmp_path):
    log = tmp_path / "loads.txt"
    stats = _run_ray(tmp_path / "out", functools.partial(load_guess, log=log))
    assert _results(tmp_path / "out") == local_results
    scores = [r["score"] for recs, _ in local_results.values() for r in recs.values()]
    assert 0 < sum(scores) < len(scores), "the test model should get some samples right and some wrong"
    loads = log.read_text().split()
    assert str(os.getpid()) not in loads, "the driver loaded the model"
    assert len(loads) == len(set(loads)) == 2, "each of the 2 workers loads the model once, for all its batches"
    assert sorted(loads) == sorted(str(w["pid"]) for w in stats.workers) and all(w["batches"] > 0 for w in stats.workers)
    assert stats.batches == sum(w["batches"] for w in stats.workers) == len(TASK_NAMES) * len(CTXS) * SAMPLES // BATCH


def test_interrupted_run_resumes_to_one_record_per_sample(cluster, local_results, tmp_path):
    with pytest.raises(ray.exceptions.RayTaskError, match="worker killed"):
        _run_ray(tmp_path, load_failing)
    files = sorted(tmp_path.rglob("samples.jsonl"))
    first = {r["hash"]: r for f in files for r in read_records(f)}
    assert 0 < len(first) < len(TASK_NAMES) * len(CTXS) * SAMPLES
    with files[0].open("a") as f:
        f.write('{"id": "torn')  # a record cut off by the kill
    _run_ray(tmp_path)
    assert _results(tmp_path) == local_results
    after = {r["hash"]: r for f in files for r in read_records(f)}
    assert all(after[h] == r for h, r in first.items()), "a recorded sample was redone"


def test_a_model_that_does_not_load_on_the_worker_raises_the_user_error(cluster):
    with pytest.raises(ModelError, match="no model at /nowhere"):
        RemoteModel("hf:/nowhere", load_missing)


@pytest.mark.slow
def test_ray_address_that_does_not_answer_exits_2_quickly(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once we leave: nothing listens there
    t0 = time.perf_counter()
    evals = Path(sys.executable).parent / "evals"
    proc = subprocess.run([str(evals), "run", TASK_NAMES[0], "--ctx", "1k", "--model", "hf:/nowhere",
                           "--executor", "ray", "--ray-address", f"127.0.0.1:{port}", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert f"127.0.0.1:{port} does not answer" in proc.stderr and "Traceback" not in proc.stderr
    assert time.perf_counter() - t0 < 60
