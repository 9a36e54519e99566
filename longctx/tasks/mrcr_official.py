"""OpenAI's published MRCR parquet files, read from a local path into Samples graded like ours.

The published rows hold ``prompt`` (a JSON list of ``{"role", "content"}`` messages ending with
the final ask), ``answer`` (the random string followed by the reply), ``random_string_to_prepend``,
``n_needles``, ``desired_msg_index``, ``total_messages`` and ``n_chars``. Nothing is downloaded:
point ``load_official`` at a ``.parquet`` file or a folder of them (e.g. a local copy of the
dataset's ``2needle/`` folder). Rows are read with pyarrow, one file at a time.

Each row becomes a Sample of task ``mrcr_official`` with metric ``mrcr`` (``tasks.mrcr.grade_mrcr``),
``prompt_tokens`` counted over the message contents in the given tokenizer and ``max_new_tokens``
set as for generated MRCR (``tasks.mrcr.sample_budget``),
``ctx`` the upper edge of its published token bin and ``meta["bin"]`` that bin.

    samples = load_official("~/data/mrcr/2needle", load_tokenizer("hf:/models/llama"), max_ctx=131072)
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from longctx.tasks.errors import TaskError
from longctx.tasks.mrcr import BINS, MRCRTask, sample_budget, token_bin
from longctx.tasks.sample import Sample, make_sample
from longctx.tasks.task import Split
from longctx.tasks.tokenizers import Tokenizer

TASK = "mrcr_official"
COLUMNS = ("prompt", "answer", "random_string_to_prepend", "n_needles", "desired_msg_index", "total_messages", "n_chars")


def parquet_files(path: str | Path) -> list[Path]:
    """The ``.parquet`` files at ``path`` (a file, or a folder searched recursively), sorted."""
    p = Path(path).expanduser()
    if not p.exists():
        raise TaskError(f"MRCR path {str(path)!r} does not exist")
    files = sorted(p.rglob("*.parquet")) if p.is_dir() else [p]
    if not files:
        raise TaskError(f"no .parquet files under {p}")
    return files


def _rows(file: Path) -> Iterator[dict]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(file)
    except Exception as e:
        raise TaskError(f"{file} is not a readable parquet file: {e}") from None
    missing = [c for c in COLUMNS if c not in table.column_names]
    if missing:
        raise TaskError(f"{file} lacks the MRCR columns {', '.join(missing)} (has {', '.join(table.column_names)})")
    yield from table.select(list(COLUMNS)).to_pylist()


def _bin_ctx(n_tokens: int) -> int:
    for _, hi in BINS:
        if n_tokens < hi:
            return hi
    return n_tokens


def load_official(path: str | Path, tokenizer: Tokenizer, n_needles: int | None = None, max_ctx: int | None = None,
                  limit: int | None = None) -> list[Sample]:
    """Samples from the parquet file(s) at ``path``; keep rows with ``n_needles`` needles and whose
    prompt plus answer budget fits in ``max_ctx`` tokens; at most ``limit`` samples."""
    out: list[Sample] = []
    for file in parquet_files(path):
        for row_index, row in enumerate(_rows(file)):
            if n_needles is not None and int(row["n_needles"]) != n_needles:
                continue
            s = _sample(file, row_index, row, tokenizer)
            if max_ctx is not None and s.prompt_tokens + s.max_new_tokens > max_ctx:
                continue
            out.append(s)
            if limit is not None and len(out) >= limit:
                return out
    return out


def _sample(file: Path, row_index: int, row: dict, tok: Tokenizer) -> Sample:
    try:
        messages = json.loads(row["prompt"])
        chat = [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]
    except (json.JSONDecodeError, TypeError, KeyError) as e:
        raise TaskError(f"{file} row {row_index}: prompt is not a JSON list of role/content messages ({e})") from None
    answer, prefix = str(row["answer"]), str(row["random_string_to_prepend"])
    counts = [len(ids) for ids in tok.encode_batch([m["content"] for m in chat] + [answer])]
    prompt_tokens, answer_tokens = sum(counts[:-1]), counts[-1]
    meta = {
        "bin": token_bin(prompt_tokens), "n_needles": int(row["n_needles"]), "random_prefix": prefix,
        "desired_msg_index": int(row["desired_msg_index"]), "total_messages": int(row["total_messages"]),
        "n_chars": int(row["n_chars"]), "source": file.name, "row": row_index, "n_messages": len(chat),
    }
    return make_sample(id=f"{TASK}-{file.stem}-{row_index}", task=TASK, ctx=_bin_ctx(prompt_tokens), tokenizer=tok.name,
                       answers=[answer], metric="mrcr", max_new_tokens=sample_budget(answer_tokens),
                       prompt_tokens=prompt_tokens, messages=chat, answer_prefix="", meta=meta)


@dataclass(frozen=True)
class OfficialConfig:
    path: str | None = None        # a .parquet file or a folder of them (e.g. a local copy of 8needle/)
    n_needles: int | None = None   # keep only rows with this many needles


class OfficialMRCRTask:
    """The published MRCR rows as a task: at ``ctx`` it serves the first ``n`` rows of the token bin
    that ends at ``ctx`` (sized by the given tokenizer). Run it with ``--set path=DIR``."""

    name, version, metric, answer_budget, multi_turn = TASK, "2", "mrcr", MRCRTask.answer_budget, True
    description = "OpenAI's published MRCR parquet files from a local path (--set path=DIR), rows of the bin ending at ctx"

    def __init__(self, config: OfficialConfig = OfficialConfig()):
        self.config = config

    def replace(self, **changes: Any) -> "OfficialMRCRTask":
        return OfficialMRCRTask(dataclasses.replace(self.config, **changes))

    def generate(self, ctx: int, n: int, seed: int, tokenizer: Tokenizer, split: Split = "eval",
                 overhead: int = 0, turn_overhead: int | None = None) -> Iterator[Sample]:
        """The published prompts are fixed: seed, split and overhead do not change them."""
        if self.config.path is None:
            raise TaskError("mrcr_official reads OpenAI's published MRCR parquet files: pass --set path=FILE_OR_FOLDER")
        rows = [s for s in load_official(self.config.path, tokenizer, self.config.n_needles) if s.ctx == ctx]
        if not rows:
            raise TaskError(f"no MRCR row under {self.config.path} falls in the token bin ending at {ctx} "
                            f"(bins end at {', '.join(str(hi) for _, hi in BINS)})")
        yield from rows[:n]
