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

Availability: `FailoverClient` holds one attested session per replica (the pods behind the Kubernetes
Service, `components.kubernetes.query_service`) and retries an idempotent request on another replica
when its replica's connection fails, attesting that replica first like any new connection. A replica
whose attestation is refused is never used again by that client: failover never sends to an unattested
peer and never turns a refusal into an answer from an unverified server.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import http.client
import json
import os
import secrets
import socket
import ssl
import time
import urllib.parse
from collections.abc import Callable, Sequence
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


class Unreachable(AttestationRefused):
    """The TLS handshake itself failed (the replica is down or going away): no evidence was judged and
    nothing was sent. Still an `AttestationRefused` (check `tls`), so single-server callers fail closed
    as before; `FailoverClient` treats it as an outage, not as a refused TEE."""


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


@dataclass(frozen=True)
class Attestation:
    """An attestation answer as the runtime's endpoints serve it (`enclave_runtime.serve.evidence.document`),
    decoded but not yet judged: the whole answer as JSON in `answer` (extra fields, e.g. a certificate)."""

    kind: str
    evidence: bytes
    spki: bytes
    collateral: Collateral
    answer: dict[str, Any]


def read_attestation(body: bytes) -> Attestation:
    """Decode an attestation answer; AttestationRefused (`response`, `binding`) when it is not one this
    runtime can check. Nothing is verified here: see `Verifier.check` and `ml.attestation.AttestationGate`."""
    try:
        answer = json.loads(body)
        kind, scheme = answer["kind"], answer["binding"]
        evidence = base64.b64decode(answer["evidence"], validate=True)
        claimed_spki = base64.b64decode(answer.get("spki") or "", validate=True)
        collateral = Collateral()
        for item in answer.get("collateral") or []:
            collateral.add(base64.b64decode(item["der"], validate=True), str(item.get("name", "collateral")))
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error, VerificationError) as exc:
        raise AttestationRefused("response", f"the attestation response is not the expected JSON "
                                 f"{{kind, binding, evidence, spki, collateral}}: {exc}") from None
    if scheme != BINDING_SCHEME:
        raise AttestationRefused("binding", f"the server binds its key as {scheme!r}; this client checks "
                                 f"only {BINDING_SCHEME!r}")
    return Attestation(str(kind), evidence, claimed_spki, collateral, answer)


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
        answer = read_attestation(body)
        kind, evidence, claimed_spki, collateral = answer.kind, answer.evidence, answer.spki, answer.collateral
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

        def field_value(spki: bytes) -> bytes:
            value = report_data(spki, nonce)
            return value.ljust(size, b"\0") if size is not None else value

        if isinstance(bound, bytes) and secrets.compare_digest(bound, field_value(live)):
            return
        # Refused either way; the diagnosis says which attack (or bug) it looks like. (Compared padded, not
        # with the padding stripped: a digest may itself end in zero bytes.)
        claimed_ok = bool(claimed) and isinstance(bound, bytes) and bound == field_value(claimed)
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


def client_context(client_cert: str | os.PathLike[str] | None = None,
                   client_key: str | os.PathLike[str] | None = None) -> ssl.SSLContext:
    """TLS 1.3 without CA checks: no CA vouches for a TEE's self-generated key; the evidence, checked
    against this very connection's key, is what authenticates the server.

    `client_cert` (PEM; its key in `client_key` or in the same file): the party's client certificate, which
    the service asks for and which authorizes reading the outputs declared for that party. It is presented
    only in the TLS 1.3 handshake, encrypted, after the server's certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["http/1.1"])
    if client_cert is not None:
        try:
            context.load_cert_chain(client_cert, client_key)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"client certificate {client_cert} / key {client_key or client_cert}: cannot load: "
                             f"{exc}") from None
    elif client_key is not None:
        raise ValueError("client_key needs client_cert")
    return context


def attestation_request(host: str, nonce: bytes) -> bytes:
    return (f"GET {ATTESTATION_PATH}?nonce={nonce.hex()} HTTP/1.1\r\nHost: {host}\r\n"
            "Accept: application/json\r\n\r\n").encode()


class _AttestedConnection(http.client.HTTPConnection):
    """An HTTP/1.1 connection whose `connect` attests before returning, so nothing is sent unattested,
    whether the connection is opened first or re-opened after the server closed it."""

    def __init__(self, host: str, port: int, verifier: Verifier, timeout: float,
                 on_attested: Callable[[AttestedPeer], None], context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=timeout)
        self.verifier, self.on_attested = verifier, on_attested
        self.context = context
        self.presents_certificate = False

    def connect(self) -> None:
        raw = socket.create_connection((self.host, self.port), self.timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            tls = self.context.wrap_socket(raw, server_hostname=self.host)
        except (ssl.SSLError, OSError) as exc:
            raw.close()
            raise Unreachable("tls", f"TLS 1.3 handshake with {self.host}:{self.port} failed: {exc}") from None
        try:
            certificate = tls.getpeercert(binary_form=True)
            if not certificate:
                raise AttestationRefused("tls", "the server presented no certificate")
            nonce = secrets.token_bytes(NONCE_SIZE)
            tls.sendall(attestation_request(self.host, nonce))
            response = http.client.HTTPResponse(tls, method="GET")
            try:
                response.begin()
            except (ConnectionResetError, ssl.SSLError) as exc:  # RemoteDisconnected is a ConnectionResetError
                if not self.presents_certificate:
                    raise
                # TLS 1.3: the server judges the client certificate after the client's handshake is done.
                raise Unreachable("client-certificate", f"{self.host}:{self.port} closed the connection right after "
                                  "the TLS handshake: it most likely does not accept this client certificate (not a "
                                  f"declared recipient's): {exc}") from None
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


class _Queries:
    """The service's API in terms of `request` (shared by the single-replica and the failover client)."""

    def request(self, method: str, path: str, body: Any = None) -> Any:
        raise NotImplementedError

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


class AttestedClient(_Queries):
    """A session with the attested service: `with AttestedClient(url, verifier) as c: c.infer([[...]])`.

    `client_cert`/`client_key`: the party's client certificate (see `client_context`), needed only to read
    the outputs declared for the party; inference needs none.

    Not thread-safe (one connection); use one client per thread or task.
    """

    def __init__(self, url: str, verifier: Verifier, *, timeout: float = 10.0,
                 client_cert: str | os.PathLike[str] | None = None,
                 client_key: str | os.PathLike[str] | None = None) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme != "https" or not parsed.hostname:
            raise ValueError(f"url {url!r}: expected https://HOST[:PORT] (the service speaks TLS 1.3 only)")
        self.host, self.port = parsed.hostname, parsed.port or 443
        self.base = parsed.path.rstrip("/")
        self.attestations = 0
        self.peer: AttestedPeer | None = None
        self._conn = _AttestedConnection(self.host, self.port, verifier, timeout, self._attested,
                                         client_context(client_cert, client_key))
        self._conn.presents_certificate = client_cert is not None

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


# Requests that may be sent twice: reads, and inference (a pure function of its input on an immutable
# in-memory model). A request outside this set is never retried after its connection failed: it may have
# been processed.
IDEMPOTENT: frozenset[tuple[str, str]] = frozenset({("POST", "/v1/infer")})
# A connection that failed, or an overloaded/draining replica (uvicorn's 503): another replica may answer.
_OUTAGES: tuple[type[BaseException], ...] = (OSError, http.client.HTTPException, Unreachable)


class ReplicasUnavailable(ConnectionError):
    """No replica answered; `failures` lists (url, error) for each one tried, in order."""

    def __init__(self, failures: list[tuple[str, BaseException]]) -> None:
        detail = "; ".join(f"{url}: {type(error).__name__}: {error}" for url, error in failures) or "none usable"
        super().__init__(f"no replica of the attested service answered ({detail})")
        self.failures = failures


class FailoverClient(_Queries):
    """Sessions with several replicas of the attested service, e.g.
    `FailoverClient(["https://10.0.1.7:8443", "https://10.0.2.9:8443"], verifier)` (the headless Service's
    addresses), with the same API as `AttestedClient`.

    - Every replica is reached only through its own `AttestedClient`: each connection is attested (and
      bound to its TLS key) before anything is sent; there is no other path to a replica.
    - Requests stick to the replica that last answered (one attestation per session, keep-alive).
    - An idempotent request (`GET`, `IDEMPOTENT`) whose connection fails, or that a replica answers 503,
      is retried on the next replica; the failed one is skipped for `cooldown` seconds (tried last, not
      never: when every replica is cooling down, they are tried anyway rather than failing at once).
    - A replica whose attestation is refused (any check but an unreachable handshake) is dropped for the
      client's lifetime and its refusal kept in `refused`; when every replica is refused, the first
      refusal is raised (fail closed, the check named). An answer's replica is `last_url` / `last_peer`.
    - Other errors (4xx, a malformed answer) are the request's own: raised as `QueryError`, never retried.

    Not thread-safe, like `AttestedClient`: one per thread or task. `start` picks the first replica, so
    many clients can spread over the replicas.
    """

    def __init__(self, urls: Sequence[str], verifier: Verifier, *, timeout: float = 10.0, cooldown: float = 5.0,
                 start: int = 0, clock: Callable[[], float] = time.monotonic,
                 client_cert: str | os.PathLike[str] | None = None,
                 client_key: str | os.PathLike[str] | None = None) -> None:
        unique = list(dict.fromkeys(urls))
        if not unique:
            raise ValueError("FailoverClient needs at least one replica URL")
        self.urls = unique
        self._replicas = [AttestedClient(url, verifier, timeout=timeout, client_cert=client_cert,
                                         client_key=client_key) for url in unique]  # validates each url
        self._current = start % len(unique)
        self._down_until: dict[int, float] = {}
        self._cooldown, self._clock = cooldown, clock
        self.refused: dict[str, AttestationRefused] = {}
        self.failovers = 0
        self.last_url: str | None = None
        self.last_peer: AttestedPeer | None = None

    def __enter__(self) -> "FailoverClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for replica in self._replicas:
            replica.close()

    @property
    def attestations(self) -> int:
        return sum(replica.attestations for replica in self._replicas)

    def _order(self) -> list[int]:
        """Replicas to try: the current one first, then the others in ring order; cooling-down ones last;
        refused ones never."""
        n, now = len(self._replicas), self._clock()
        ring = [(self._current + k) % n for k in range(n)]
        usable = [i for i in ring if self.urls[i] not in self.refused]
        up = [i for i in usable if self._down_until.get(i, 0.0) <= now]
        return up + [i for i in usable if i not in up]

    def request(self, method: str, path: str, body: Any = None, *, idempotent: bool | None = None) -> Any:
        """One request, answered by an attested replica; see the class docstring for when it fails over."""
        if idempotent is None:
            idempotent = method in ("GET", "HEAD") or (method, path) in IDEMPOTENT
        order = self._order()
        failures: list[tuple[str, BaseException]] = []
        for position, index in enumerate(order):
            url, replica = self.urls[index], self._replicas[index]
            try:
                answer = replica.request(method, path, body)
            except Unreachable as exc:
                self._down(index, failures, exc)  # the handshake failed: nothing was judged or sent
                continue
            except AttestationRefused as exc:
                replica.close()
                self.refused[url] = exc
                failures.append((url, exc))
                continue
            except QueryError as exc:
                if exc.status != 503 or not idempotent:
                    raise
                self._down(index, failures, exc)
                continue
            except _OUTAGES as exc:
                self._down(index, failures, exc)
                if not idempotent:
                    raise  # it may have been processed: the caller decides, never a silent second send
                continue
            if position:
                self.failovers += 1
            self._current, self.last_url, self.last_peer = index, url, replica.peer
            return answer
        if self.refused and len(self.refused) == len(self.urls):
            raise next(iter(self.refused.values()))
        raise ReplicasUnavailable(failures)

    def _down(self, index: int, failures: list[tuple[str, BaseException]], error: BaseException) -> None:
        self._replicas[index].close()
        self._down_until[index] = self._clock() + self._cooldown
        failures.append((self.urls[index], error))
