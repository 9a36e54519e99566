"""How a Request becomes prompt text, shared by every backend that renders prompts itself.

Two templates, nothing else:

* ``chat``: the tokenizer's own chat template (``tokenizer.apply_chat_template(messages,
  add_generation_prompt=True)``), then the assistant prefill appended verbatim after the
  generation prompt. The text already holds whatever special tokens the template puts in
  (BOS included), so it is tokenized with ``add_special_tokens=False``.
* ``plain`` (base models, or a tokenizer without a chat template): the message contents in
  order, roles dropped, joined by one blank line (``"\\n\\n"``); a prefill follows the last
  content directly (``contents + prefill``), as RULER's ``base`` template appends its answer
  prefix (which brings its own leading space) straight after the question. It is tokenized with
  ``add_special_tokens=True`` so the tokenizer adds its BOS if it has that habit.

Both match RULER's ``template.py``: a chat model's prompt is its template around the task text with
the answer prefix appended after the assistant header; a base model's is the task text and prefix.

Never a hard-coded template of some other model family.
"""
from __future__ import annotations

from dataclasses import dataclass

from longctx.models.base import Request
from longctx.models.errors import ModelError


@dataclass(frozen=True)
class Rendered:
    """Prompt text and whether the tokenizer should add its special tokens when encoding it."""

    text: str
    add_special_tokens: bool


def plain_prompt(request: Request) -> str:
    """Contents joined by a blank line, then the prefill (if any) with nothing in between."""
    text = "\n\n".join(m["content"] for m in request.messages)
    if request.prefill:
        text += request.prefill
    return text


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def chat_prompt(tokenizer, request: Request, prefill: bool = True) -> str:
    """The tokenizer's chat template with the generation prompt, plus the prefill if ``prefill``."""
    try:
        text = tokenizer.apply_chat_template(request.messages, tokenize=False, add_generation_prompt=True)
    except Exception as e:  # jinja errors, e.g. a template that rejects a system turn
        raise ModelError(f"the tokenizer's chat template failed on this request: {e}") from None
    if prefill and request.prefill:
        text += request.prefill
    return text


def render(tokenizer, request: Request, template: str) -> Rendered:
    """Prompt text of ``request`` under ``template`` ("chat" or "plain")."""
    if template == "chat":
        return Rendered(chat_prompt(tokenizer, request), add_special_tokens=False)
    return Rendered(plain_prompt(request), add_special_tokens=True)


def parse_count(key: str, value: str) -> int:
    """``"4096"``, ``"128k"`` (x1024) or ``"1m"`` (x1048576) -> int; ModelError naming ``key`` otherwise."""
    v = value.strip().lower()
    mult = {"k": 1024, "m": 1024 * 1024}.get(v[-1:], 1)
    digits = v[:-1] if mult > 1 else v
    if not digits.isdigit() or int(digits) <= 0:
        raise ModelError(f"option {key}={value!r} is not a positive integer (e.g. 8192, 128k, 1m)")
    return int(digits) * mult


def parse_bool(key: str, value: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ModelError(f"option {key}={value!r} is not a boolean (true/false)")


def check_options(spec_raw: str, options: dict[str, str], known: tuple[str, ...]) -> None:
    """ModelError naming every unknown option of a spec and the known ones."""
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ModelError(
            f"model spec {spec_raw!r}: unknown option(s) {', '.join(unknown)}; known: {', '.join(known)}"
        )
