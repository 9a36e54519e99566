"""Write small results folders, bench and probe files in the formats of /work/briefs/formats.md
(the runner's and `evals bench`'s contract), for the plot and leaderboard tests."""
from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

from longctx.evals.ctx import fmt_ctx


def _point(mean: float, n: int) -> dict:
    return {"mean": mean, "stderr": math.sqrt(mean * (1 - mean) / n) if n > 1 else 0.0, "n": n}


def write_model(root: Path, spec: str, scores: dict[str, dict[int, float]], n: int = 20, tokenizer: str = "byte",
                depths: tuple[int, ...] = (), distances: tuple[int, ...] = (), salt: str = "") -> Path:
    """One model folder: per task and ctx a samples.jsonl and metrics.json, plus summary and manifest.

    scores: task -> ctx -> mean (0..1); ``depths`` go to niah_* tasks, ``distances`` to *decay* tasks.
    ``salt`` changes the sample hashes (a different sample set)."""
    folder = root / re.sub(r"[^A-Za-z0-9._-]", "_", spec)
    summary: dict = {"model": spec, "tasks": {}, "ruler_average": {}, "average_method": "mean over RULER tasks"}
    for task, by_ctx in scores.items():
        for ctx, mean in by_ctx.items():
            cell = folder / task / fmt_ctx(ctx)
            cell.mkdir(parents=True, exist_ok=True)
            hashes = sorted(hashlib.sha256(f"{task}{ctx}{i}{tokenizer}{salt}".encode()).hexdigest() for i in range(n))
            with open(cell / "samples.jsonl", "w") as f:
                for i, h in enumerate(hashes):
                    f.write(json.dumps({"id": f"{task}-{i}", "hash": h, "task": task, "ctx": ctx, "model": spec,
                                        "score": float(i < round(mean * n)), "meta": {}}) + "\n")
            metrics = {"model": spec, "task": task, "task_version": "1", "ctx": ctx, "metric": "match",
                       **_point(mean, n), "tokenizer": tokenizer, "seed": 0, "complete": True,
                       "sample_set_hash": hashlib.sha256("".join(hashes).encode()).hexdigest()}
            if depths and task.startswith("niah"):
                metrics["by_depth"] = {str(d): _point(max(0.0, mean - d / 400), n) for d in depths}
            if distances and "decay" in task:
                metrics["by_distance"] = {str(t): _point(max(0.0, mean * (1 - t / (4 * max(distances)))), n) for t in distances if t < ctx}
            (cell / "metrics.json").write_text(json.dumps(metrics))
            summary["tasks"].setdefault(task, {})[str(ctx)] = _point(mean, n)
    ctxs = sorted({c for by_ctx in scores.values() for c in by_ctx})
    for ctx in ctxs:
        vals = [by_ctx[ctx] for by_ctx in scores.values() if ctx in by_ctx]
        summary["ruler_average"][str(ctx)] = sum(vals) / len(vals)
    (folder / "summary.json").write_text(json.dumps(summary))
    manifest = {"command": f"evals run --model {spec} --tasks {','.join(scores)} --ctx 4k-16k", "suite_version": "0.1.0",
                "git_hash": "0123abc", "packages": {"torch": "2.13"}, "seed": 0, "samples": n, "tokenizer": tokenizer,
                "hardware": {"cpu": "test", "gpu": None}, "started": "2026-11-23T10:00:00Z", "ended": "2026-11-23T10:05:00Z",
                "model": spec, "generation": {"max_new_tokens": 32, "answer_prefix": True, "greedy": True}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def write_bench(path: Path, kernels: dict[str, float], ns: tuple[int, ...] = (1024, 2048, 4096, 8192)) -> Path:
    """A bench file where kernel k takes 1e-6 * n^kernels[k] ms and n^e/1e9 GB."""
    rows = [{"kernel": k, "n": n, "ms": 1e-6 * n**e, "tflops": None, "peak_mem_gb": 0.01 + n ** min(e, 1.5) / 1e6,
             "ratio_vs_sdpa_flash": None, "ratio_vs_cudnn": None} for k, e in kernels.items() for n in ns]
    data = {"kind": "bench", "device": "NVIDIA H100 (synthetic)", "dtype": "bfloat16",
            "shape": {"B": 1, "H": 8, "H_kv": 8, "D": 64}, "results": rows,
            "exponents": {k: {"exponent": e, "fit_range": [ns[0], ns[-1]]} for k, e in kernels.items()}}
    path.write_text(json.dumps(data))
    return path


def write_probe(path: Path, accuracy: dict[str, float]) -> Path:
    rows = [{"kernel": k, "n": 4096, "distance": d, "accuracy": a, "trials": 50} for k, a in accuracy.items() for d in (256, 2048)]
    path.write_text(json.dumps({"kind": "probe", "device": "synthetic", "results": rows}))
    return path
