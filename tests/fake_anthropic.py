"""A local HTTP server that speaks the Anthropic Messages API, for tests.

The one stand-in the project allows (there is no network here): the real `anthropic`
client talks to it over real HTTP, so its request building, response parsing, error
classes and headers are all exercised. Responses are scripted per tool name, in order:

    fake.script("record_plan", Error(429, retry_after=2), ToolUse({...}))

`ToolUse` answers with a tool_use block (and a usage block, computed from the request when
not given, including prompt-cache reads after the first request with the same cached
prefix); `Text` with a text block; `Error` with the API's error body, status and
`retry-after`. Any response can be delayed. Every request is recorded, so tests can check
what was sent (and what never was).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "api_error",
    529: "overloaded_error",
}


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0


@dataclass(frozen=True)
class ToolUse:
    input: dict[str, Any]
    usage: Usage | None = None
    name: str | None = None  # default: the tool the request forced
    delay: float = 0.0


@dataclass(frozen=True)
class Text:
    text: str
    usage: Usage | None = None
    delay: float = 0.0


@dataclass(frozen=True)
class Error:
    status: int
    message: str = "scripted error"
    retry_after: float | str | None = None
    delay: float = 0.0


Response = ToolUse | Text | Error


@dataclass
class Recorded:
    """One request as the server saw it."""

    at: float
    headers: dict[str, str]
    body: dict[str, Any]
    raw: str

    @property
    def tool(self) -> str:
        return str((self.body.get("tool_choice") or {}).get("name", ""))

    @property
    def user_text(self) -> str:
        """The first user turn (the incident data)."""
        content = self.body["messages"][0]["content"]
        return content if isinstance(content, str) else json.dumps(content)


@dataclass
class FakeAnthropic:
    api_key: str
    requests: list[Recorded] = field(default_factory=list)
    unscripted: list[str] = field(default_factory=list)
    _scripts: dict[str, deque[Response]] = field(default_factory=lambda: defaultdict(deque))
    _defaults: dict[str, Response] = field(default_factory=dict)
    _prefixes: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: itertools.count[int] = field(default_factory=itertools.count)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def script(self, tool: str, *responses: Response) -> None:
        """Answer the next requests forcing `tool` with these, in order."""
        with self._lock:
            self._scripts[tool].extend(responses)

    def always(self, tool: str, response: Response) -> None:
        """Answer requests forcing `tool` with this once its script is used up."""
        with self._lock:
            self._defaults[tool] = response

    def requests_for(self, tool: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.tool == tool]

    def start(self) -> FakeAnthropic:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one request per connection: nothing left pooled

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", "0"))).decode()
                status, headers, body, delay = fake._answer(self.path, dict(self.headers), raw)
                if delay:
                    time.sleep(delay)
                payload = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    for key, value in {**headers, "content-type": "application/json"}.items():
                        self.send_header(key, value)
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-anthropic",
            daemon=True,
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # --- the API ---------------------------------------------------------------------------

    def _answer(
        self, path: str, headers: dict[str, str], raw: str
    ) -> tuple[int, dict[str, str], dict[str, Any], float]:
        request_id = f"req_fake_{next(self._ids)}"
        lowered = {k.lower(): v for k, v in headers.items()}
        if path != "/v1/messages":
            return 404, {}, _error(404, f"no route {path}"), 0.0
        # The SDK authenticates with `x-api-key` or, in newer versions, a bearer header.
        if self.api_key not in (
            lowered.get("x-api-key"),
            lowered.get("authorization", "").removeprefix("Bearer "),
        ):
            return 401, {}, _error(401, "invalid API key"), 0.0
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            return 400, {}, _error(400, "body is not JSON"), 0.0
        record = Recorded(at=time.monotonic(), headers=lowered, body=body, raw=raw)
        with self._lock:
            self.requests.append(record)
            queue = self._scripts.get(record.tool)
            response = queue.popleft() if queue else self._defaults.get(record.tool)
            if response is None:
                self.unscripted.append(record.tool)
        if response is None:
            return 500, {"request-id": request_id}, _error(500, f"unscripted tool {record.tool!r}"), 0.0
        if isinstance(response, Error):
            extra = {"request-id": request_id}
            if response.retry_after is not None:
                extra["retry-after"] = str(response.retry_after)
            return response.status, extra, _error(response.status, response.message), response.delay
        usage = response.usage or self._usage(body, response)
        if isinstance(response, ToolUse):
            content: dict[str, Any] = {
                "type": "tool_use",
                "id": f"toolu_fake_{next(self._ids)}",
                "name": response.name or record.tool,
                "input": response.input,
            }
            stop = "tool_use"
        else:
            content, stop = {"type": "text", "text": response.text}, "end_turn"
        message = {
            "id": f"msg_fake_{next(self._ids)}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model"),
            "content": [content],
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "cache_creation_input_tokens": usage.cache_creation_input_tokens,
                "cache_read_input_tokens": usage.cache_read_input_tokens,
            },
        }
        return 200, {"request-id": request_id}, message, response.delay

    def _usage(self, body: dict[str, Any], response: ToolUse | Text) -> Usage:
        """Roughly what the real API would count: ~4 characters a token; cached prefix."""
        system = body.get("system") or []
        cached = isinstance(system, list) and any(b.get("cache_control") for b in system)
        prefix = json.dumps([body.get("tools"), system], sort_keys=True)
        prefix_tokens = len(prefix) // 4 if cached else 0
        rest = len(json.dumps(body.get("messages"))) // 4 + (0 if cached else len(prefix) // 4)
        answer = response.input if isinstance(response, ToolUse) else response.text
        digest = hashlib.sha256(prefix.encode()).hexdigest()
        with self._lock:
            hit = digest in self._prefixes
            self._prefixes.add(digest)
        return Usage(
            input_tokens=rest,
            output_tokens=max(1, len(json.dumps(answer)) // 4),
            cache_creation_input_tokens=0 if hit else prefix_tokens,
            cache_read_input_tokens=prefix_tokens if hit else 0,
        )


def _error(status: int, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message}}
