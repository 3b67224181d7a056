"""Run the service on uvicorn: TLS 1.3 with the in-memory key, bounded timeouts, graceful shutdown.

One process, one event loop: the model is in memory and requests are microseconds of work, so a second
worker would mostly add a second TLS key and attestation to keep apart. Scale is by replicas (README,
"Query the collaboration"). On SIGTERM/SIGINT uvicorn stops accepting, lets every in-flight request
finish (up to `graceful_timeout`), closes idle keep-alive connections, then exits.
"""

from __future__ import annotations

from dataclasses import dataclass

import uvicorn

from .app import Service, build_app
from .protocol import DEFAULT_HEADER_TIMEOUT, BoundedHttpToolsProtocol


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8443
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    # Long enough that a client's session (one attestation) spans many requests; load balancers'
    # idle timeouts are 60 s (AWS ALB) to 350 s, so a client re-attests at most about once a minute.
    keep_alive: int = 75
    graceful_timeout: int = 30
    limit_concurrency: int = 4096  # connections + tasks; beyond it uvicorn answers 503 instead of queueing
    backlog: int = 2048
    log_level: str = "warning"
    access_log: bool = False


def build_server(service: Service, settings: Settings = Settings()) -> uvicorn.Server:
    """A uvicorn server for `service`; `server.run()` blocks until shutdown (`server.should_exit = True`
    or a signal)."""
    config = uvicorn.Config(
        build_app(service),
        host=settings.host,
        port=settings.port,
        http=BoundedHttpToolsProtocol,
        loop="auto",
        lifespan="on",
        ssl_context_factory=lambda _config, _default: service.identity.ssl_context(service.access.trust_pem()),
        timeout_keep_alive=settings.keep_alive,
        timeout_graceful_shutdown=settings.graceful_timeout,
        limit_concurrency=settings.limit_concurrency,
        backlog=settings.backlog,
        log_level=settings.log_level,
        access_log=settings.access_log,
        server_header=False,
        date_header=False,
    )
    config.header_timeout = settings.header_timeout  # type: ignore[attr-defined]  # read by the protocol
    return uvicorn.Server(config)
