"""The long-context prefill memory script runs end to end (tiny models, CPU) and writes its table."""
from __future__ import annotations

import json
import sys

from models.zoo import prefill_memory


def test_cpu_smoke_writes_one_row_per_arch_and_length(tmp_path, monkeypatch):
    out = tmp_path / "mem.json"
    monkeypatch.setattr(sys, "argv", ["prefill_memory", "--cpu-smoke", "--arch", "linear,hyena", "--out", str(out)])
    prefill_memory.main()
    rows = json.loads(out.read_text())["rows"]
    assert [(r["arch"], r["n"]) for r in rows] == [("linear", 256), ("linear", 512), ("hyena", 256), ("hyena", 512)]
    assert all(r["seconds"] > 0 and r["weights"] == "random init" for r in rows)
