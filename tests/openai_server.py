"""A real OpenAI-compatible HTTP server for the tests, on 127.0.0.1 only, serving the tiny model.

``/v1/models``, ``/v1/completions`` and ``/v1/chat/completions`` (the chat template applied
here, on the server, as vLLM does), greedy generation with transformers through the
evaluator's own HF backend, ``usage`` and ``finish_reason`` in every answer.

Faults for the client's retry logic are injected into the first generation requests, in the
order given: ``"500"`` (an internal error), ``"429"`` (rate limited, with ``Retry-After``),
``"slow"`` (answers only after ``slow_s`` seconds, longer than the client's timeout) and
``"drop"`` (closes the connection without answering).  Counters record what happened.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional

from evaluator.backends.base import GenerationParams


class State:
    def __init__(self, model_dir: Path, model_name: str, faults: Sequence[str], api_key: Optional[str],
                 retry_after: float, slow_s: float, delay_s: float) -> None:  # fmt: skip
        from evaluator.backends.hf import HFBackend

        self.backend = HFBackend(str(model_dir), batch_size=1)
        self.model_name = model_name
        self.faults = list(faults)
        self.api_key = api_key
        self.retry_after = retry_after
        self.slow_s = slow_s
        self.delay_s = delay_s
        self.lock = threading.Lock()  # one generation at a time (torch), and the counters
        self.gen_lock = threading.Lock()
        self.counters: Counter[str] = Counter()
        self.arrivals: dict[str, list[float]] = defaultdict(list)  # body hash -> arrival times
        self.faulted: dict[str, tuple[str, float]] = {}  # body hash -> (fault, time answered)
        self.in_flight = 0
        self.max_in_flight = 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers
    server: "Server"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, payload: dict[str, Any], headers: Optional[dict[str, str]] = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _authorized(self) -> bool:
        st = self.server.state
        if st.api_key is None:
            return True
        if self.headers.get("Authorization") == f"Bearer {st.api_key}":
            return True
        with st.lock:
            st.counters["unauthorized"] += 1
        self._send(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}})
        return False

    def do_GET(self) -> None:
        if not self._authorized():
            return
        if self.path == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": self.server.state.model_name, "object": "model"}]})
        else:
            self._send(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        st = self.server.state
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not self._authorized():
            return
        if self.path not in ("/v1/completions", "/v1/chat/completions"):
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        key = hashlib.sha256(raw).hexdigest()
        with st.lock:
            st.counters["requests"] += 1
            st.arrivals[key].append(time.monotonic())
            fault = st.faults.pop(0) if st.faults else None
            if fault is not None:
                st.counters[fault] += 1
                st.faulted[key] = (fault, time.monotonic())
        if fault is not None:
            self._fault(fault)
            return
        with st.lock:  # requests being answered (a client that gave up on a "slow" one has moved on)
            st.in_flight += 1
            st.max_in_flight = max(st.max_in_flight, st.in_flight)
        try:
            body = json.loads(raw)
            if body.get("model") != st.model_name:
                self._send(404, {"error": {"message": f"model {body.get('model')!r} does not exist"}})
                return
            self._send(200, self._generate(body, chat=self.path.endswith("/chat/completions")))
            with st.lock:
                st.counters["ok"] += 1
                st.counters["chat" if self.path.endswith("/chat/completions") else "completions"] += 1
        finally:
            with st.lock:
                st.in_flight -= 1

    def _fault(self, fault: str) -> None:
        st = self.server.state
        if fault == "500":
            self._send(500, {"error": {"message": "injected internal error"}})
        elif fault == "429":
            self._send(429, {"error": {"message": "injected rate limit"}}, {"Retry-After": f"{st.retry_after:g}"})
        elif fault == "slow":
            time.sleep(st.slow_s)  # the client has given up by now
            try:
                self._send(503, {"error": {"message": "too late"}})
            except OSError:
                pass
            self.close_connection = True
        elif fault == "drop":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        else:
            raise ValueError(f"unknown fault {fault!r}")

    def _generate(self, body: dict[str, Any], chat: bool) -> dict[str, Any]:
        st = self.server.state
        stop = body.get("stop") or []
        params = GenerationParams(max_tokens=int(body.get("max_tokens") or 16),
                                  temperature=float(body.get("temperature") or 0.0),
                                  top_p=float(body.get("top_p") or 1.0),
                                  stop=tuple([stop] if isinstance(stop, str) else stop),
                                  n=int(body.get("n") or 1), seed=body.get("seed"))  # fmt: skip
        if chat:
            prompt = st.backend.render_chat(body["messages"])
            assert prompt is not None, "the tiny model has a chat template"
        else:
            prompt = body["prompt"]
        if st.delay_s:
            time.sleep(st.delay_s)  # lets concurrent requests overlap visibly
        with st.gen_lock:
            (group,) = st.backend.generate([prompt], params)
        choices = []
        for i, c in enumerate(group):
            choice: dict[str, Any] = {"index": i, "finish_reason": c.finish_reason}
            if chat:
                choice["message"] = {"role": "assistant", "content": c.text}
            else:
                choice["text"] = c.text
            choices.append(choice)
        return {
            "id": f"cmpl-{st.counters['requests']}", "object": "chat.completion" if chat else "text_completion",
            "model": st.model_name, "choices": choices,
            "usage": {"prompt_tokens": group[0].prompt_tokens, "completion_tokens": sum(c.tokens for c in group),
                      "total_tokens": group[0].prompt_tokens + sum(c.tokens for c in group)},
        }  # fmt: skip


class Server(ThreadingHTTPServer):
    daemon_threads = True
    state: State


@contextmanager
def serve(model_dir: Path, model_name: str, faults: Sequence[str] = (), api_key: Optional[str] = None,
          retry_after: float = 1.0, slow_s: float = 3.0, delay_s: float = 0.0) -> Iterator[Server]:  # fmt: skip
    """The server on a free loopback port for the ``with`` block; ``server.url`` is its API root."""
    server = Server(("127.0.0.1", 0), Handler)
    server.state = State(model_dir, model_name, faults, api_key, retry_after, slow_s, delay_s)
    server.url = f"http://127.0.0.1:{server.server_address[1]}/v1"  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
