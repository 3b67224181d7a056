"""The ASGI app (Starlette): attestation, health, inference and declared outputs.

Every answer is JSON. Every client error is a 4xx naming the check, the field and the fix, in one shape:
`{"error": {"status", "check", "field", "message"}}`; an unexpected failure is a 500 of the same shape
without any detail of the server (never a traceback). Request bodies are bounded in size (413 before
reading when Content-Length says so, otherwise while streaming) and in time (408), so one slow or
oversized client costs the others nothing.

Attestation is per connection, not per request: `GET /.well-known/attestation?nonce=<hex>` returns fresh
evidence whose report data is SHA-256(spki ‖ nonce); the client checks it once when it opens the TLS
connection and then sends any number of requests over it (keep-alive). The inference path does no
attestation work at all, which is why the attested service runs as fast as the plain one.

Declared outputs are released per recipient (`access.Access`): `/v1/outputs/NAME` answers only a connection
whose TLS client certificate carries the key of a declared recipient of NAME (401 without a certificate,
403 for anyone else), and `/v1/outputs` lists only what the caller may read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from cryptography import x509

from ..evidence.base import Collector, EvidenceError
from .access import Access, spki_sha256
from .evidence import document
from .model import Model, Outputs
from .tls import NONCE_MAX, NONCE_MIN, TlsIdentity

ATTESTATION_PATH = "/.well-known/attestation"
JSON = "application/json"


@dataclass(frozen=True)
class Limits:
    """Bounds on what one request may cost. Defaults suit small JSON queries; raise them deliberately."""

    max_body: int = 64 * 1024  # bytes
    body_timeout: float = 10.0  # seconds to receive the whole body
    predict_timeout: float = 5.0  # seconds for a blocking model's predict
    evidence_timeout: float = 10.0  # seconds to wait for (and produce) evidence
    evidence_concurrency: int = 4  # evidence productions at once (the NSM is one device)


class ApiError(Exception):
    """A request the service refuses: `status`, the `check` that failed, the `field` to fix."""

    def __init__(self, status: int, check: str, field: str | None, message: str, *, close: bool = False) -> None:
        super().__init__(message)
        self.status, self.check, self.field, self.message, self.close = status, check, field, message, close

    def response(self) -> Response:
        headers = {"connection": "close"} if self.close else None
        return _json(
            {"error": {"status": self.status, "check": self.check, "field": self.field, "message": self.message}},
            self.status, headers,
        )


def _json(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(json.dumps(data, separators=(",", ":")).encode(), status, headers, JSON)


@dataclass
class Service:
    """Everything the app serves. `collector` None is the plain (unattested) variant the benchmark compares
    against; it serves no attestation endpoint, so no client policy can accept it."""

    identity: TlsIdentity
    collector: Collector | None
    model: Model | None
    outputs: Outputs = field(default_factory=Outputs)
    limits: Limits = field(default_factory=Limits)
    access: Access = field(default_factory=Access)  # who may read which output (default: no one)
    evidence_ok: bool = False
    evidence_error: str | None = "evidence not produced yet"
    _evidence_slots: asyncio.Semaphore | None = None
    _last_check: float = 0.0

    def produce(self, nonce: bytes) -> dict[str, Any]:
        """Evidence for this connection (blocking: the NSM is an ioctl); records whether it worked."""
        assert self.collector is not None
        try:
            answer = document(self.collector, self.identity, nonce)
        except EvidenceError as exc:
            self.evidence_ok, self.evidence_error = False, str(exc)
            raise
        self.evidence_ok, self.evidence_error = True, None
        return answer

    def self_check(self) -> None:
        """Produce evidence once (startup, and `/readyz` while not ready): readiness means a client could
        be attested now, not merely that the process is up."""
        self._last_check = time.monotonic()
        if self.collector is None:
            self.evidence_ok, self.evidence_error = True, None
            return
        try:
            self.produce(bytes(NONCE_MIN))
        except EvidenceError:
            pass
        except Exception as exc:  # a broken collector must read as "not ready", not crash the probe
            self.evidence_ok, self.evidence_error = False, f"{type(exc).__name__}: {exc}"

    @property
    def ready(self) -> bool:
        return self.model is not None and self.evidence_ok


def build_app(service: Service) -> Starlette:
    limits = service.limits

    async def healthz(request: Request) -> Response:
        return _json({"status": "ok"})

    async def readyz(request: Request) -> Response:
        if not service.ready and time.monotonic() - service._last_check > 5.0:
            await run_in_threadpool(service.self_check)
        if service.ready:
            return _json({"status": "ready", "model": service.model.name if service.model else None,
                          "attested": service.collector is not None})
        reasons = []
        if service.model is None:
            reasons.append("model not loaded")
        if not service.evidence_ok:
            reasons.append(f"cannot produce attestation evidence: {service.evidence_error}")
        return _json({"status": "not ready", "reasons": reasons}, 503, {"retry-after": "5"})

    async def attestation(request: Request) -> Response:
        nonce = _nonce(request.query_params.get("nonce"))
        slots = service._evidence_slots
        if slots is None:
            slots = service._evidence_slots = asyncio.Semaphore(limits.evidence_concurrency)
        try:
            async with asyncio.timeout(limits.evidence_timeout):
                async with slots:
                    body = await run_in_threadpool(service.produce, nonce)
        except TimeoutError:
            raise ApiError(503, "evidence", None, f"evidence not produced within {limits.evidence_timeout}s "
                           "(the attestation device is busy): retry with backoff") from None
        except EvidenceError as exc:
            raise ApiError(503, "evidence", None, f"the TEE could not produce evidence: {exc}") from None
        return _json(body, headers={"cache-control": "no-store"})

    async def model_info(request: Request) -> Response:
        return _json(_model(service).describe())

    async def infer(request: Request) -> Response:
        model = _model(service)
        data = await _read_json(request, limits)
        rows = _rows(data, model)
        if model.blocking:
            try:
                outputs = await asyncio.wait_for(run_in_threadpool(model.predict, rows), limits.predict_timeout)
            except TimeoutError:
                raise ApiError(503, "timeout", None, f"the model did not answer within {limits.predict_timeout}s: "
                               "send fewer rows or retry") from None
        else:
            outputs = model.predict(rows)
        return _json({"model": model.name, "version": model.version, "outputs": outputs})

    def readable(party: str) -> list[str]:
        return sorted(n for n in service.outputs.values if service.access.may_read(n, party))

    async def output_names(request: Request) -> Response:
        return _json({"outputs": readable(_recipient(request, service.access))})

    async def output(request: Request) -> Response:
        name = request.path_params["name"]
        party = _recipient(request, service.access)
        if name not in service.outputs.values:
            raise ApiError(404, "output", "name", f"no declared output {name!r}; yours: {readable(party)} "
                           "(GET /v1/outputs)")
        if not service.access.may_read(name, party):
            raise ApiError(403, "recipient", "name", f"output {name!r} is not released to {party!r}: it is not a "
                           f"declared recipient of {name!r} (ccp:collaboration.outputs[].recipients)")
        return _json({"name": name, "value": service.outputs.values[name]})

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/v1/model", model_info, methods=["GET"]),
        Route("/v1/infer", infer, methods=["POST"]),
        Route("/v1/outputs", output_names, methods=["GET"]),
        Route("/v1/outputs/{name}", output, methods=["GET"]),
    ]
    if service.collector is not None:
        routes.append(Route(ATTESTATION_PATH, attestation, methods=["GET"]))

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return exc.response()

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        check = {404: "route", 405: "method"}.get(exc.status_code, "request")
        message = {
            404: f"no endpoint {request.url.path}: use /v1/infer, /v1/model, /v1/outputs, /healthz, /readyz"
                 + (f", {ATTESTATION_PATH}" if service.collector is not None else ""),
            405: f"{request.method} is not allowed on {request.url.path}",
        }.get(exc.status_code, str(exc.detail))
        return ApiError(exc.status_code, check, None, message).response()

    async def internal(request: Request, exc: Exception) -> Response:
        # Logged server-side by uvicorn; the client learns only that it was not its fault.
        return ApiError(500, "internal", None, "the service failed on this request; it was logged").response()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await run_in_threadpool(service.self_check)
        yield

    return Starlette(
        routes=routes,
        exception_handlers={ApiError: api_error, HTTPException: http_error, Exception: internal},
        lifespan=lifespan,
    )


def _model(service: Service) -> Model:
    if service.model is None:
        raise ApiError(503, "model", None, "the model is not loaded yet: wait for /readyz")
    return service.model


def _recipient(request: Request, access: Access) -> str:
    """The declared party whose key this connection's client certificate carries; 401/403 otherwise."""
    chain = request.scope.get("extensions", {}).get("tls", {}).get("client_cert_chain") or []
    if not chain:
        raise ApiError(401, "client-certificate", None, "outputs are released only to their declared recipients: "
                       "connect with your party's client certificate (query --client-cert/--client-key)")
    digest = spki_sha256(x509.load_pem_x509_certificate(chain[0].encode()))
    party = access.party(digest)
    if party is None:  # the handshake admits only declared certificates; this is the second lock
        raise ApiError(403, "recipient", None, f"client key sha256:{digest[:16]}… is not a declared recipient's key")
    return party


def _nonce(value: str | None) -> bytes:
    if value is None:
        raise ApiError(400, "nonce", "nonce", f"give a fresh random nonce: {ATTESTATION_PATH}?nonce=<hex, "
                       f"{NONCE_MIN}..{NONCE_MAX} bytes>; evidence is never served without one")
    try:
        nonce = bytes.fromhex(value)
    except ValueError:
        raise ApiError(400, "nonce", "nonce", f"nonce {value[:80]!r} is not hex") from None
    if not NONCE_MIN <= len(nonce) <= NONCE_MAX:
        raise ApiError(400, "nonce", "nonce", f"nonce is {len(nonce)} bytes; give {NONCE_MIN}..{NONCE_MAX} random bytes")
    return nonce


async def _read_json(request: Request, limits: Limits) -> Any:
    content_type = request.headers.get("content-type")
    if content_type is not None and not content_type.split(";")[0].strip().lower().endswith("json"):
        raise ApiError(415, "content-type", "content-type", f"content-type is {content_type!r}; send {JSON}")
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, "size", "content-length", f"content-length {declared!r} is not a number", close=True)
        if int(declared) > limits.max_body:
            raise ApiError(413, "size", "body", f"body is {declared} bytes; the limit is {limits.max_body}: "
                           "send fewer rows per request", close=True)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(limits.body_timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limits.max_body:
                    raise ApiError(413, "size", "body", f"body exceeds the limit of {limits.max_body} bytes: "
                                   "send fewer rows per request", close=True)
                chunks.append(chunk)
    except TimeoutError:
        raise ApiError(408, "timeout", "body", f"the body did not arrive within {limits.body_timeout}s "
                       f"({size} bytes received): send it at once", close=True) from None
    except ClientDisconnect:
        raise ApiError(400, "body", "body", "the client disconnected before sending the whole body", close=True) from None
    body = b"".join(chunks)
    if not body:
        raise ApiError(400, "json", "body", 'the body is empty: send a JSON object, e.g. {"inputs": [[1, 2, 3, 4]]}')
    try:
        return json.loads(body, parse_constant=_no_constant)
    except ValueError as exc:
        raise ApiError(400, "json", "body", f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise ApiError(400, "json", "body", "the body nests too deeply") from None


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def _rows(data: Any, model: Model) -> list[list[float]]:
    """`{"inputs": [[x1..xn], ...]}` with n = model.features and 1..max_rows rows, every x a finite number."""
    if not isinstance(data, dict):
        raise ApiError(422, "shape", "body", f"expected a JSON object {{\"inputs\": [[...]]}}, got {type(data).__name__}")
    unknown = set(data) - {"inputs"}
    if unknown:
        raise ApiError(422, "shape", sorted(unknown)[0], f"unknown field(s) {sorted(unknown)}: only \"inputs\" is accepted")
    rows = data.get("inputs")
    if not isinstance(rows, list) or not rows:
        raise ApiError(422, "shape", "inputs", f"inputs must be a non-empty list of rows, got {_kind(rows)}")
    if len(rows) > model.max_rows:
        raise ApiError(422, "shape", "inputs", f"inputs has {len(rows)} rows; at most {model.max_rows} per request")
    n = model.features
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != n:
            got = f"{len(row)} values" if isinstance(row, list) else _kind(row)
            raise ApiError(422, "shape", f"inputs[{i}]", f"each row must be a list of {n} numbers (the model's "
                           f"features), got {got}")
        for j, x in enumerate(row):
            if type(x) is not float and (type(x) is not int or not -(2**53) <= x <= 2**53):
                raise ApiError(422, "shape", f"inputs[{i}][{j}]", f"expected a number, got {_kind(x)}")
            if type(x) is float and not math.isfinite(x):
                raise ApiError(422, "shape", f"inputs[{i}][{j}]", "expected a finite number")
    return rows


def _kind(value: Any) -> str:
    return "null" if value is None else f"{type(value).__name__} {json.dumps(value)[:40]}"
