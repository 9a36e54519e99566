"""OpenAIModel against a real OpenAI-compatible server on loopback (the tiny Llama behind
``models.serve``), directly and through the fault-injecting proxy."""
from __future__ import annotations

import logging
import socket
import time

import httpx
import pytest

from longctx.models.base import Request
from benchmarks.models.benchmark_openai import EchoModel
from longctx.models.errors import ModelError
from longctx.models.fault_proxy import FaultProxy, Faults
from longctx.models.load import load_model
from longctx.models.serve import OpenAIServer

NAME = "tiny-llama"


def _reqs(n: int, max_new: int = 4) -> list[Request]:
    return [Request([{"role": "user", "content": f"remember the number {i * 7919} and the city red"}],
                    prefill="Answer:", max_new_tokens=max_new) for i in range(n)]


class _Direct:
    """The served HFModel, called directly under the server's lock (late proxied requests may still run)."""

    def __init__(self, server: OpenAIServer):
        self.server, self.max_context = server, server.model.max_context

    def generate(self, reqs):
        with self.server.lock:
            return self.server.model.generate(reqs)

    def count_prompt_tokens(self, r):
        return self.server.model.count_prompt_tokens(r)


@pytest.fixture(scope="module")
def hf(openai_server):
    return _Direct(openai_server)


@pytest.fixture
def proxy_factory(openai_server):
    made = []

    def make(**kw) -> FaultProxy:
        p = FaultProxy(openai_server.url.removesuffix("/v1"), Faults(**kw)).start()
        made.append(p)
        return p

    yield make
    for p in made:
        p.shutdown()
        p.server_close()


def test_chat_endpoint_matches_the_model_and_reads_max_context_from_the_server(openai_server, hf, tiny_llama_dir):
    m = load_model(f"openai:{NAME}@{openai_server.url},tokenizer=hf:{tiny_llama_dir},prefill=true")
    assert m.max_context == hf.max_context == 2048  # from /v1/models
    assert m.template == "chat" and m.tokenizer_spec == f"hf:{tiny_llama_dir}"
    reqs = _reqs(5)
    got = m.generate(reqs)
    want = [hf.generate([r])[0] for r in reqs]
    assert [c.text for c in got] == [c.text for c in want]
    # exact count: the hf tokenizer has a chat template and the prefill is sent
    assert [m.count_prompt_tokens(r) for r in reqs] == [c.prompt_tokens for c in got] == [c.prompt_tokens for c in want]
    m.close()


def test_chat_without_prefill_option_leaves_prefill_out_and_says_so(openai_server, hf, caplog):
    m = load_model(f"openai:{NAME}@{openai_server.url},max_context=2048")
    assert not m.sends_prefill and m.tokenizer_spec is None
    r = _reqs(1)[0]
    with caplog.at_level(logging.WARNING, logger="longctx.models.openai_compat"):
        got = m.generate([r])[0]
    assert "prefill is not sent" in caplog.text
    no_prefill = Request(r.messages, None, r.max_new_tokens)
    assert got.text == hf.generate([no_prefill])[0].text
    # no tokenizer: contents counted in bytes plus the documented allowance, an upper bound
    assert m.count_prompt_tokens(r) >= hf.count_prompt_tokens(no_prefill)
    m.close()


def test_completions_endpoint_renders_the_chat_template_locally(openai_server, hf, tiny_llama_dir):
    m = load_model(f"openai:{NAME}@{openai_server.url},endpoint=completions,tokenizer=hf:{tiny_llama_dir},max_context=2048")
    assert m.template == "chat" and m.sends_prefill
    reqs = _reqs(3)
    got = m.generate(reqs)
    want = hf.generate(reqs)
    assert [c.text for c in got] == [c.text for c in want]
    assert [m.count_prompt_tokens(r) for r in reqs] == [c.prompt_tokens for c in want]
    m.close()


def test_every_request_answered_once_through_faults(openai_server, hf, proxy_factory):
    proxy = proxy_factory(p_429=0.15, p_500=0.15, p_drop=0.1, p_slow=0.1, slow_s=3.0, seed=3, max_faults=40)
    m = load_model(f"openai:{NAME}@{proxy.url}/v1,max_context=2048,prefill=true,concurrency=4,"
                   "retries=8,backoff=0.01,timeout=1.5")
    reqs = _reqs(24, max_new=3)
    served_before = openai_server.requests_served
    got = m.generate(reqs)
    m.close()
    assert len(got) == len(reqs)
    assert [c.text for c in got] == [c.text for c in hf.generate(reqs)]  # each in its own place, none lost
    for kind in ("429", "500", "drop", "slow"):
        assert proxy.stats[kind] > 0, proxy.stats
    # each request reached the model once, plus once more per dropped connection or abandoned slow reply
    extra = openai_server.requests_served - served_before - len(reqs)
    assert 0 <= extra <= proxy.stats["drop"] + proxy.stats["slow"]


def test_requests_in_flight_are_bounded_by_concurrency():
    server = OpenAIServer(EchoModel(), "echo", latency_s=0.05).start()
    m = load_model(f"openai:echo@{server.url},concurrency=4,max_context=4096")
    reqs = [Request([{"role": "user", "content": f"say w{i}"}], max_new_tokens=2) for i in range(24)]
    try:
        assert [c.text for c in m.generate(reqs)] == [f"w{i}" for i in range(24)]
    finally:
        m.close()
        server.shutdown()
        server.server_close()
    assert server.max_in_flight == 4 and server.requests_served == 24


def test_retry_budget_exhausted_names_the_url_and_last_error(proxy_factory):
    proxy = proxy_factory(p_500=1.0)
    url = f"{proxy.url}/v1"
    m = load_model(f"openai:{NAME}@{url},max_context=2048,retries=2,backoff=0.01")
    with pytest.raises(ModelError) as e:
        m.generate(_reqs(2))
    m.close()
    assert f"{url}/chat/completions" in str(e.value) and "HTTP 500" in str(e.value) and "3 attempts" in str(e.value)


def test_server_that_never_answers_times_out_then_fails(proxy_factory):
    proxy = proxy_factory(p_slow=1.0, slow_s=2.0)
    m = load_model(f"openai:{NAME}@{proxy.url}/v1,max_context=2048,retries=1,backoff=0.01,timeout=0.3")
    with pytest.raises(ModelError, match="timed out after 0.3 s"):
        m.generate(_reqs(1))
    m.close()


def test_dead_port_fails_with_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    for spec in (f"openai:{NAME}@{url},retries=6", f"openai:{NAME}@{url},max_context=2048,retries=6"):
        t0 = time.perf_counter()
        with pytest.raises(ModelError, match=f"cannot connect to {url}: .*is the server running"):
            load_model(spec)
        assert time.perf_counter() - t0 < 5  # no retries with backoff on a refused connection at start-up


def test_api_key_sent_but_never_shown(tiny_llama_dir, hf, monkeypatch, caplog, capsys):
    secret = "sk-test-5f2c9a0d7e1b"
    monkeypatch.setenv("MY_KEY", secret)
    server = OpenAIServer(hf.server.model, NAME, api_key=secret).start()
    caplog.set_level(logging.DEBUG)
    try:
        good = load_model(f"openai:{NAME}@{server.url},api_key_env=MY_KEY,max_context=2048")
        assert len(good.generate(_reqs(2))) == 2  # the server accepted the key
        good.close()
        monkeypatch.setenv("MY_KEY", secret + "-wrong")
        with pytest.raises(ModelError, match="refused the API key: HTTP 401") as e:  # at start-up, not mid-run
            load_model(f"openai:{NAME}@{server.url},api_key_env=MY_KEY,max_context=2048")
    finally:
        server.shutdown()
        server.server_close()
    out = capsys.readouterr()
    for text in (str(e.value), out.out, out.err, caplog.text):
        assert secret not in text


def test_named_key_variable_must_be_set(openai_server, monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    with pytest.raises(ModelError, match="NO_SUCH_KEY_VAR is not set"):
        load_model(f"openai:{NAME}@{openai_server.url},api_key_env=NO_SUCH_KEY_VAR,max_context=8")


def test_refused_request_fails_at_once_without_retries(openai_server):
    m = load_model(f"openai:not-served@{openai_server.url},max_context=2048,retries=5,backoff=5")
    with pytest.raises(ModelError, match="refused the request: HTTP 404"):
        m.generate(_reqs(1))  # backoff=5 would make a retry take seconds
    m.close()


def test_bad_specs(openai_server):
    with pytest.raises(ModelError, match="MODEL@URL"):
        load_model("openai:gpt-4o")
    with pytest.raises(ModelError, match="unknown option.*temprature"):
        load_model(f"openai:{NAME}@{openai_server.url},temprature=0")
    with pytest.raises(ModelError, match="endpoint"):
        load_model(f"openai:{NAME}@{openai_server.url},endpoint=embeddings")
    with pytest.raises(ModelError, match="does not say the context length"):
        load_model(f"openai:other@{openai_server.url}")
    with pytest.raises(ModelError, match="concurrency"):
        load_model(f"openai:{NAME}@{openai_server.url},concurrency=0,max_context=8")


def test_bare_host_port_gets_v1(openai_server):
    m = load_model(f"openai:{NAME}@{openai_server.url.removesuffix('/v1')}")
    assert m.base_url == openai_server.url and m.max_context == 2048
    assert httpx.get(openai_server.url + "/models").json()["data"][0]["id"] == NAME
    m.close()
