"""Copy rows: exact length, deterministic, and in random rows every span appears twice with the first copy
unpredictable from the text around it; ``--copy-spans`` reaches the data and a wrong kind exits 2."""
from __future__ import annotations

import random
import re
import subprocess
import sys

import pytest

from longctx.evals.train import build_data, essay_bytes
from longctx.evals.train_copy import copy_row

TEXT = essay_bytes(0)


@pytest.mark.parametrize("kind", ["essay", "random"])
@pytest.mark.parametrize("width", [257, 1025])
def test_rows_are_exactly_width_bytes_and_deterministic(kind, width):
    rows = [copy_row(kind, TEXT, width, random.Random(f"{kind}{i}")) for i in range(30)]
    assert all(len(r) == width for r in rows)
    assert rows == [copy_row(kind, TEXT, width, random.Random(f"{kind}{i}")) for i in range(30)]


def test_short_random_rows_fit_their_spans():
    # 6 spans of up to 26 bytes, twice, are 312 bytes: a 257-byte row keeps fewer spans, never a negative filler
    rng = random.Random(3)
    rows = [copy_row("random", TEXT, 257, rng) for _ in range(3000)]
    assert all(len(r) == 257 for r in rows)


def test_random_rows_repeat_each_alphanumeric_span_once_at_distances_across_the_row():
    rng, distances = random.Random(7), []
    for _ in range(200):
        row = copy_row("random", TEXT, 1025, rng).decode()
        # a span: 8-24 letters and digits with at least one digit (the essay has no digits)
        spans = {m.group() for m in re.finditer(r"(?<= )[a-z0-9]{8,24}(?= )", row) if re.search(r"\d", m.group())}
        assert 1 <= len(spans) <= 6   # a span of letters only (7% of them) is not told apart from essay words here
        for s in spans:
            at = [m.start() for m in re.finditer(re.escape(f" {s} "), row)]
            assert len(at) == 2, (s, row)
            distances.append(at[1] - at[0])
    assert min(distances) < 64 and max(distances) > 700


def test_copy_spans_option_reaches_the_rows(tmp_path):
    from rich.console import Console

    data = build_data(["niah_single_1"], 600, 10, 0, 20.0, 0.5, Console(stderr=True), 1.0, 0.0, "random")
    assert data.recipe["copy_spans"] == "random" and data.recipe["copy_rows"] == 5
    text = bytes(int(t) for t in data.tokens[-1] if int(t) < 256).decode()
    assert re.search(r" [a-z0-9]*\d[a-z0-9]*", text)


def test_unknown_copy_spans_exits_2_with_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "longctx.evals", "train", "--size", "tiny", "--tasks", "niah_single_1",
                        "--seq-len", "600", "--rows", "4", "--steps", "1", "--batch", "1", "--device", "cpu",
                        "--copy-spans", "poems", "--out", str(tmp_path / "run"), "--no-progress"],
                       capture_output=True, text=True, env={**__import__("os").environ, "EVALS_CACHE": str(tmp_path / "c")})
    assert r.returncode == 2 and "unknown --copy-spans 'poems'" in r.stderr and "Traceback" not in r.stderr
