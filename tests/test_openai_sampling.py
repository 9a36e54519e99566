"""The ``openai:`` adapter on servers that behave like llama.cpp and like strict OpenAI servers: greedy
means greedy (neutral sampling knobs in every body), ``extra=`` is merged, the record says what was
sent, the context length comes from the server where it says it, and a dead server fails at once.

The servers are small stand-ins on loopback (llama.cpp itself cannot run here); the real
``transformers serve`` is driven in ``test_real_model.py``."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from longctx.models.base import Request
from longctx.models.errors import ModelError
from longctx.models.load import load_model
from longctx.models.openai_compat import EXTENSION_NEUTRAL, OPENAI_NEUTRAL


class StubServer(ThreadingHTTPServer):
    """``routes``: GET path -> JSON reply; POSTs answer "ok" and keep their bodies; ``strict`` refuses
    fields outside the OpenAI schema with HTTP 422, as ``transformers serve`` does."""

    def __init__(self, routes: dict, strict: bool = False):
        super().__init__(("127.0.0.1", 0), StubHandler)
        self.routes, self.strict, self.bodies = routes, strict, []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class StubHandler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        reply = self.server.routes.get(self.path)
        self._send(200, reply) if reply is not None else self._send(404, {"error": "no route"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        unknown = set(body) & set(EXTENSION_NEUTRAL)
        if self.server.strict and unknown:
            return self._send(422, {"detail": f"Unexpected fields in the request: {sorted(unknown)}"})
        self.server.bodies.append(body)
        self._send(200, {"choices": [{"text": "ok", "message": {"content": "ok"}}],
                         "usage": {"prompt_tokens": 3, "completion_tokens": 1}})


LLAMA_CPP = {"/v1/models": {"object": "list", "data": [{"id": "model.gguf", "object": "model"}]},
             "/props": {"default_generation_settings": {"n_ctx": 4096}, "total_slots": 1}}


@pytest.fixture
def stub():
    servers = []

    def make(routes: dict, strict: bool = False) -> StubServer:
        servers.append(StubServer(routes, strict))
        return servers[-1]

    yield make
    for s in servers:
        s.stop()


def _ask(m, n: int = 2) -> list:
    return m.generate([Request([{"role": "user", "content": f"q{i}"}], max_new_tokens=4) for i in range(n)])


def test_llama_cpp_context_from_props_and_greedy_knobs_in_every_body(stub):
    server = stub(LLAMA_CPP)
    m = load_model(f"openai:model.gguf@{server.url}/v1,endpoint=completions")
    assert m.max_context == 4096  # llama.cpp's /props n_ctx
    got = _ask(m)
    m.close()
    for body, c in zip(server.bodies, got):
        assert body["repeat_penalty"] == 1.0 and body["temperature"] == 0.0  # not llama.cpp's default of 1.1
        assert {k: body[k] for k in (*OPENAI_NEUTRAL, *EXTENSION_NEUTRAL)} == c.params  # the record = what was sent


def test_vllm_context_from_models_entry(stub):
    server = stub({"/v1/models": {"data": [{"id": "other", "max_model_len": 1}, {"id": "m", "max_model_len": 32768}]}})
    m = load_model(f"openai:m@{server.url}/v1")
    assert m.max_context == 32768
    m.close()


def test_extra_json_is_merged_into_every_request_and_overrides_the_knobs(stub):
    server = stub(LLAMA_CPP)
    m = load_model(f'openai:model.gguf@{server.url},extra={{"seed":7,"repeat_penalty":1.3,"stop":["a,b"]}}')
    got = _ask(m, 3)
    m.close()
    assert [b["seed"] for b in server.bodies] == [7, 7, 7]
    assert all(b["repeat_penalty"] == 1.3 and b["stop"] == ["a,b"] for b in server.bodies)
    assert got[0].params["repeat_penalty"] == 1.3 and got[0].params["seed"] == 7


def test_strict_server_gets_the_openai_fields_only_after_one_refusal(stub, caplog):
    server = stub({"/v1/models": {"data": [{"id": "m"}]}}, strict=True)
    m = load_model(f"openai:m@{server.url},max_context=2048,concurrency=2")
    got = _ask(m, 4)
    m.close()
    assert m.params == OPENAI_NEUTRAL  # what the run's manifest records once the run is over
    assert len(server.bodies) == 4 and all(set(b) & set(EXTENSION_NEUTRAL) == set() for b in server.bodies)
    assert all(c.params == OPENAI_NEUTRAL for c in got)
    assert "sending only the OpenAI sampling fields" in caplog.text


@pytest.mark.parametrize("routes, needle", [
    ({}, "lists no models"),                                                   # no /models at all
    ({"/v1/models": {"data": []}}, "lists no models"),                         # an empty list
    ({"/v1/models": {"data": [{"id": "other", "max_model_len": 9}]}}, "lists 'other'"),  # not this model
    ({"/v1/models": {"data": "garbage"}, "/props": {"n_ctx": "big"}}, "pass max_context=N"),
], ids=["no-route", "empty", "other-model", "malformed"])
def test_no_context_length_is_one_clear_error(stub, routes, needle):
    server = stub(routes)
    with pytest.raises(ModelError, match=needle) as e:
        load_model(f"openai:m@{server.url}/v1")
    assert "pass max_context=N" in str(e.value)


@pytest.mark.parametrize("extra", ["{seed:1}", "[1,2]", "7"])
def test_extra_that_is_not_a_json_object_is_refused(extra):
    with pytest.raises(ModelError, match="option extra="):
        load_model(f"openai:m@http://127.0.0.1:9/v1,max_context=8,extra={extra}")
