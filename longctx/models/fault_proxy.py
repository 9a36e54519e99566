"""A loopback HTTP proxy that injects faults in front of an HTTP server (for tests and drills).

Each incoming request draws, from one seeded ``random.Random``, at most one fault:
HTTP 429 (with ``Retry-After: 0``), HTTP 500, a dropped connection (the request is first
forwarded upstream, so the server did the work, then the socket is closed without a reply),
or a slow reply (``slow_s`` seconds of sleep before forwarding). ``max_faults`` bounds the
total number injected, so a client with enough retries always finishes. ``stats`` counts
what happened. Otherwise the request is forwarded unchanged (headers included) and the
upstream reply returned.

Run: ``python -m longctx.models.fault_proxy http://127.0.0.1:8000 --port 9000 --p-500 0.2``.
"""
from __future__ import annotations

import argparse
import random
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Faults:
    """Per-request probabilities of each fault (their sum at most 1), the seed and the bound."""

    p_429: float = 0.0
    p_500: float = 0.0
    p_drop: float = 0.0
    p_slow: float = 0.0
    slow_s: float = 1.0
    seed: int = 0
    max_faults: int = 1_000_000


class FaultProxy(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, upstream: str, faults: Faults, host: str = "127.0.0.1", port: int = 0):
        import httpx

        if faults.p_429 + faults.p_500 + faults.p_drop + faults.p_slow > 1:
            raise ValueError("faults: the probabilities add up to more than 1")
        super().__init__((host, port), _ProxyHandler)
        self.upstream = upstream.rstrip("/")
        self.faults = faults
        self.stats: Counter[str] = Counter()
        self._rng = random.Random(faults.seed)
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=None, limits=httpx.Limits(max_connections=64))

    @property
    def url(self) -> str:
        """The proxy's base URL; paths are passed through (``url + "/v1"`` for an OpenAI server)."""
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FaultProxy":
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def draw(self) -> str:
        """The fault for the next request: ``429``, ``500``, ``drop``, ``slow`` or ``ok``."""
        f = self.faults
        with self._lock:
            x = self._rng.random()
            injected = sum(self.stats[k] for k in ("429", "500", "drop", "slow"))
            kind = "ok"
            if injected < f.max_faults:
                for name, p in (("429", f.p_429), ("500", f.p_500), ("drop", f.p_drop), ("slow", f.p_slow)):
                    if x < p:
                        kind = name
                        break
                    x -= p
            self.stats[kind] += 1
            return kind

    def server_close(self) -> None:
        super().server_close()
        self._client.close()


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stall
    server: FaultProxy

    def log_message(self, format: str, *args) -> None:
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        kind = self.server.draw()
        if kind in ("429", "500"):
            return self._reply(int(kind), b'{"error": {"message": "injected fault"}}', {"Retry-After": "0"})
        if kind == "slow":
            time.sleep(self.server.faults.slow_s)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length", "connection")}
        try:
            resp = self.server._client.request(method, self.server.upstream + self.path, content=body, headers=headers)
        except Exception as e:
            return self._reply(502, f'{{"error": {{"message": "upstream failed: {type(e).__name__}"}}}}'.encode())
        if kind == "drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._reply(resp.status_code, resp.content, {"Content-Type": resp.headers.get("content-type", "application/json")})

    def _reply(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (e.g. its timeout on a slow reply)
            self.close_connection = True


def main() -> None:
    p = argparse.ArgumentParser(description="Fault-injecting HTTP proxy on loopback.")
    p.add_argument("upstream")
    p.add_argument("--port", type=int, default=9000)
    for name in ("429", "500", "drop", "slow"):
        p.add_argument(f"--p-{name}", type=float, default=0.0)
    p.add_argument("--slow-s", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-faults", type=int, default=1_000_000)
    a = p.parse_args()
    faults = Faults(a.p_429, a.p_500, a.p_drop, a.p_slow, a.slow_s, a.seed, a.max_faults)
    proxy = FaultProxy(a.upstream, faults, port=a.port)
    print(f"proxy {proxy.url} -> {a.upstream}", flush=True)
    try:
        proxy.serve_forever()
    except KeyboardInterrupt:
        proxy.server_close()


if __name__ == "__main__":
    main()
