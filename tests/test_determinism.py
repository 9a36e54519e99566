"""Every generated task gives the same bytes for the same seed in another process (another hash
seed), and different samples for different indices: the suite's sample sets are reproducible."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from longctx.tasks.registry import GROUPS, TASKS
from longctx.tasks.tokenizers import ByteTokenizer

CTX, N, SEED = 4096, 2, 7
_HASHES = f"""
import json, sys
from longctx.tasks.registry import TASKS
from longctx.tasks.tokenizers import ByteTokenizer
print(json.dumps({{n: [s.hash for s in TASKS[n].generate({CTX}, {N}, {SEED}, ByteTokenizer())] for n in sys.argv[1:]}}))
"""


@pytest.mark.slow
def test_same_seed_same_bytes_in_another_process():
    names = GROUPS["all"]
    here = {n: [s.hash for s in TASKS[n].generate(CTX, N, SEED, ByteTokenizer())] for n in names}
    out = subprocess.run([sys.executable, "-c", _HASHES, *names], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "12345"}, cwd=Path(__file__).parent.parent)
    assert json.loads(out.stdout) == here
    assert len({h for hs in here.values() for h in hs}) == N * len(names)
