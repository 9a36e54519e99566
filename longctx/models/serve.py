"""A small OpenAI-compatible HTTP server in front of any ``Model`` (stdlib ``http.server``).

Endpoints: ``POST /v1/chat/completions``, ``POST /v1/completions``, ``GET /v1/models``.
Chat requests go through the model's own template (``Model.generate``); a final assistant
message is continued as a prefill. Completion prompts are raw text: a model that offers
``encode_text``/``generate_ids`` (HFModel) gets them verbatim, others as one user turn.
Decoding is always greedy; ``temperature`` and the like are accepted and ignored.
Generation is serialized with a lock (one request at a time on the model); ``latency_s``
adds a fixed sleep per request outside the lock (benchmarks).

Run: ``python -m longctx.models.serve hf:/path/to/model --port 8000`` then point
``openai:NAME@http://127.0.0.1:8000/v1`` at it (NAME is the served name, ``--name``).
With ``--api-key-env VAR`` requests must carry ``Authorization: Bearer $VAR``.
"""
from __future__ import annotations

import argparse
import json
import os
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from longctx.models.base import Completion, Model, Request
from longctx.models.errors import ModelError


class OpenAIServer(ThreadingHTTPServer):
    """Serves ``model`` under ``name`` on ``(host, port)``; ``port=0`` picks a free port (see ``url``)."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, model: Model, name: str, host: str = "127.0.0.1", port: int = 0,
                 api_key: str | None = None, latency_s: float = 0.0):
        super().__init__((host, port), _Handler)
        self.model, self.name, self.api_key, self.latency_s = model, name, api_key, latency_s
        self.lock = threading.Lock()
        self.requests_served = 0
        self.in_flight = self.max_in_flight = 0  # completion requests being handled now / at most so far
        self._gauge = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> "OpenAIServer":
        """Serve in a daemon thread; ``shutdown()`` + ``server_close()`` stop it."""
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def complete_chat(self, body: dict) -> Completion:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ValueError("'messages' must be a non-empty list")
        prefill = None
        if messages[-1].get("role") == "assistant":
            prefill, messages = messages[-1].get("content") or "", messages[:-1]
        req = Request(messages=[{"role": m["role"], "content": m["content"]} for m in messages],
                      prefill=prefill, max_new_tokens=_max_tokens(body))
        with self.lock:
            return self.model.generate([req])[0]

    def complete_text(self, body: dict) -> Completion:
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise ValueError("'prompt' must be a string")
        with self.lock:
            if hasattr(self.model, "generate_ids"):
                return self.model.generate_ids([self.model.encode_text(prompt)], [_max_tokens(body)])[0]
            return self.model.generate([Request([{"role": "user", "content": prompt}], None, _max_tokens(body))])[0]


def _max_tokens(body: dict) -> int:
    n = body.get("max_completion_tokens", body.get("max_tokens", 16))
    if not isinstance(n, int) or n < 0:
        raise ValueError("'max_tokens' must be a non-negative integer")
    return n


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stall
    server: OpenAIServer

    def log_message(self, format: str, *args) -> None:  # quiet: tests and benchmarks read stdout
        pass

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._send(status, {"error": {"message": message, "type": "invalid_request_error", "code": status}})

    def _authorized(self) -> bool:
        if self.server.api_key is None:
            return True
        if self.headers.get("Authorization") == f"Bearer {self.server.api_key}":
            return True
        self._error(401, "invalid API key")
        return False

    def do_GET(self) -> None:
        if not self._authorized():
            return
        if self.path.rstrip("/") != "/v1/models":
            return self._error(404, f"no route {self.path}")
        s = self.server
        self._send(200, {"object": "list", "data": [
            {"id": s.name, "object": "model", "owned_by": "longctx-evals", "max_model_len": s.model.max_context}]})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if not self._authorized():
            return
        route = self.path.rstrip("/")
        if route not in ("/v1/chat/completions", "/v1/completions"):
            return self._error(404, f"no route {self.path}")
        try:
            body = json.loads(raw)
        except json.JSONDecodeError as e:
            return self._error(400, f"body is not JSON: {e}")
        if body.get("model") != self.server.name:
            return self._error(404, f"model {body.get('model')!r} is not served here; try {self.server.name!r}")
        s = self.server
        with s._gauge:
            s.in_flight += 1
            s.max_in_flight = max(s.max_in_flight, s.in_flight)
        try:
            if s.latency_s:
                time.sleep(s.latency_s)
            chat = route == "/v1/chat/completions"
            c = s.complete_chat(body) if chat else s.complete_text(body)
        except (ValueError, KeyError, TypeError) as e:  # ModelError is a ValueError
            return self._error(400, str(e))
        finally:
            with s._gauge:
                s.in_flight -= 1
        with s._gauge:
            s.requests_served += 1
        self._send(200, _reply(s.name, c, _max_tokens(body), chat))


def _reply(name: str, c: Completion, max_tokens: int, chat: bool) -> dict:
    finish = "length" if c.output_tokens is not None and c.output_tokens >= max_tokens else "stop"
    choice = {"index": 0, "finish_reason": finish}
    choice.update({"message": {"role": "assistant", "content": c.text}} if chat else {"text": c.text})
    usage = {"prompt_tokens": c.prompt_tokens, "completion_tokens": c.output_tokens,
             "total_tokens": (c.prompt_tokens or 0) + (c.output_tokens or 0)}
    return {"id": f"cmpl-{uuid.uuid4().hex[:16]}", "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()), "model": name, "choices": [choice], "usage": usage}


def main() -> None:
    p = argparse.ArgumentParser(description="Serve a model spec over an OpenAI-compatible API on this machine.")
    p.add_argument("spec", help="model spec, e.g. hf:/path/to/model")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--name", help="served model name (default: the last part of the spec's target)")
    p.add_argument("--api-key-env", help="require Authorization: Bearer $VAR")
    a = p.parse_args()
    from longctx.models.load import load_model
    from longctx.models.spec import parse_spec

    try:
        model = load_model(a.spec)
    except ModelError as e:
        raise SystemExit(f"error: {e}")
    name = a.name or parse_spec(a.spec).target.rstrip("/").split("/")[-1]
    key = os.environ.get(a.api_key_env) if a.api_key_env else None
    server = OpenAIServer(model, name, a.host, a.port, api_key=key)
    print(f"serving {a.spec} as {name!r} at {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.server_close()


if __name__ == "__main__":
    main()
