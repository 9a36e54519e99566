"""GGUF files (llama.cpp's format) as Hugging Face models: ``hf:/path/model.gguf`` loads one directly.

transformers reads the config, the tokenizer and the weights from the file itself (its ``gguf``
extra: ``pip install 'longctx-evals[gguf]'``) and dequantizes the weights to ``dtype`` on load.
``save_pretrained`` refuses a model loaded this way, so ``export`` builds a plain model from the
config and copies the dequantized weights into it; from the command line::

    python -m longctx.models.gguf model.gguf out_dir/   # a float32 folder that hf:out_dir/ loads
"""
from __future__ import annotations

import sys
from pathlib import Path

from longctx.models.errors import ModelError


def is_gguf(path: Path) -> bool:
    return path.suffix.lower() == ".gguf"


def source(path: Path) -> tuple[str, dict]:
    """``from_pretrained`` arguments for a model path: a GGUF file is its folder plus ``gguf_file``."""
    if not is_gguf(path):
        return str(path), {}
    if not path.is_file():
        raise ModelError(f"GGUF file {str(path)!r} does not exist")
    try:
        import gguf  # noqa: F401  (transformers' GGUF reader needs it)
    except ImportError:
        raise ModelError(f"reading {path.name} needs the gguf package: pip install 'longctx-evals[gguf]'") from None
    return str(path.parent), {"gguf_file": path.name}


def export(gguf_path: Path, out: Path) -> Path:
    """Dequantize ``gguf_path`` into a plain float32 transformers folder ``out`` (config, weights, tokenizer)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    where, kw = source(gguf_path)
    if not kw:
        raise ModelError(f"{gguf_path} is not a .gguf file")
    try:
        config = AutoConfig.from_pretrained(where, **kw)
        loaded = AutoModelForCausalLM.from_pretrained(where, dtype=torch.float32, **kw)
        tokenizer = AutoTokenizer.from_pretrained(where, **kw)
    except Exception as e:
        raise ModelError(f"cannot read {gguf_path} as a transformers model: {e}") from None
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights below are plain float32
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict())
    plain.generation_config = loaded.generation_config
    out.mkdir(parents=True, exist_ok=True)
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m longctx.models.gguf MODEL.gguf OUT_DIR", file=sys.stderr)
        return 2
    try:
        out = export(Path(argv[0]).expanduser(), Path(argv[1]).expanduser())
    except ModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out}: load it with hf:{out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
