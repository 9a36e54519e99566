"""``openai:MODEL@URL[,key=value...]``: any OpenAI-compatible server (vLLM, SGLang, llama.cpp,
``transformers serve``, ``python -m longctx.models.serve``, a hosted API).

URL is the API base, e.g. ``http://127.0.0.1:8000/v1`` (a bare ``http://host:port`` gets
``/v1``). Options:

* ``endpoint=chat|completions`` (default ``chat``). ``chat`` sends the messages and lets the
  server apply its chat template. ``completions`` renders the prompt here: with the chat
  template of ``tokenizer=hf:PATH`` when that tokenizer has one, else the plain template of
  ``models/prompting.py``; the prefill is always part of a completions prompt. A chat template
  that writes BOS puts it in the prompt text: ``models.serve`` then adds none, but a server
  that always adds BOS to completions prompts will see two.
* ``prefill=false|true|continue`` (chat only, default ``false``): many servers do not continue
  a final assistant message, so by default the prefill is left out (``sends_prefill`` is
  False and a warning is logged once). ``true`` sends it as a final assistant message;
  ``continue`` also sends vLLM's ``continue_final_message=true, add_generation_prompt=false``.
* ``concurrency=N`` requests in flight (default 16; a thread pool over one httpx client).
* ``retries=N`` retries per request (default 6) on HTTP 429, 5xx, timeouts, dropped
  connections and malformed replies, with exponential backoff ``backoff * 2**k`` seconds
  (default ``backoff=1``, capped at 30 s, ``Retry-After`` honoured up to 60 s) times a
  random jitter factor in [0.5, 1]. After the budget: ModelError naming the URL and the last
  error. Other 4xx replies fail at once.
* ``timeout=S`` seconds per HTTP request (default 300).
* ``api_key_env=VAR`` (default ``OPENAI_API_KEY``): the key is read from that environment
  variable, sent as ``Authorization: Bearer``, and never written to a message, log or result.
  A variable named in the spec must be set; the default one may be unset (no key is sent,
  as local servers expect).
* ``tokenizer=SPEC`` (a tasks tokenizer spec: ``byte``, ``hf:PATH``, ``tiktoken:NAME``) sizes
  prompts; it is this model's ``tokenizer_spec``.
* ``max_context=N`` (``128k``): default from what the server says: its ``/models`` entry
  (``max_model_len``, as vLLM and SGLang report), else llama.cpp's ``/props``
  (``default_generation_settings.n_ctx``, the server's own context size); else ModelError asking for it.
* ``extra=JSON`` (a JSON object, e.g. ``extra={"seed":0,"min_p":0}``): merged into every request
  body last, so it can also override the neutral sampling settings below.

Greedy on every server: each request carries ``temperature=0`` and the neutral value of every
sampling knob the common servers add with their own defaults: the OpenAI fields ``top_p=1``,
``presence_penalty=0``, ``frequency_penalty=0`` (``OPENAI_NEUTRAL``) and the extensions ``top_k=-1`` (all
tokens, as vLLM, SGLang and llama.cpp read it), ``repetition_penalty=1`` (vLLM, SGLang), ``repeat_penalty=1``
(llama.cpp, whose server otherwise applies 1.1 even at temperature 0) (``EXTENSION_NEUTRAL``). A server that refuses
unknown fields (``transformers serve``, hosted APIs) is asked once with the extensions and then,
for the rest of the run, without them (a warning says so). Every completion carries the exact
settings its request went out with (``Completion.params``; the runner writes them into each record).

A server that refuses the connection at start-up fails at once with one line; later connection
failures are retried (a server restarting mid-run).

``count_prompt_tokens`` is exact when the prompt is rendered here with an ``hf:`` tokenizer
(completions endpoint, or chat with an ``hf:`` tokenizer that has a chat template). Otherwise
it is the tokens of every message content (and a sent prefill) plus an allowance of
``MESSAGE_ALLOWANCE`` tokens per message and ``REPLY_ALLOWANCE`` for the reply header; with no
tokenizer at all contents are counted in UTF-8 bytes (an upper bound for BPE vocabularies).
"""
from __future__ import annotations

import json
import logging
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from longctx.models.base import Completion, Request
from longctx.models.errors import ModelError
from longctx.models.gguf import is_gguf, source
from longctx.models.prompting import (
    chat_prompt, check_options, has_chat_template, parse_bool, parse_count, plain_prompt,
)
from longctx.models.spec import ModelSpec

OPTIONS = ("endpoint", "prefill", "concurrency", "retries", "backoff", "timeout", "api_key_env",
           "tokenizer", "max_context", "extra")
OPENAI_NEUTRAL = {"temperature": 0.0, "top_p": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0}
EXTENSION_NEUTRAL = {"top_k": -1, "repetition_penalty": 1.0, "repeat_penalty": 1.0}
MESSAGE_ALLOWANCE = 8
REPLY_ALLOWANCE = 8
MAX_BACKOFF_S = 30.0
MAX_RETRY_AFTER_S = 60.0
log = logging.getLogger(__name__)


def split_target(target: str) -> tuple[str, str]:
    """``"MODEL@http://host:port/v1"`` -> ``("MODEL", "http://host:port/v1")``."""
    at = max(target.find("@http://"), target.find("@https://"))
    if at <= 0:
        raise ModelError(f"openai spec target {target!r} is not MODEL@URL (e.g. llama@http://127.0.0.1:8000/v1)")
    model, url = target[:at], target[at + 1:].rstrip("/")
    if url.count("/") == 2:  # bare scheme://host:port
        url += "/v1"
    return model, url


class CountingTokenizer:
    """Token counts (and, for ``hf:`` directories, the chat template) from a tasks tokenizer spec."""

    def __init__(self, spec: str | None):
        self.spec, self.hf = spec, None
        self._count = lambda text: len(text.encode("utf-8"))
        if spec in (None, "byte"):
            return
        scheme, _, rest = spec.partition(":")
        if scheme == "hf" and rest:
            self._load_hf(Path(rest).expanduser())
        elif scheme == "tiktoken" and rest:
            self._load_tiktoken(rest)
        else:
            raise ModelError(f"option tokenizer={spec!r} is not 'byte', 'hf:PATH' or 'tiktoken:NAME'")

    def _load_hf(self, path: Path) -> None:
        if not path.exists():
            raise ModelError(f"tokenizer path {str(path)!r} does not exist")
        try:
            if path.is_file() and not is_gguf(path):
                from tokenizers import Tokenizer

                rust = Tokenizer.from_file(str(path))
                self._count = lambda text: len(rust.encode(text, add_special_tokens=False).ids)
                return
            from transformers import AutoTokenizer

            where, kw = source(path)
            self.hf = AutoTokenizer.from_pretrained(where, local_files_only=True, **kw)
        except Exception as e:
            raise ModelError(f"cannot load the tokenizer at {path}: {e}") from None
        self._count = lambda text: len(self.hf(text, add_special_tokens=False)["input_ids"])

    def _load_tiktoken(self, name: str) -> None:
        try:
            import tiktoken

            enc = tiktoken.get_encoding(name)
        except Exception as e:
            raise ModelError(f"tiktoken encoding {name!r} is not available offline: {e}") from None
        self._count = lambda text: len(enc.encode_ordinary(text))

    def count(self, text: str, add_special_tokens: bool = False) -> int:
        if add_special_tokens and self.hf is not None:
            return len(self.hf(text, add_special_tokens=True)["input_ids"])
        return self._count(text)


class OpenAIModel:
    """An OpenAI-compatible HTTP endpoint behind the ``Model`` protocol, with bounded concurrency and retries."""

    def __init__(self, spec: ModelSpec):
        import httpx

        o = spec.options
        check_options(spec.raw, o, OPTIONS)
        self.spec = spec.raw
        self.model_name, self.base_url = split_target(spec.target)
        self.endpoint = o.get("endpoint", "chat")
        if self.endpoint not in ("chat", "completions"):
            raise ModelError(f"option endpoint={self.endpoint!r} must be 'chat' or 'completions'")
        prefill = o.get("prefill", "false").lower()
        self.continue_final = prefill == "continue"
        self.sends_prefill = self.endpoint == "completions" or self.continue_final or parse_bool("prefill", prefill)
        self.concurrency = parse_count("concurrency", o.get("concurrency", "16"))
        self.retries = _retries(o.get("retries", "6"))
        self.backoff = _positive_float("backoff", o.get("backoff", "1"))
        self.timeout = _positive_float("timeout", o.get("timeout", "300"))
        self.extra = _json_object(o["extra"]) if "extra" in o else {}
        self._extensions = True  # dropped for good once the server refuses them
        self._tok = CountingTokenizer(o.get("tokenizer"))
        self.tokenizer_spec = o.get("tokenizer")
        local_chat = self._tok.hf is not None and has_chat_template(self._tok.hf)
        self.template = "chat" if self.endpoint == "chat" or local_chat else "plain"
        key_env = o.get("api_key_env", "OPENAI_API_KEY")
        key = os.environ.get(key_env)
        if "api_key_env" in o and not key:
            raise ModelError(f"api_key_env={key_env}: the environment variable {key_env} is not set")
        self._secret = key or None
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        self._client = httpx.Client(headers=headers, timeout=self.timeout, limits=limits)
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="openai")
        self._warned_prefill = False
        try:
            if "max_context" in o:
                self.max_context = parse_count("max_context", o["max_context"])
                self._get("/models")  # a dead server fails here, at once
            else:
                self.max_context = self._served_context()
        except ModelError:
            self.close()
            raise

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> "OpenAIModel":
        return cls(spec)

    @property
    def params(self) -> dict:
        """The sampling settings every request goes out with (the prompt and ``max_tokens`` aside)."""
        return {**OPENAI_NEUTRAL, **(EXTENSION_NEUTRAL if self._extensions else {}), **self.extra}

    def _get(self, url_or_path: str) -> dict | None:
        """One GET at start-up: the JSON reply, or None when the server has no such route or says nothing
        usable; a refused connection is a ModelError at once."""
        import httpx

        url = url_or_path if "://" in url_or_path else self.base_url + url_or_path
        try:
            resp = self._client.get(url)
        except httpx.ConnectError as e:
            raise ModelError(f"cannot connect to {self.base_url}: {e}; is the server running at that address?") from None
        except httpx.HTTPError:
            return None
        if resp.status_code in (401, 403):
            raise ModelError(self._scrub(f"{url} refused the API key: HTTP {resp.status_code}: {_snippet(resp.text, 200)}"))
        try:
            data = resp.json() if resp.status_code == 200 else None
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def _served_context(self) -> int:
        """The context length the server reports: its ``/models`` entry, else llama.cpp's ``/props``."""
        models = self._get("/models") or {}
        entries = models.get("data") if isinstance(models.get("data"), list) else []
        for entry in entries:
            if isinstance(entry, dict) and entry.get("id") == self.model_name:
                for key in ("max_model_len", "context_length", "max_context_length"):
                    if isinstance(entry.get(key), int) and entry[key] > 0:
                        return entry[key]
        root = self.base_url[: -len("/v1")] if self.base_url.endswith("/v1") else self.base_url
        props = self._get(root + "/props") or {}
        settings = props.get("default_generation_settings")
        for where in (settings if isinstance(settings, dict) else {}, props):
            if isinstance(where.get("n_ctx"), int) and where["n_ctx"] > 0:
                return where["n_ctx"]
        listed = ", ".join(repr(e.get("id")) for e in entries if isinstance(e, dict)) or "no models"
        raise ModelError(f"{self.base_url} does not say the context length of {self.model_name!r} (its /models lists "
                         f"{listed}; no llama.cpp /props n_ctx); pass max_context=N in the spec")

    def _prompt_text(self, r: Request) -> tuple[str, bool]:
        """Completions prompt: local chat template if the tokenizer has one, else the plain template."""
        if self._tok.hf is not None and has_chat_template(self._tok.hf):
            return chat_prompt(self._tok.hf, r), False
        return plain_prompt(r), True

    def count_prompt_tokens(self, request: Request) -> int:
        if self.endpoint == "completions":
            text, special = self._prompt_text(request)
            return self._tok.count(text, add_special_tokens=special)
        if self._tok.hf is not None and has_chat_template(self._tok.hf):
            return self._tok.count(chat_prompt(self._tok.hf, request, prefill=self.sends_prefill))
        parts = [m["content"] for m in request.messages]
        if self.sends_prefill and request.prefill:
            parts.append(request.prefill)
        return sum(self._tok.count(p) for p in parts) + MESSAGE_ALLOWANCE * len(parts) + REPLY_ALLOWANCE

    def _body(self, r: Request) -> tuple[str, dict]:
        body: dict = {"model": self.model_name, "max_tokens": r.max_new_tokens, **self.params}
        if self.endpoint == "completions":
            body["prompt"] = self._prompt_text(r)[0]
            return "/completions", body
        messages = list(r.messages)
        if r.prefill and self.sends_prefill:
            messages.append({"role": "assistant", "content": r.prefill})
            if self.continue_final:
                body.update(continue_final_message=True, add_generation_prompt=False)
        elif r.prefill and not self._warned_prefill:
            self._warned_prefill = True
            log.warning("%s: the assistant prefill is not sent on the chat endpoint (pass prefill=true if the "
                        "server continues a final assistant message)", self.base_url)
        body["messages"] = messages
        return "/chat/completions", body

    def _complete(self, r: Request) -> Completion:
        path, body = self._body(r)
        try:
            c = self._call("POST", path, body, parse=self._parse_reply)
        except ModelError as e:
            sent = (set(EXTENSION_NEUTRAL) & set(body)) - set(self.extra)
            if not (sent and _names_a_knob(str(e), sent)):
                raise
            if self._extensions:
                self._extensions = False
                log.warning("%s refuses %s; sending only the OpenAI sampling fields from now on (%s)", self.base_url,
                            ", ".join(sorted(set(EXTENSION_NEUTRAL) - set(self.extra))), json.dumps(self.params))
            path, body = self._body(r)
            c = self._call("POST", path, body, parse=self._parse_reply)
        c.params = {k: v for k, v in body.items() if k not in ("model", "prompt", "messages", "max_tokens")}
        return c

    def _parse_reply(self, data: dict) -> Completion:
        choice = data["choices"][0]
        text = choice["message"]["content"] if self.endpoint == "chat" else choice["text"]
        if not isinstance(text, str):
            raise TypeError("reply text is not a string")
        usage = data.get("usage") or {}
        return Completion(text=text, prompt_tokens=usage.get("prompt_tokens"), output_tokens=usage.get("completion_tokens"))

    def _call(self, method: str, path: str, body: dict | None, parse=lambda d: d):
        """One HTTP call with retries on 429/5xx/timeouts/dropped connections/malformed replies."""
        import httpx

        url = self.base_url + path
        last, wait_hint = "", 0.0
        for attempt in range(self.retries + 1):
            if attempt:
                delay = min(self.backoff * 2 ** (attempt - 1), MAX_BACKOFF_S) * random.uniform(0.5, 1.0)
                time.sleep(max(delay, min(wait_hint, MAX_RETRY_AFTER_S)))
            wait_hint = 0.0
            try:
                resp = self._client.request(method, url, json=body)
            except httpx.TimeoutException as e:
                last = f"timed out after {self.timeout:g} s ({type(e).__name__})"
                continue
            except httpx.TransportError as e:
                last = f"connection failed ({type(e).__name__}: {e})"
                continue
            if resp.status_code == 429 or resp.status_code >= 500:
                last = f"HTTP {resp.status_code}: {_snippet(resp.text, 200)}"
                wait_hint = _retry_after(resp.headers.get("Retry-After"))
                continue
            if resp.status_code >= 400:
                raise ModelError(self._scrub(f"{url} refused the request: HTTP {resp.status_code}: {_snippet(resp.text, 300)}"))
            try:
                return parse(resp.json())
            except (ValueError, KeyError, IndexError, TypeError) as e:
                last = f"malformed reply ({type(e).__name__}: {e})"
        raise ModelError(self._scrub(f"{url} failed after {self.retries + 1} attempts; last error: {last}"))

    def _scrub(self, message: str) -> str:
        return message.replace(self._secret, "***") if self._secret else message

    def generate(self, batch: list[Request]) -> list[Completion]:
        """All requests of ``batch`` with at most ``concurrency`` in flight; results in order."""
        futures = [self._pool.submit(self._complete, r) for r in batch]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()


def _snippet(text: str, limit: int) -> str:
    """A reply body cut to ``limit`` characters on one line (an HTML error page has many)."""
    return " ".join(text.split())[:limit]


def _names_a_knob(message: str, knobs: set[str]) -> bool:
    """Whether a refusal (HTTP 400/422) is about one of the extension sampling fields."""
    return any(code in message for code in ("HTTP 400", "HTTP 422")) and any(k in message for k in knobs)


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ModelError(f"option extra={text!r} is not JSON ({e}); give an object like extra={{\"seed\":0}}") from None
    if not isinstance(value, dict):
        raise ModelError(f"option extra={text!r} is not a JSON object like {{\"seed\":0}}")
    return value


def _positive_float(key: str, value: str) -> float:
    try:
        v = float(value)
    except ValueError:
        v = -1.0
    if v <= 0:
        raise ModelError(f"option {key}={value!r} is not a positive number")
    return v


def _retries(value: str) -> int:
    if not value.isdigit():
        raise ModelError(f"option retries={value!r} is not a non-negative integer")
    return int(value)


def _retry_after(value: str | None) -> float:
    try:
        return max(float(value), 0.0) if value else 0.0
    except ValueError:
        return 0.0
