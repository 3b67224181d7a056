"""The loopback server every stand-in runs on, with injectable faults.

`Faults` lets a test make the next N requests fail the way real services fail (429, 500, a slow answer, a
dropped connection) without touching the stand-in's logic; the SDK clients' retries meet real sockets.
"""

from __future__ import annotations

import json
import ssl
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Mapping

# (status, headers, body) — what a route returns.
Response = tuple[int, Mapping[str, str], bytes]


@dataclass
class Request:
    method: str
    path: str  # with the query string
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body or b"null")


Handler = Callable[[Request], Response]


@dataclass
class Faults:
    """Faults applied to the next requests, in order: `status` (e.g. 429, 500), `delay` seconds, or `drop`."""

    queue: list[tuple[str, float | int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    served: int = 0

    def add(self, kind: str, value: float | int = 0, times: int = 1) -> None:
        if kind not in {"status", "delay", "drop"}:
            raise ValueError(f"fault kind {kind!r} is not one of status, delay, drop")
        with self.lock:
            self.queue.extend([(kind, value)] * times)

    def take(self) -> tuple[str, float | int] | None:
        with self.lock:
            self.served += 1
            return self.queue.pop(0) if self.queue else None

    def clear(self) -> None:
        with self.lock:
            self.queue.clear()


def json_response(status: int, body: object, headers: Mapping[str, str] | None = None) -> Response:
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(body).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    handler: Handler
    faults: Faults
    tls: ssl.SSLContext | None = None

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that gave up (a timeout or dropped-connection test) is normal, not a stand-in failure:
        # nothing to print. Anything else keeps socketserver's report.
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError, ssl.SSLError)):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]

    def finish_request(self, request: object, client_address: object) -> None:
        # The TLS handshake runs in the connection's own thread, so one slow client cannot stall accept().
        if self.tls is not None:
            try:
                request = self.tls.wrap_socket(request, server_side=True)  # type: ignore[arg-type]
            except (ssl.SSLError, OSError):
                return
        super().finish_request(request, client_address)  # type: ignore[arg-type]


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, a keep-alive client's delayed ACK adds
    # ~40 ms to every response (measured: a bare round trip took 44 ms, 0.6 ms with this set).
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        return

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        fault = self.server.faults.take()
        if fault is not None:
            kind, value = fault
            if kind == "drop":
                self.close_connection = True
                self.connection.close()
                return
            if kind == "delay":
                time.sleep(float(value))
            elif kind == "status":
                self._send(*json_response(int(value), {"message": f"injected fault {value}"}))
                return
        request = Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        try:
            status, headers, payload = self.server.handler(request)
        except Exception as error:  # a stand-in bug must surface as a 500 naming it, not a hung client
            status, headers, payload = json_response(500, {"message": f"stand-in error: {type(error).__name__}: {error}"})
        self._send(status, headers, payload)

    def _send(self, status: int, headers: Mapping[str, str], payload: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve


class Running:
    """A started server: `url`, `faults`, `stop()`; a context manager."""

    def __init__(self, handler: Handler, *, host: str = "127.0.0.1", port: int = 0, tls: tuple[Path, Path] | None = None) -> None:
        self._server = _Server((host, port), _RequestHandler)
        self._server.handler = handler
        self.faults = self._server.faults = Faults()
        scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self._server.tls = context
            scheme = "https"
        self.host, self.port = self._server.server_address[:2]
        self.url = f"{scheme}://{'localhost' if tls else self.host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"stand-in {self.url}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "Running":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_for_interrupt() -> None:
    """Keep a stand-in started from the command line running until Ctrl-C (its caller then stops it)."""
    print("Ctrl-C to stop.", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
