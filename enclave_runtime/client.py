"""Query the attested service: verify the TEE on each new connection, and only then send it data.

Per TLS connection, before any request carries data:
1. the server's certificate is read from the live TLS 1.3 connection (never from a header or the body);
2. `GET /.well-known/attestation?nonce=<fresh 32 random bytes>` is sent over that same connection;
3. the evidence is verified (`enclave_runtime.attest.verify`: signatures, chain to a pinned or explicitly
   trusted simulation root) and validated against the approved measurements (`enclave_runtime.policy`:
   measurements, no debug mode, no simulation in prod);
4. its report data must equal SHA-256(SPKI of *this* connection's certificate ‖ the nonce): evidence of
   another TEE relayed by a server holding another key fails (`tls-binding`), and evidence made for
   another nonce (replayed, cached) fails (`nonce`); a document older than `max_age` fails (`freshness`).
Any failure closes the connection and raises `AttestationRefused(check, message)`: fail closed.

The verified connection is kept open (keep-alive) and reused for every request: attestation costs once
per connection, never per request. If the server closes it, the next request opens and attests a new
one before sending anything (`http.client` reconnects through `connect`, which attests).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import http.client
import json
import secrets
import socket
import ssl
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .attest import Collateral, TrustStore, VerificationError, verify
from .attest.claims import Claims
from .policy import Policy, validate
from .serve.tls import BINDING_SCHEME, report_data, spki_of

ATTESTATION_PATH = "/.well-known/attestation"
NONCE_SIZE = 32
# Where each kind carries the report data it was asked to bind, and its size on the wire.
BOUND_FIELD: dict[str, tuple[str, int | None]] = {
    "aws-nitro": ("user_data", None),
    "amd-sev-snp": ("report_data", 64),
    "intel-tdx": ("report_data", 64),
    "intel-sgx": ("report_data", 64),
}


class AttestationRefused(Exception):
    """The server did not prove it is the approved TEE holding this connection's key. `check` names what failed."""

    def __init__(self, check: str, message: str) -> None:
        super().__init__(f"{check}: {message}")
        self.check, self.message = check, message


class QueryError(Exception):
    """The attested service answered with an error (its `status`, `check`, `field` and `message`)."""

    def __init__(self, status: int, check: str, field: str | None, message: str) -> None:
        super().__init__(f"HTTP {status} {check}{f' ({field})' if field else ''}: {message}")
        self.status, self.check, self.field, self.message = status, check, field, message


@dataclass(frozen=True)
class AttestedPeer:
    """What one connection's attestation established."""

    kind: str
    claims: Claims
    spki_sha256: str

    def summary(self) -> dict[str, Any]:
        claims = self.claims.as_dict()
        measured = {k: v for k, v in claims.items() if k.startswith("pcr") and k[3:] in ("0", "1", "2", "8")}
        for name in ("measurement", "host_data", "mrtd", "mrenclave"):
            if name in claims:
                measured[name] = claims[name]
        return {"kind": self.kind, "anchor": claims.get("anchor"), "debug": claims.get("debug"),
                "spkiSha256": self.spki_sha256, "measurements": measured}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True)
class Verifier:
    """Decides whether one connection's evidence is acceptable. Pure: no I/O, so the sync client, the
    asyncio load generator and tests all apply exactly the same checks."""

    policy: Policy
    store: TrustStore = field(default_factory=TrustStore)
    max_age: dt.timedelta = dt.timedelta(minutes=5)
    clock: Callable[[], dt.datetime] = _now

    def check(self, certificate_der: bytes, nonce: bytes, body: bytes) -> AttestedPeer:
        try:
            live_spki = spki_of(certificate_der)
        except ValueError as exc:
            raise AttestationRefused("tls", f"the server's TLS certificate is unreadable: {exc}") from None
        try:
            answer = json.loads(body)
            kind, scheme = answer["kind"], answer["binding"]
            evidence = base64.b64decode(answer["evidence"], validate=True)
            claimed_spki = base64.b64decode(answer.get("spki") or "", validate=True)
            collateral = Collateral()
            for item in answer.get("collateral") or []:
                collateral.add(base64.b64decode(item["der"], validate=True), str(item.get("name", "collateral")))
        except (ValueError, KeyError, TypeError, binascii.Error, VerificationError) as exc:
            raise AttestationRefused("response", f"the attestation response is not the expected JSON "
                                     f"{{kind, binding, evidence, spki, collateral}}: {exc}") from None
        if scheme != BINDING_SCHEME:
            raise AttestationRefused("binding", f"the server binds its key as {scheme!r}; this client checks "
                                     f"only {BINDING_SCHEME!r}")
        if kind not in BOUND_FIELD:
            raise AttestationRefused("kind", f"evidence kind {kind!r} cannot bind a TLS key here; "
                                     f"supported: {sorted(BOUND_FIELD)}")
        now = self.clock()
        try:
            claims = verify(kind, evidence, collateral=collateral, store=self.store, at=now)
        except VerificationError as exc:
            raise AttestationRefused(exc.check, exc.message) from None
        decision = validate(kind, claims, self.policy)
        if not decision.allowed:
            first = decision.failed[0]
            raise AttestationRefused(first.check, "; ".join(f"{f.check}: {f.message}" for f in decision.failed))
        self._check_binding(kind, claims, live_spki, claimed_spki, nonce)
        timestamp = getattr(claims, "timestamp", None)
        if isinstance(timestamp, dt.datetime) and not -dt.timedelta(minutes=1) <= now - timestamp <= self.max_age:
            raise AttestationRefused("freshness", f"the evidence was made at {timestamp.isoformat()}, "
                                     f"{now - timestamp} from now; accepted: at most {self.max_age} old")
        return AttestedPeer(kind, claims, hashlib.sha256(live_spki).hexdigest())

    @staticmethod
    def _check_binding(kind: str, claims: Claims, live: bytes, claimed: bytes, nonce: bytes) -> None:
        name, size = BOUND_FIELD[kind]
        bound = getattr(claims, name, None)
        expected = report_data(live, nonce)
        if size is not None:
            expected = expected.ljust(size, b"\0")
        if isinstance(bound, bytes) and secrets.compare_digest(bound, expected):
            return
        # Refused either way; the diagnosis says which attack (or bug) it looks like.
        claimed_ok = claimed and isinstance(bound, bytes) and bound.rstrip(b"\0") == report_data(claimed, nonce)
        if claimed_ok and claimed != live:
            raise AttestationRefused(
                "tls-binding",
                f"the evidence binds TLS key sha256:{hashlib.sha256(claimed).hexdigest()[:16]}…, but this "
                f"connection's key is sha256:{hashlib.sha256(live).hexdigest()[:16]}…: TLS ends outside the "
                "attested TEE (a relay or proxy); connect to the TEE directly",
            )
        raise AttestationRefused(
            "nonce",
            f"the evidence's {name} ({bound.hex()[:16] if isinstance(bound, bytes) else bound!r}…) does not "
            f"commit to this connection's key and nonce {nonce.hex()[:16]}…: it was made for another request "
            "(replayed or cached evidence)",
        )


def client_context() -> ssl.SSLContext:
    """TLS 1.3 without CA checks: no CA vouches for a TEE's self-generated key; the evidence, checked
    against this very connection's key, is what authenticates the server."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["http/1.1"])
    return context


def attestation_request(host: str, nonce: bytes) -> bytes:
    return (f"GET {ATTESTATION_PATH}?nonce={nonce.hex()} HTTP/1.1\r\nHost: {host}\r\n"
            "Accept: application/json\r\n\r\n").encode()


class _AttestedConnection(http.client.HTTPConnection):
    """An HTTP/1.1 connection whose `connect` attests before returning, so nothing is sent unattested,
    whether the connection is opened first or re-opened after the server closed it."""

    def __init__(self, host: str, port: int, verifier: Verifier, timeout: float,
                 on_attested: Callable[[AttestedPeer], None]) -> None:
        super().__init__(host, port, timeout=timeout)
        self.verifier, self.on_attested = verifier, on_attested
        self.context = client_context()

    def connect(self) -> None:
        raw = socket.create_connection((self.host, self.port), self.timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            tls = self.context.wrap_socket(raw, server_hostname=self.host)
        except (ssl.SSLError, OSError) as exc:
            raw.close()
            raise AttestationRefused("tls", f"TLS 1.3 handshake with {self.host}:{self.port} failed: {exc}") from None
        try:
            certificate = tls.getpeercert(binary_form=True)
            if not certificate:
                raise AttestationRefused("tls", "the server presented no certificate")
            nonce = secrets.token_bytes(NONCE_SIZE)
            tls.sendall(attestation_request(self.host, nonce))
            response = http.client.HTTPResponse(tls, method="GET")
            response.begin()
            body = response.read()
            if response.status != 200:
                raise AttestationRefused("evidence", f"the server answered {response.status} to the evidence "
                                         f"request: {body[:300].decode(errors='replace')}")
            if response.will_close:
                raise AttestationRefused("evidence", "the server closed the connection it attested")
            peer = self.verifier.check(certificate, nonce, body)
        except BaseException:
            tls.close()
            raise
        self.sock = tls
        self.on_attested(peer)


class AttestedClient:
    """A session with the attested service: `with AttestedClient(url, verifier) as c: c.infer([[...]])`.

    Not thread-safe (one connection); use one client per thread or task.
    """

    def __init__(self, url: str, verifier: Verifier, *, timeout: float = 10.0) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme != "https" or not parsed.hostname:
            raise ValueError(f"url {url!r}: expected https://HOST[:PORT] (the service speaks TLS 1.3 only)")
        self.host, self.port = parsed.hostname, parsed.port or 443
        self.base = parsed.path.rstrip("/")
        self.attestations = 0
        self.peer: AttestedPeer | None = None
        self._conn = _AttestedConnection(self.host, self.port, verifier, timeout, self._attested)

    def _attested(self, peer: AttestedPeer) -> None:
        self.peer = peer
        self.attestations += 1

    def __enter__(self) -> "AttestedClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    def connect(self) -> AttestedPeer:
        """Open and attest the connection now (otherwise the first request does)."""
        if self._conn.sock is None:
            self._conn.connect()
        assert self.peer is not None
        return self.peer

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One request over the attested connection; the decoded JSON answer, or QueryError."""
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        for attempt in (1, 2):
            fresh = self._conn.sock is None
            try:
                self._conn.request(method, self.base + path, body=payload, headers=headers)
                response = self._conn.getresponse()
                data = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ssl.SSLEOFError):
                # The server closed an idle keep-alive connection; our bytes went only to the attested peer.
                # Retry once on a new connection, which attests before sending.
                self._conn.close()
                if fresh or attempt == 2:
                    raise
        try:
            answer = json.loads(data)
        except ValueError:
            raise QueryError(response.status, "response", None, f"not JSON: {data[:200]!r}") from None
        if response.status >= 400:
            error = answer.get("error", {}) if isinstance(answer, dict) else {}
            raise QueryError(response.status, error.get("check", "http"), error.get("field"),
                             error.get("message", str(answer)[:300]))
        return answer

    def infer(self, inputs: list[list[float]]) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", "/v1/infer", {"inputs": inputs})
        return result

    def model(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/v1/model")
        return result

    def outputs(self) -> list[str]:
        return list(self.request("GET", "/v1/outputs")["outputs"])

    def output(self, name: str) -> Any:
        return self.request("GET", f"/v1/outputs/{urllib.parse.quote(name, safe='')}")["value"]
