"""Tokenizers that size prompts: byte-level (built in), Hugging Face from a local path, tiktoken.

Spec strings: ``byte``, ``hf:PATH`` (a tokenizer.json file or a directory holding one, any
directory ``transformers.AutoTokenizer`` loads offline, or a GGUF model file, whose vocabulary
transformers reads with the ``gguf`` package), ``tiktoken:ENCODING`` (e.g.
``tiktoken:cl100k_base``, needs its file in ``TIKTOKEN_CACHE_DIR``) or ``tiktoken:PATH.tiktoken``.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Protocol, Sequence

from longctx.tasks.errors import TaskError


class Tokenizer(Protocol):
    """What task generators need of a tokenizer. ``name`` goes into every sample and its hash."""

    name: str

    def encode(self, text: str) -> list[int]: ...

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


class ByteTokenizer:
    """UTF-8 bytes as tokens: one token per byte, ids 0-255 (the zoo models' vocabulary)."""

    name = "byte"

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def count(self, text: str) -> int:
        return len(text.encode("utf-8"))

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(i for i in ids if 0 <= i < 256).decode("utf-8", errors="replace")


class HFTokenizer:
    """A Hugging Face fast tokenizer read from local files (no hub access); no special tokens added."""

    def __init__(self, path: str | Path):
        from tokenizers import Tokenizer as RustTokenizer

        p = Path(path).expanduser()
        file = p / "tokenizer.json" if p.is_dir() else p
        if not p.exists():
            raise TaskError(f"tokenizer path {str(path)!r} does not exist")
        if file.suffix.lower() == ".gguf":
            self._tok = _auto_tokenizer_backend(p.parent, gguf_file=p.name)
            digest = hashlib.sha256(self._tok.to_str().encode()).hexdigest()[:12]
        elif file.is_file():
            try:
                self._tok = RustTokenizer.from_file(str(file))
            except Exception as e:  # the Rust library raises a bare Exception on bad files
                raise TaskError(f"{file} is not a Hugging Face tokenizer.json: {e}") from None
            digest = hashlib.sha256(file.read_bytes()).hexdigest()[:12]
        else:
            self._tok = _auto_tokenizer_backend(p)
            digest = hashlib.sha256(self._tok.to_str().encode()).hexdigest()[:12]
        self.name = f"hf:{p.name or p}@{digest}"

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Sequence[int]) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=False)


def _auto_tokenizer_backend(path: Path, **kw):
    """The Rust tokenizer behind a directory (or ``gguf_file=`` in it) that only transformers loads (offline)."""
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True, **kw)
    except Exception as e:
        raise TaskError(f"no tokenizer could be loaded from {path}: {e}") from None
    if not getattr(tok, "is_fast", False):
        raise TaskError(f"{path} holds a slow (Python) tokenizer; convert it to tokenizer.json first")
    return tok.backend_tokenizer


class TiktokenTokenizer:
    """An OpenAI tiktoken encoding from files already on disk (never downloaded here)."""

    def __init__(self, spec: str):
        try:
            import tiktoken
            from tiktoken.load import load_tiktoken_bpe
        except ImportError:
            raise TaskError("tiktoken is not installed: pip install tiktoken") from None
        path = Path(spec).expanduser()
        try:
            if path.suffix == ".tiktoken":
                if not path.is_file():
                    raise TaskError(f"tiktoken file {spec!r} does not exist")
                ranks = load_tiktoken_bpe(str(path))
                self._enc = tiktoken.Encoding(
                    name=path.stem,
                    pat_str=r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",
                    mergeable_ranks=ranks,
                    special_tokens={},
                )
            else:
                self._enc = tiktoken.get_encoding(spec)
        except TaskError:
            raise
        except Exception as e:
            raise TaskError(
                f"tiktoken encoding {spec!r} is not available offline ({e}); "
                "put its file in TIKTOKEN_CACHE_DIR or pass tiktoken:PATH.tiktoken"
            ) from None
        self.name = f"tiktoken:{self._enc.name}"

    def encode(self, text: str) -> list[int]:
        return self._enc.encode_ordinary(text)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return self._enc.encode_ordinary_batch(list(texts))

    def decode(self, ids: Sequence[int]) -> str:
        return self._enc.decode(list(ids))


@lru_cache(maxsize=8)
def load_tokenizer(spec: str) -> Tokenizer:
    """``byte`` | ``hf:PATH`` | ``tiktoken:NAME_OR_FILE`` -> a Tokenizer (cached per spec)."""
    if spec == "byte":
        return ByteTokenizer()
    scheme, _, rest = spec.partition(":")
    if scheme == "hf" and rest:
        return HFTokenizer(rest)
    if scheme == "tiktoken" and rest:
        return TiktokenTokenizer(rest)
    if Path(spec).expanduser().exists():
        return HFTokenizer(spec)
    raise TaskError(f"unknown tokenizer spec {spec!r}: use 'byte', 'hf:PATH' or 'tiktoken:NAME'")
