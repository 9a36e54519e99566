"""Every ``evals`` subcommand over bad and odd inputs: each ends in one clear line and exit status 2
(or does its job and exits 0), never in a traceback.

The inputs are those a newcomer meets: empty and decay-only results folders, files that are not what
their name says, a dead server and one whose ``/models`` does not list the model, a GGUF that is not
one, options that do not parse, sizes that do not fit this machine, an in-repo attention without
Triton installed, and the package installed from its wheel (package data read from site-packages)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from synthetic_results import write_model

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


class NoModelsHandler(BaseHTTPRequestHandler):
    """A server whose ``/v1/models`` lists another model and has no ``/props``."""

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        body = json.dumps({"data": [{"id": "someone-else"}]} if self.path == "/v1/models" else {"error": "no"}).encode()
        self.send_response(200 if self.path == "/v1/models" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("odd")
    (root / "empty").mkdir()
    decay = write_model(root / "decay_root", "zoo:dense", {"decay_distance": {1024: 0.6, 2048: 0.4}}, distances=(16, 32, 66))
    (decay / "summary.json").unlink()  # as `evals run decay` leaves it: no RULER average at all
    (root / "not.json").write_text("{ this is not json")
    (root / "fake.gguf").write_text("not a gguf file")
    (root / "list.json").write_text("[1, 2, 3]")
    server = ThreadingHTTPServer(("127.0.0.1", 0), NoModelsHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    yield {"root": root, "empty": root / "empty", "decay": root / "decay_root", "not_json": root / "not.json",
           "fake_gguf": root / "fake.gguf", "list_json": root / "list.json", "dead": dead,
           "no_models": server.server_address[1]}
    server.shutdown()
    server.server_close()


def cases(f: dict, tiny: Path) -> list[tuple[str, list[str], int]]:
    """(id, argv, expected exit status)."""
    out, ghost = str(f["root"] / "out"), "/nonexistent/path"
    dead, nomodels = f"http://127.0.0.1:{f['dead']}/v1", f"http://127.0.0.1:{f['no_models']}/v1"
    gen = ["generate", "niah_single_1", "--ctx", "1k", "-n", "1", "-o", out]
    return [
        ("run-bad-ctx", ["run", "niah_single_1", "--ctx", "abc"], 2),
        ("run-zero-ctx", ["run", "niah_single_1", "--ctx", "0"], 2),
        ("run-unknown-task", ["run", "nosuchtask", "--ctx", "1k"], 2),
        ("run-unknown-scheme", ["run", "niah_single_1", "--model", "foo:bar"], 2),
        ("run-missing-path-with-brackets", ["run", "niah_single_1", "--model", "hf:/no/such/[model]"], 2),
        ("run-fake-gguf", ["run", "niah_single_1", "--model", f"hf:{f['fake_gguf']}"], 2),
        ("run-dead-server", ["run", "niah_single_1", "--model", f"openai:m@{dead}"], 2),
        ("run-server-without-models-entry", ["run", "niah_single_1", "--model", f"openai:m@{nomodels}"], 2),
        ("run-extra-not-json", ["run", "niah_single_1", "--model", f"openai:m@{dead},max_context=8k,extra={{bad"], 2),
        ("run-spec-longer-than-a-file-name", ["run", "niah_single_1", "--ctx", "1k", "-n", "1", "--tokenizer", "byte", "-o", out,
                                               "--model", f"openai:m@{nomodels},max_context=8k,retries=0,extra=" +
                                               json.dumps({"stop": [f"stop word {i}" for i in range(30)]}, separators=(",", ":"))], 2),
        ("run-bad-dtype", ["run", "niah_single_1", "--model", f"hf:{tiny},dtype=float8"], 2),
        ("run-bad-option", ["run", "niah_single_1", "--model", f"hf:{tiny},colour=blue"], 2),
        ("run-unknown-attention", ["run", "niah_single_1", "--model", f"hf:{tiny},attn=magic"], 2),
        ("run-ctx-over-model", ["run", "niah_single_1", "--ctx", "1m", "--model", f"hf:{tiny}", "-o", out], 2),
        ("run-bad-executor", ["run", "niah_single_1", "--executor", "slurm"], 2),
        ("run-bad-tokenizer", ["run", "niah_single_1", "--model", f"hf:{tiny}", "--tokenizer", "nosuch:x", "-o", out], 2),
        ("generate-depth-not-a-number", [*gen, "--set", "depth=abc"], 2),
        ("generate-depth-out-of-range", [*gen, "--set", "depth=150"], 2),
        ("generate-set-on-a-task-without-options", ["generate", "mrcr_2needle", "--ctx", "4k", "-n", "1", "-o", out,
                                                    "--set", "n_needles=3"], 2),
        ("generate-depths-not-numbers", ["generate", "decay_depth", "--ctx", "1k", "-n", "1", "-o", out, "--set", "depths=abc"], 2),
        ("generate-numeric-haystack-name", [*gen, "--set", "haystack=12"], 2),
        ("generate-unknown-option", [*gen, "--set", "colour=blue"], 2),
        ("generate-set-without-equals", [*gen, "--set", "depth"], 2),
        ("generate-missing-haystack", [*gen, "--haystack", ghost], 2),
        ("generate-bad-format", [*gen, "--format", "parquet"], 2),
        ("generate-bad-tokenizer", [*gen, "--tokenizer", f"hf:{ghost}"], 2),
        ("generate-bad-split", [*gen, "--split", "holdout"], 2),
        ("generate-ctx-too-small", ["generate", "niah_single_1", "--ctx", "16", "-n", "1", "-o", out], 2),
        ("tasks-json", ["tasks", "--json"], 0),
        ("plot-empty-results", ["plot", "all", "--results", str(f["empty"]), "--out", out], 2),
        ("plot-decay-only-all", ["plot", "all", "--results", str(f["decay"]), "--out", out, "--format", "png"], 0),
        ("plot-decay-only-length", ["plot", "length", "--results", str(f["decay"]), "--out", out, "--format", "png"], 0),
        ("plot-missing-results", ["plot", "all", "--results", ghost, "--out", out], 2),
        ("plot-unknown-kind", ["plot", "pie", "--results", str(f["decay"]), "--out", out], 2),
        ("plot-bad-format", ["plot", "length", "--results", str(f["decay"]), "--out", out, "--format", "gif"], 2),
        ("plot-bench-not-json", ["plot", "cost", "--bench", str(f["not_json"]), "--out", out], 2),
        ("plot-bench-a-list", ["plot", "cost", "--bench", str(f["list_json"]), "--out", out], 2),
        ("plot-trilemma-empty", ["plot", "trilemma", "--results", str(f["empty"]), "--out", out], 2),
        ("board-build-empty", ["leaderboard", "build", "--results", str(f["empty"]), "--out", out], 2),
        ("board-build-decay-only", ["leaderboard", "build", "--results", str(f["decay"]), "--out", out, "--name", "decay"], 0),
        ("board-publish-decay-only", ["leaderboard", "publish", str(f["root"] / "out" / "decay.json")], 0),
        ("board-build-out-is-a-file", ["leaderboard", "build", "--results", str(f["decay"]), "--out", str(f["not_json"])], 2),
        ("plot-out-is-a-file", ["plot", "length", "--results", str(f["decay"]), "--out", str(f["not_json"]), "--format", "png"], 2),
        ("board-build-missing", ["leaderboard", "build", "--results", ghost, "--out", out], 2),
        ("board-publish-not-json", ["leaderboard", "publish", str(f["not_json"]), "--out", out], 2),
        ("board-publish-a-list", ["leaderboard", "publish", str(f["list_json"]), "--out", out], 2),
        ("board-merge-not-json", ["leaderboard", "merge", str(f["not_json"]), str(f["list_json"]), "--out", out], 2),
        ("merge-empty", ["merge", str(f["empty"]), "--into", str(f["root"] / "merged")], 2),
        ("merge-missing", ["merge", ghost, "--into", str(f["root"] / "merged")], 2),
        ("bench-unknown-kernel", ["bench", "--kernels", "nosuch"], 2),
        ("bench-bad-n", ["bench", "--n", "abc"], 2),
        ("bench-bad-head-dim", ["bench", "--D", "7"], 2),
        ("bench-bad-dtype", ["bench", "--dtype", "fp8"], 2),
        ("probe-unknown-kernel", ["probe", "--kernels", "nosuch"], 2),
        ("probe-bad-n", ["probe", "--n", "0"], 2),
        ("probe-missing-model", ["probe", "--model", f"hf:{ghost},attn=dsa"], 2),
        ("train-unknown-arch", ["train", "--arch", "nosuch", "-o", out], 2),
        ("train-unknown-size", ["train", "--size", "huge", "-o", out], 2),
    ]


def check(case_id: str, argv: list[str], want: int, evals_cli) -> None:
    try:
        code, out, err = evals_cli(argv)
    except Exception as e:  # anything that escapes main() is a traceback for the user
        pytest.fail(f"{case_id}: `evals {' '.join(argv)}` raised {type(e).__name__}: {e}")
    assert "Traceback" not in out + err, f"{case_id}: {err[-1500:]}"
    assert code == want, f"{case_id}: exit {code}, wanted {want}: {err[-800:]}"
    if want == 2 and err.lstrip().startswith("error:"):
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1, f"{case_id}: the error is not one line: {err}"


def test_every_subcommand_fails_cleanly_on_odd_input(folders, tiny_llama_dir, evals_cli):
    all_cases = cases(folders, tiny_llama_dir)
    assert len(all_cases) >= 30 and {a[0] for _, a, _ in all_cases} >= {
        "run", "generate", "tasks", "plot", "leaderboard", "merge", "bench", "probe", "train"}
    for case_id, argv, want in all_cases:
        check(case_id, argv, want, evals_cli)


def test_brackets_in_a_message_survive(evals_cli):
    code, _, err = evals_cli(["run", "niah_single_1", "--model", "hf:/no/such/[model]"])
    assert code == 2 and "[model]" in err


def test_dead_server_is_reported_at_once(folders, evals_cli):
    import time

    t0 = time.perf_counter()
    code, _, err = evals_cli(["run", "niah_single_1", "--model", f"openai:m@http://127.0.0.1:{folders['dead']}/v1,max_context=8k"])
    assert code == 2 and "is the server running" in err and time.perf_counter() - t0 < 10


def test_a_cpu_bench_that_would_not_fit_is_refused_in_one_line(evals_cli):
    import torch

    if torch.cuda.is_available():
        pytest.skip("the CPU estimate applies to CPU runs only")
    code, _, err = evals_cli(["bench", "--kernels", "flash_dense", "--n", "1m"])
    assert code == 2 and "refused on the CPU" in err and len(err.strip().splitlines()) == 1


def test_in_repo_attention_without_triton_is_one_line_or_runs(tiny_llama_dir, evals_cli, monkeypatch, tmp_path):
    """``hf:PATH,attn=dsa`` on a machine without Triton: float64 references on the CPU, or one clear line."""
    monkeypatch.setitem(sys.modules, "triton", None)  # `import triton` now raises ImportError
    for name in [m for m in sys.modules if m.startswith("longctx.kernels") or m == "longctx.models.attn_swap"]:
        monkeypatch.delitem(sys.modules, name)
    argv = ["run", "niah_single_1", "--ctx", "1k", "-n", "1", "--max-new-tokens", "2", "-o", str(tmp_path),
            "--model", f"hf:{tiny_llama_dir},device=cpu,attn=dsa:topk=16"]
    check("dsa-without-triton", argv, 0, lambda a: _either(evals_cli, a))


def _either(evals_cli, argv):
    code, out, err = evals_cli(argv)
    return (0 if code in (0, 2) else code), out, err


def test_wheel_install_runs_its_commands(tmp_path):
    """Build the wheel, install it alone into a folder and run the CLI from elsewhere: the package data
    (task catalog, board schema and page) comes from the installed copy."""
    wheel_dir, site = tmp_path / "wheel", tmp_path / "site"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                            str(wheel_dir), str(REPO)], capture_output=True, text=True)
    if build.returncode:
        pytest.skip(f"cannot build the wheel here: {build.stderr[-300:]}")
    (wheel,) = wheel_dir.glob("*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)], check=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                                                                      if p and Path(p).resolve() != REPO]])}
    board = tmp_path / "board"
    write_model(tmp_path / "results", "zoo:dense", {"niah_single_1": {1024: 0.5}, "vt": {1024: 0.25}}, n=4)
    for argv, want in ((["tasks"], 0), (["run", "nosuchtask"], 2),
                       (["leaderboard", "build", "--results", str(tmp_path / "results"), "--out", str(board)], 0),
                       (["leaderboard", "publish", str(board / "main.json")], 0)):
        done = subprocess.run([sys.executable, "-m", "longctx.evals", *argv], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert "Traceback" not in done.stderr and done.returncode == want, (argv, done.stderr[-1500:])
    assert (board / "index.html").read_text().count("board-data") >= 1
    assert str(site) in subprocess.run([sys.executable, "-c", "import longctx; print(longctx.__file__)"], cwd=tmp_path, env=env,
                                       capture_output=True, text=True).stdout
