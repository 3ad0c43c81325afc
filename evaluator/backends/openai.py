"""The OpenAI-compatible backend: a model that is already served (``vllm serve``, llama.cpp's
``llama-server``, a hosted endpoint), reached over HTTP.

- Plain prompts go to ``/v1/completions``; chat prompts (``ChatPrompt``, see base.py) go to
  ``/v1/chat/completions`` as ``messages``, so the *server* applies the model's chat template.
- Requests run in a thread pool of ``max_concurrent`` workers (the server batches them), each
  thread with its own keep-alive connection.
- 408/409/425/429/5xx answers, timeouts and refused, reset or dropped connections are retried
  with exponential backoff and jitter, honouring ``Retry-After``; other 4xx answers fail at once
  with the server's message.
- Token counts come from the response's ``usage``, finish reasons from each choice.
- The API key is read from the environment variable named by ``api_key_env`` (default
  ``OPENAI_API_KEY``), sent as ``Authorization: Bearer``, and never recorded, logged or put in
  an error message (``engine_args`` records the variable's *name* only).

Standard library only (http.client); nothing is imported at module import time beyond it.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import os
import random
import ssl
import threading
import time
import urllib.parse
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Optional

from catalog.db import CatalogError
from evaluator.backends.base import ChatPrompt, Completion, GenerationParams, truncate_at_stop

log = logging.getLogger("evaluator.openai")

DEFAULT_KEY_ENV = "OPENAI_API_KEY"
RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class OpenAIError(CatalogError):
    """The server refused a request, or kept failing after every retry."""


def parse_retry_after(value: Optional[str]) -> Optional[float]:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def public_url(base_url: str) -> tuple[urllib.parse.SplitResult, str]:
    """The parsed base URL and its recordable form (no user:password, no query string).

    The path is the API root as OpenAI clients take it (``http://host:8000/v1``); a URL with no
    path gets ``/v1``.
    """
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CatalogError(f"--base-url must be an http(s) URL such as http://127.0.0.1:8000/v1 (got {base_url!r})")
    path = parts.path.rstrip("/") or "/v1"
    port = f":{parts.port}" if parts.port else ""
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return parts._replace(path=path), f"{parts.scheme}://{host}{port}{path}"


class OpenAIBackend:
    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: Optional[str],
        api_key_env: Optional[str] = None,
        max_concurrent: int = 8,
        request_timeout: float = 120.0,
        max_retries: int = 6,
        backoff_s: float = 0.5,
        max_backoff_s: float = 60.0,
        chat: Optional[bool] = None,
        chat_template: bool = True,
        check_model: bool = True,
    ) -> None:
        if not base_url:
            raise CatalogError("--backend openai needs --base-url (e.g. http://127.0.0.1:8000/v1)")
        if max_concurrent < 1:
            raise CatalogError(f"--max-concurrent must be at least 1 (got {max_concurrent})")
        if request_timeout <= 0:
            raise CatalogError(f"--request-timeout must be positive (got {request_timeout})")
        self.key_env = api_key_env or DEFAULT_KEY_ENV
        key = os.environ.get(self.key_env) or None
        if api_key_env and key is None:
            raise CatalogError(f"--api-key-env {api_key_env}: that environment variable is not set (or is empty)")
        self.__key = key  # never recorded, never logged
        self._parts, self.url = public_url(base_url)
        self.model = model
        self.max_concurrent = max_concurrent
        self.timeout = float(request_timeout)
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        # chat None (auto): send messages when the catalog says the model has a chat template.
        self.chat = chat
        self.chat_template = chat_template
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[http.client.HTTPConnection] = []
        self.stats = {"requests": 0, "retries": 0, "completions": 0, "chat_completions": 0}
        self._pool = ThreadPoolExecutor(max_concurrent, thread_name_prefix="openai")
        if check_model:
            self._check_model()

    # -- the Backend protocol -------------------------------------------------------------

    def render_chat(self, messages: list[dict[str, str]]) -> Optional[str]:
        if self.chat is None and not self.chat_template:
            return None  # auto, and the model has no chat template: a plain completion prompt
        return ChatPrompt(messages)

    def generate(self, prompts: Sequence[str], params: GenerationParams) -> list[list[Completion]]:
        futures: list[Future[list[Completion]]] = [self._pool.submit(self._one, p, params) for p in prompts]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise

    def engine_args(self) -> dict[str, Any]:
        with self._lock:
            stats = dict(self.stats)
        return {
            "base_url": self.url, "model": self.model, "api_key_env": self.key_env,
            "api_key_set": self.__key is not None, "max_concurrent": self.max_concurrent,
            "request_timeout": self.timeout, "max_retries": self.max_retries, **stats,
        }  # fmt: skip

    def peak_memory_gb(self) -> Optional[float]:
        return None  # the server's memory is not ours to see

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            conns, self._connections = self._connections, []
        for conn in conns:
            conn.close()

    # -- requests ---------------------------------------------------------------------------

    def _one(self, prompt: str, params: GenerationParams) -> list[Completion]:
        body: dict[str, Any] = {
            "model": self.model, "max_tokens": params.max_tokens, "temperature": params.temperature,
            "top_p": params.top_p, "n": params.n,
        }  # fmt: skip
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        chat = isinstance(prompt, ChatPrompt)
        if chat:
            body["messages"] = prompt.messages  # type: ignore[attr-defined]
        else:
            body["prompt"] = str(prompt)
        data = self._request("POST", "/chat/completions" if chat else "/completions", body)
        self._count("chat_completions" if chat else "completions")
        choices = sorted(data.get("choices") or [], key=lambda c: int(c.get("index", 0)))
        if len(choices) != params.n:
            raise OpenAIError(f"{self.url}: asked for {params.n} completion(s), got {len(choices)}")
        usage = data.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        total = int(usage.get("completion_tokens") or 0)
        # usage counts all n choices together: share it out so the per-sample sum is exact.
        shares = [total // params.n + (1 if i < total % params.n else 0) for i in range(params.n)]
        out = []
        for choice, tokens in zip(choices, shares):
            raw = (choice.get("message") or {}).get("content") if chat else choice.get("text")
            text, stopped = truncate_at_stop(raw or "", params.stop)
            finish = choice.get("finish_reason") or ("stop" if stopped else "unknown")
            out.append(Completion(text=text, tokens=tokens, prompt_tokens=prompt_tokens, finish_reason=str(finish)))
        return out

    def _check_model(self) -> None:
        """Fail early when the server is unreachable or does not serve the model."""
        try:
            data = self._request("GET", "/models", None)
        except OpenAIError as exc:
            if " HTTP 404" in str(exc) or " HTTP 405" in str(exc):
                return  # some servers do not list models
            raise
        served = [str(m.get("id")) for m in data.get("data") or [] if isinstance(m, dict)]
        if served and self.model not in served:
            raise CatalogError(
                f"{self.url} does not serve {self.model!r}; it serves: {', '.join(served[:20])} "
                "(pass --model-path NAME to use the served model name)"
            )

    def _count(self, key: str) -> None:
        with self._lock:
            self.stats[key] += 1

    def _redact(self, text: str) -> str:
        return text.replace(self.__key, "***") if self.__key else text

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's keep-alive connection, and whether it has served a request before."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn, True
        host, port = self._parts.hostname or "", self._parts.port
        if self._parts.scheme == "https":
            conn = http.client.HTTPSConnection(host, port, timeout=self.timeout, context=ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
        self._local.conn = conn
        with self._lock:
            self._connections.append(conn)
        return conn, False

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()
            with self._lock:
                if conn in self._connections:
                    self._connections.remove(conn)

    def _request(self, method: str, path: str, body: Optional[dict[str, Any]]) -> dict[str, Any]:
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json", "User-Agent": "model-catalog-evaluator"}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        if self.__key:
            headers["Authorization"] = f"Bearer {self.__key}"
        where = f"{method} {self.url}{path}"
        attempt = 0
        while True:
            self._count("requests")
            retry_after: Optional[float] = None
            reused = False
            try:
                conn, reused = self._connection()
                conn.request(method, self._parts.path + path, body=payload, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                if resp.will_close:
                    self._drop_connection()
                if 200 <= resp.status < 300:
                    try:
                        decoded = json.loads(data)
                    except ValueError as exc:
                        raise OpenAIError(f"{where}: the answer is not JSON ({exc})") from None
                    if not isinstance(decoded, dict):
                        raise OpenAIError(f"{where}: the answer is not a JSON object")
                    return decoded
                message = self._redact(_error_text(data))
                if resp.status not in RETRY_STATUSES:
                    raise OpenAIError(f"{where}: HTTP {resp.status}: {message}")
                retry_after = parse_retry_after(resp.getheader("Retry-After"))
                problem = f"HTTP {resp.status}: {message}"
            except (OSError, http.client.HTTPException) as exc:  # timeouts, refused, reset or dropped
                self._drop_connection()
                problem = self._redact(f"{type(exc).__name__}: {exc}")
            if attempt >= self.max_retries:
                raise OpenAIError(f"{where}: gave up after {attempt + 1} attempts; last: {problem}")
            if retry_after is not None:
                delay = min(retry_after, self.max_backoff_s)
            elif reused and attempt == 0:
                delay = 0.0  # a keep-alive connection the server had closed: reconnect at once
            else:
                cap = min(self.max_backoff_s, self.backoff_s * 2**attempt)
                delay = cap / 2 + random.uniform(0, cap / 2)  # exponential backoff, "equal jitter"
            attempt += 1
            self._count("retries")
            log.warning("%s: %s; retry %d/%d in %.2fs", where, problem, attempt, self.max_retries, delay)
            time.sleep(delay)


def _error_text(data: bytes) -> str:
    """The server's error message (OpenAI's {"error": {"message": ...}} or the raw body), short."""
    try:
        decoded = json.loads(data)
        err = decoded.get("error") if isinstance(decoded, dict) else None
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:500]
        if isinstance(err, str):
            return err[:500]
    except ValueError:
        pass
    return data.decode("utf-8", "replace").strip()[:500] or "(empty body)"
