"""uvicorn's httptools protocol plus a header deadline: the one bound uvicorn itself lacks.

uvicorn times out idle keep-alive connections and the app bounds body time, but a client that sends
its request headers one byte at a time (slowloris) would hold a connection open for ever. Here every
request's headers must be complete within `header_timeout` seconds of its first byte (of the connection,
for the first request), or the connection gets a 408 and is closed.

It also hands the app the connection's client certificate (mutual TLS, for the declared outputs' recipients)
as the ASGI TLS extension: `scope["extensions"]["tls"]["client_cert_chain"]`, PEM, empty when none.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

DEFAULT_HEADER_TIMEOUT = 10.0


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.header_timeout: float = getattr(config, "header_timeout", DEFAULT_HEADER_TIMEOUT)
        self._header_timer: asyncio.TimerHandle | None = None
        self._client_certs: list[str] = []

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # The handshake is complete here (TLS 1.3: the client's certificate came with its Finished).
        tls = transport.get_extra_info("ssl_object")
        der = tls.getpeercert(binary_form=True) if tls is not None else None
        self._client_certs = [ssl.DER_cert_to_PEM_cert(der)] if der else []
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["extensions"] = {"tls": {"client_cert_chain": self._client_certs}}  # type: ignore[typeddict-unknown-key]
        if self._header_timer is None:
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self._arm()  # a pipelined request behind one still answering: judge it once that one is done
            return
        body = json.dumps({"error": {
            "status": 408, "check": "timeout", "field": "headers",
            "message": f"request headers not complete within {self.header_timeout}s: send the request at once",
        }}).encode()
        self.transport.write(
            b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        self.transport.close()
