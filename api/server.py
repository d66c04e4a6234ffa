"""How the API is served: uvicorn (httptools, uvloop) with deadlines for slow clients.

uvicorn bounds idle keep-alive connections but not a request in progress: a connection
that never finishes its headers, or dribbles them a byte at a time, is held open forever,
and so are headers of any size. `BoundedHttpProtocol` adds, per connection:

- a head deadline (`api_head_timeout_seconds`): from the connection's first moment, and
  from the first byte of each later request, the headers must be complete in time; else
  408 and close;
- a head size bound (`MAX_HEAD_BYTES`): larger headers get 431 and close;
- bytes that are not HTTP get uvicorn's 400, as a JSON Problem like every other refusal;
- a body deadline (`api_body_timeout_seconds`, plus a grace second so the app's own 408 is
  the answer when the app is reading the body): a body still incomplete then closes the
  connection, which covers bodies no handler reads (a 404, a 401 already answered).

Idle keep-alive connections close after `KEEP_ALIVE_SECONDS`, as before.
"""

from __future__ import annotations

import asyncio
import http
import json
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from runtime.settings import Settings

KEEP_ALIVE_SECONDS = 30
MAX_HEAD_BYTES = 64 * 1024  # request line and headers; a webhook's are well under 4 KiB
BODY_GRACE_SECONDS = 1.0


class HeadTooLarge(Exception):
    """Raised inside a parser callback to stop parsing a head that is already refused."""


class BoundedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a head deadline, a head size bound and a body deadline."""

    head_timeout: float = 10.0
    body_timeout: float = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._in_head = True  # between a request's first byte (or the connection's start) and its headers
        self._head_bytes = 0
        self._parsed_head = 0

    def _arm(self, seconds: float, expired: Any) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.head_timeout, self._head_expired)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and self._head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
            self._refuse(431, f"request headers larger than {MAX_HEAD_BYTES} bytes (the limit)")

    def on_url(self, url: bytes) -> None:
        self._head_size(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _head_size(self, more: int) -> None:
        """Count a complete head's bytes; the parser may deliver a whole large head in one feed."""
        self._parsed_head += more
        if self._parsed_head > MAX_HEAD_BYTES:
            self._refuse(431, f"request headers larger than {MAX_HEAD_BYTES} bytes (the limit)")
            raise HeadTooLarge  # stops the parser; data_received's 400 sees the closing transport

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._parsed_head = 0
        if not self._in_head:  # a keep-alive connection's next request: a fresh deadline
            self._in_head = True
            self._head_bytes = 0
            self._arm(self.head_timeout, self._head_expired)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        self._arm(self.body_timeout + BODY_GRACE_SECONDS, self._body_expired)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _head_expired(self) -> None:
        self._deadline = None
        if self._in_head and not self.transport.is_closing():
            self._refuse(408, f"request headers not received within {self.head_timeout:g} seconds")

    def _body_expired(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.logger.info("closing a connection whose body did not arrive in time")
            if self.cycle is not None and not self.cycle.response_complete:
                self.cycle.keep_alive = False
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        # uvicorn's answer to bytes that are not HTTP (bad chunk sizes, both Content-Length and
        # Transfer-Encoding, ...): the same JSON Problem shape as every other refusal.
        if not self.transport.is_closing():
            self._refuse(400, f"not a valid HTTP/1.1 request: {msg}")

    def _refuse(self, status: int, message: str) -> None:
        body = json.dumps({"error": message, "detail": []}).encode()
        phrase = http.HTTPStatus(status).phrase.encode()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, phrase, len(body), body)
        )
        self.transport.close()


def protocol_for(settings: Settings) -> type[BoundedHttpProtocol]:
    """The protocol class with this configuration's deadlines (uvicorn instantiates it per connection)."""
    return type(
        "FirebreakHttpProtocol",
        (BoundedHttpProtocol,),
        {
            "head_timeout": settings.api_head_timeout_seconds,
            "body_timeout": settings.api_body_timeout_seconds,
        },
    )


def serve(app: Any, settings: Settings) -> None:
    """Run the API until stopped, as `python -m api` (and so `make dev`) does."""
    uvicorn.run(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_level="info",
        access_log=settings.api_access_log,  # one line per alert is costly in a storm
        http=protocol_for(settings),
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
