"""``evals bench`` and ``evals probe`` on the CPU at tiny n: JSON in the documented format, bad input exits 2."""
import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from longctx.evals import bench as bench_mod
from longctx.evals import probe as probe_mod
from longctx.evals.cli import app, main


def test_bench_writes_the_documented_json(tmp_path):
    out = tmp_path / "bench.json"
    res = CliRunner().invoke(app, ["bench", "--n", "128,256", "--kernels", "flash_dense,ssa_select", "--H", "2",
                                   "--H-kv", "1", "--D", "32", "--out", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["kind"] == "bench" and data["device"] == "cpu" and data["dtype"] == "float32"
    assert data["shape"] == {"B": 1, "H": 2, "H_kv": 1, "D": 32}
    rows = data["results"]
    assert {(r["kernel"], r["n"]) for r in rows} == {(k, n) for k in ("flash_dense", "ssa_select") for n in (128, 256)}
    for r in rows:
        assert set(r) == {"kernel", "n", "ms", "tflops", "peak_mem_gb", "ratio_vs_sdpa_flash", "ratio_vs_cudnn"}
        assert r["ms"] > 0 and r["tflops"] > 0
        assert r["ratio_vs_sdpa_flash"] is None and r["ratio_vs_cudnn"] is None  # no SDPA GPU backends on a CPU
    assert set(data["exponents"]) == {"flash_dense", "ssa_select"}
    assert data["exponents"]["flash_dense"]["fit_range"] == [128, 256]


def test_probe_writes_the_documented_json(tmp_path):
    out = tmp_path / "probe.json"
    res = CliRunner().invoke(app, ["probe", "--n", "1k", "--kernels", "flash_dense,flash_window", "--H", "1",
                                   "--D", "32", "--trials", "2", "--strength", "0.25,4", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["kind"] == "probe" and data["device"] == "cpu" and data["strengths"] == [0.25, 4.0]
    rows = data["results"]
    assert {r["distance"] for r in rows} == {0, 1, 4, 16, 64, 256, 1023}
    for r in rows:
        assert set(r) == {"kernel", "n", "strength", "distance", "accuracy", "recall_cos", "trials"}
        assert r["trials"] == (1 if r["distance"] == 1023 else 2)  # only query 1023 is 1023 tokens after a key
    # dense attention finds a strong needle at any distance, a faint one nowhere; a 4096-token window covers n=1k
    assert all(r["accuracy"] == (1.0 if r["strength"] == 4 else 0.0) for r in rows)
    assert data["reference"] == {"1024": 4.0}


def test_probe_reference_is_the_weakest_strength_dense_passes():
    rows = [probe_mod.ProbeRow("flash_dense", 4096, s, d, acc, acc, 64)
            for s, accs in ((1.0, (0.5, 0.9)), (1.5, (1.0, 0.98)), (2.0, (1.0, 1.0)), (3.0, (1.0, 1.0))) for d, acc in zip((100, 1000), accs)]
    rows += [probe_mod.ProbeRow("ssa", 4096, 1.0, 100, 1.0, 1.0, 64), probe_mod.ProbeRow("flash_dense", 8192, 2.0, 100, 0.5, 1.0, 64)]
    assert probe_mod.reference_strengths(rows) == {"4096": 2.0, "8192": None}


@pytest.mark.parametrize("text,want", [("1,1.25,1.5,2", [1.0, 1.25, 1.5, 2.0]), ("1-2:0.25", [1.0, 1.25, 1.5, 1.75, 2.0]),
                                       ("2,1-1.5:0.5", [1.0, 1.5, 2.0]), ("1-2", [1.0, 1.25, 1.5, 1.75, 2.0])])
def test_parse_strengths(text, want):
    assert probe_mod.parse_strengths(text) == want


def test_needles_sit_one_per_query_block():
    import torch

    n, ds = 4096, [0, 100, 1000, 3000, 4095]
    placed = probe_mod.place(n, ds, trials=6, group=2, gen=torch.Generator().manual_seed(3))
    ts = [t for _, tl, _ in placed for t in tl]
    keys = [t - d for d, tl, _ in placed for t in tl]
    assert len({t // probe_mod.QUERY_BLOCK for t in ts}) == len(ts) and len(set(keys)) == len(keys)
    assert all(0 <= k < t < n or k == t for k, t in zip(keys, ts))
    assert {d: len(tl) for d, tl, _ in placed} == {4095: 0, 3000: 12, 1000: 12, 100: 12, 0: 12}


def test_exponent_fit_recovers_a_power_law():
    pts = [(n, 3e-9 * n**1.5) for n in (1024, 2048, 4096, 8192, 16384)]
    slope, span = bench_mod.fit_exponent(pts)
    assert slope == pytest.approx(1.5, abs=1e-9) and span == [2048, 16384]


def test_collect_cases_tolerates_missing_families(monkeypatch):
    monkeypatch.setattr(bench_mod, "FAMILIES", ["flash", "no_such_family"])
    assert {"flash_dense", "flash_window", "flash_decode"} <= set(bench_mod.collect_cases())


@pytest.mark.parametrize("args,msg", [
    (["bench", "--n", "abc"], "bad context length"),
    (["bench", "--kernels", "nope", "--n", "128"], "unknown kernel"),
    (["bench", "--H", "3", "--H-kv", "2", "--n", "128"], "bad shape"),
    (["probe", "--dtype", "int8", "--n", "256"], "unknown dtype"),
    (["probe", "--n", "64"], "below 128"),
    (["probe", "--n", "256", "--strength", "1,-2"], "bad --strength"),
    (["probe", "--n", "256", "--strength", "2-1"], "bad --strength"),
    (["probe", "--n", "256", "--strength", "x"], "bad --strength"),
])
def test_bad_input_exits_2_with_one_line(monkeypatch, capsys, args, msg):
    monkeypatch.setattr(sys, "argv", ["evals", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert msg in err and "Traceback" not in err


@pytest.mark.slow
def test_bad_input_from_the_shell():
    proc = subprocess.run([sys.executable, "-m", "longctx.evals", "bench", "--n", "4k-1k"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "start is above the end" in proc.stderr
