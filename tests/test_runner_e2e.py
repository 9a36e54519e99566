"""`evals run` end to end on a tiny Llama built locally: records, metrics, manifest, resume after a
real SIGKILL, and the bad inputs a user can give (exit 2, one line, no traceback)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from longctx.evals.store import model_slug, read_records


def evals(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-m", "longctx.evals", *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    if check and p.returncode != 0:
        raise AssertionError(f"evals {' '.join(args)} exited {p.returncode}:\n{p.stderr[-3000:]}")
    return p


@pytest.fixture()
def env_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALS_CACHE", str(tmp_path / "cache"))
    return tmp_path


def cell(out: Path, spec: str, task: str, ctx: str) -> Path:
    return out / model_slug(spec) / task / ctx


@pytest.mark.slow
def test_run_records_metrics_manifest_and_resume(tiny_llama_dir, env_cache):
    spec = f"hf:{tiny_llama_dir}"
    out = env_cache / "results"
    p = evals("run", "niah_single_1,vt", "--ctx", "1k", "--model", spec, "--samples", "3", "--out", str(out), "--json", cwd=env_cache)
    summary = json.loads(p.stdout)
    assert set(summary["tasks"]) == {"niah_single_1", "vt"} and "1024" in summary["ruler_average"]
    for task in ("niah_single_1", "vt"):
        records = read_records(cell(out, spec, task, "1k") / "samples.jsonl")
        assert len(records) == 3 and len({r["hash"] for r in records}) == 3
        r = records[0]
        assert r["model"] == spec and r["sent"]["template"] == "chat" and r["sent"]["prefill"]
        assert 0 < r["prompt_tokens"] <= 1024 - r["sent"]["max_new_tokens"]
        m = json.loads((cell(out, spec, task, "1k") / "metrics.json").read_text())
        assert m["n"] == 3 and m["complete"] and 0 <= m["mean"] <= 1
    man = json.loads((out / model_slug(spec) / "manifest.json").read_text())
    assert man["ended"] and man["git_hash"] is not None and man["tokenizer"].startswith("hf:")
    assert "torch" in man["packages"] and "niah_single_1,vt" in man["command"]
    # a rerun of the same command sends nothing and changes nothing
    before = (cell(out, spec, "vt", "1k") / "samples.jsonl").read_bytes()
    evals("run", "niah_single_1,vt", "--ctx", "1k", "--model", spec, "--samples", "3", "--out", str(out), cwd=env_cache)
    assert (cell(out, spec, "vt", "1k") / "samples.jsonl").read_bytes() == before


@pytest.mark.slow
def test_sigkill_then_rerun_gives_one_record_per_sample_and_the_same_scores(tiny_llama_dir, env_cache):
    spec, n = f"hf:{tiny_llama_dir}", 10
    args = ["run", "niah_single_2", "--ctx", "1k", "--model", spec, "--samples", str(n), "--max-new-tokens", "24"]
    killed, clean = env_cache / "killed", env_cache / "clean"
    records_file = cell(killed, spec, "niah_single_2", "1k") / "samples.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "longctx.evals", *args, "--out", str(killed)], cwd=env_cache,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if records_file.exists() and records_file.read_bytes().count(b"\n") >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = read_records(records_file)
    assert 3 <= len(partial) < n
    evals(*args, "--out", str(killed), cwd=env_cache)
    evals(*args, "--out", str(clean), cwd=env_cache)
    resumed = {r["hash"]: r["score"] for r in read_records(records_file)}
    assert len(read_records(records_file)) == n == len(resumed)
    uninterrupted = {r["hash"]: r["score"] for r in read_records(cell(clean, spec, "niah_single_2", "1k") / "samples.jsonl")}
    assert resumed == uninterrupted
    m1 = json.loads((records_file.parent / "metrics.json").read_text())
    m2 = json.loads((cell(clean, spec, "niah_single_2", "1k") / "metrics.json").read_text())
    assert (m1["mean"], m1["n"], m1["sample_set_hash"]) == (m2["mean"], m2["n"], m2["sample_set_hash"])


def test_ctx_above_the_model_maximum_is_skipped_or_refused(tiny_llama_dir, env_cache, evals_cli):
    spec = f"hf:{tiny_llama_dir}"  # max_position_embeddings = 2048
    out = str(env_cache / "r")
    code, _, err = evals_cli(["run", "niah_single_1", "--ctx", "1k,4k", "--model", spec, "--samples", "1", "--out", out])
    assert code == 0 and "skipping" in err and "4k" in err
    code, _, err = evals_cli(["run", "niah_single_1", "--ctx", "1k,4k", "--model", spec, "--samples", "1", "--out", out, "--strict"])
    assert code == 2 and "4k" in err


@pytest.mark.parametrize("args, says", [
    (["run", "niah_singel_1", "--model", "hf:/nowhere"], "did you mean 'niah_single_1'"),
    (["run", "ruler", "--ctx", "128q", "--model", "hf:/nowhere"], "128q"),
    (["run", "ruler", "--ctx", "-4k", "--model", "hf:/nowhere"], "-4k"),
    (["run", "ruler", "--ctx", "4k", "--model", "hf:/nowhere/at/all"], "/nowhere/at/all"),
    (["run", "ruler", "--ctx", "4k", "--model", "hugface:x"], "unknown scheme"),
    (["generate", "vt", "--ctx", "1k", "--tokenizer", "hf:/no/such/tokenizer"], "does not exist"),
])
def test_bad_input_is_one_clear_line_and_exit_2(args, says, evals_cli, env_cache):
    code, _, err = evals_cli(args)
    assert code == 2, err
    assert says in err and "Traceback" not in err


def test_unwritable_output_and_corrupt_results_exit_2(tiny_llama_dir, env_cache, evals_cli):
    spec = f"hf:{tiny_llama_dir}"
    blocker = env_cache / "file"
    blocker.write_text("not a folder")
    code, _, err = evals_cli(["run", "vt", "--ctx", "1k", "--model", spec, "--samples", "1", "--out", str(blocker)])
    assert code == 2 and "file" in err
    out = env_cache / "r"
    bad = cell(out, spec, "vt", "1k") / "samples.jsonl"
    bad.parent.mkdir(parents=True)
    bad.write_text("garbage\n{}\n")
    code, _, err = evals_cli(["run", "vt", "--ctx", "1k", "--model", spec, "--samples", "1", "--out", str(out)])
    assert code == 2 and "samples.jsonl:1" in err


@pytest.mark.parametrize("task", ["niah_single_1", "mrcr_4needle"])
def test_prompts_with_the_models_chat_template_fill_ctx_without_passing_it(tiny_llama_dir, env_cache, task):
    from longctx.evals.runner import Job, RunConfig, job_samples, request_for, template_overhead
    from longctx.models.load import load_model
    from longctx.tasks.sizing import tolerance
    from longctx.tasks.tokenizers import load_tokenizer

    model = load_model(f"hf:{tiny_llama_dir}")
    tok = load_tokenizer(model.tokenizer_spec)
    cfg = RunConfig([task], [2048], samples=2)
    overhead = template_overhead(model, tok, answer_prefix=True)
    assert overhead.prompt > 0 and overhead.per_message > 0  # the tiny model's template adds role tags
    for s in job_samples(Job(task, 2048), cfg, tok, overhead):
        sent = model.count_prompt_tokens(request_for(s, cfg)) + s.max_new_tokens
        assert 2048 - tolerance(2048) - 2 * len(s.chat()) <= sent <= 2048, (task, sent)


def test_without_model_the_shipped_default_runs_with_its_small_sample_count_and_finds_the_needle(env_cache, evals_cli):
    from longctx.evals.run import DEFAULT_MODEL, DEFAULT_MODEL_SAMPLES

    out = env_cache / "r"
    code, _, err = evals_cli(["run", "niah_single_1", "--ctx", "1k", "--out", str(out)])
    assert code == 0, err
    assert f"{DEFAULT_MODEL}: {DEFAULT_MODEL_SAMPLES} sample(s)" in err
    records = read_records(cell(out, DEFAULT_MODEL, "niah_single_1", "1k") / "samples.jsonl")
    assert len(records) == DEFAULT_MODEL_SAMPLES and records[0]["model"] == DEFAULT_MODEL
    assert records[0]["score"] == 1.0, records[0]["prediction"]   # the default is a trained retriever, not a stand-in


def test_the_shipped_default_finds_single_needles_at_4x_its_training_length(env_cache, evals_cli):
    """At 4K its sparse layer routes each query to 8 of 64 key blocks: the router, its cached keys and the
    block-inverted inference path must all hold for the needle to come back (the H100 scored 10/10 on both here;
    at 8K, past the retrained default's reach, 6/10 and 8/10)."""
    from longctx.evals.run import DEFAULT_MODEL

    out = env_cache / "r"
    code, _, err = evals_cli(["run", "niah_single_1,niah_single_2", "--ctx", "4k", "--samples", "2", "--out", str(out)])
    assert code == 0, err
    for task in ("niah_single_1", "niah_single_2"):
        records = read_records(cell(out, DEFAULT_MODEL, task, "4k") / "samples.jsonl")
        assert [r["score"] for r in records] == [1.0, 1.0], [r["prediction"] for r in records]
