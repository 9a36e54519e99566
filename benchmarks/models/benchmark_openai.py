"""Throughput of the OpenAI-compatible adapter: requests/s against a loopback server whose every
reply takes a fixed latency (default 200 ms), with 16 requests in flight.

The ideal is ``concurrency / latency`` (16 / 0.2 s = 80 req/s); the target is >= 70 req/s.
The served model answers instantly (it echoes the last word of the prompt), so the figure
measures the adapter, the HTTP stack and the server, not a model.

Run: ``python -m benchmarks.models.benchmark_openai [--requests 800] [--concurrency 16] [--latency 0.2]``.
"""
from __future__ import annotations

import argparse
import time

from longctx.models.base import Completion, Request
from longctx.models.serve import OpenAIServer
from longctx.models.spec import parse_spec


class EchoModel:
    """A model that answers at once with the last word of the last message."""

    spec = "echo"
    tokenizer_spec = None
    max_context = 1 << 20
    template = "chat"

    def count_prompt_tokens(self, request: Request) -> int:
        return sum(len(m["content"].split()) for m in request.messages)

    def generate(self, batch: list[Request]) -> list[Completion]:
        return [Completion(r.messages[-1]["content"].split()[-1], self.count_prompt_tokens(r), 1) for r in batch]

    def close(self) -> None:
        pass


def measure(requests: int, concurrency: int, latency_s: float) -> dict[str, float]:
    """Send ``requests`` chat requests through OpenAIModel; returns requests/s and the ideal."""
    from longctx.models.openai_compat import OpenAIModel

    server = OpenAIServer(EchoModel(), "echo", latency_s=latency_s).start()
    model = OpenAIModel(parse_spec(f"openai:echo@{server.url},concurrency={concurrency},max_context=65536"))
    batch = [Request([{"role": "user", "content": f"the answer is w{i}"}], max_new_tokens=4) for i in range(requests)]
    try:
        model.generate(batch[:concurrency])  # warm up: open the connections
        start = time.perf_counter()
        out = model.generate(batch)
        seconds = time.perf_counter() - start
    finally:
        model.close()
        server.shutdown()
        server.server_close()
    if [c.text for c in out] != [f"w{i}" for i in range(requests)]:
        raise RuntimeError("replies came back wrong or out of order")
    return {"requests": requests, "seconds": seconds, "req_per_s": requests / seconds,
            "ideal_req_per_s": concurrency / latency_s}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=800)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--latency", type=float, default=0.2, help="seconds the server waits before each reply")
    a = p.parse_args()
    r = measure(a.requests, a.concurrency, a.latency)
    print(f"{r['requests']} requests in {r['seconds']:.2f} s: {r['req_per_s']:.1f} req/s "
          f"(ideal {r['ideal_req_per_s']:.0f}, target >= 70; concurrency {a.concurrency}, latency {a.latency * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
