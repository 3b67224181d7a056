"""The attested query service and its client: attestation per connection, fail-closed checks, bad input.

Servers run in-process (uvicorn in a thread, simulated Nitro evidence); the CLI tests run
`python -m enclave_runtime serve/query` as processes, including a SIGTERM during an in-flight request.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from enclave_runtime.attest import TrustStore
from enclave_runtime.client import AttestationRefused, AttestedClient, QueryError, Verifier, client_context
from enclave_runtime.evidence.base import Evidence, EvidenceError
from enclave_runtime.policy import Policy
from enclave_runtime.serve.access import Access, AccessError
from enclave_runtime.serve import (
    DEMO_MODEL, Limits, Outputs, Service, Settings, SimulatedNitroCollector, TlsIdentity, build_server,
)
from enclave_runtime.simulate.nitro import SimulatedNitro, image_pcrs

REPO = Path(__file__).resolve().parents[2]
PCR0 = image_pcrs()[0].hex()
ROW = [1, 2, 3, 4]
EXPECTED = 0.42 * 1 - 1.5 * 2 + 2.0 * 3 + 0.125 * 4 + 0.5  # DEMO_MODEL on ROW


def _policy(environment: str = "dev", pcr0: str = PCR0) -> Policy:
    return Policy.load({"environment": environment, "measurements": {"version": "1", "nitro": {"pcr0": pcr0}}})


@pytest.fixture(scope="module")
def sim() -> SimulatedNitro:
    return SimulatedNitro()


@pytest.fixture(scope="module")
def verifier(sim: SimulatedNitro) -> Verifier:
    return Verifier(_policy(), TrustStore(simulation_roots=[sim.root]))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running(service: Service | None = None, app: Any = None, identity: TlsIdentity | None = None,
            **settings: Any) -> Iterator[Any]:
    """A uvicorn server in a thread; yields it (`.port` set); graceful stop on exit."""
    port = _free_port()
    if app is None:
        assert service is not None
        server = build_server(service, Settings(port=port, log_level="critical", **settings))
    else:
        import uvicorn

        ident = identity or TlsIdentity.generate()
        server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="critical", lifespan="off",
                                               ssl_context_factory=lambda _c, _d: ident.ssl_context()))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    server.port, server.thread = port, thread
    try:
        yield server
    finally:
        server.should_exit = True
        thread.join(15)


def _service(sim: SimulatedNitro, **kwargs: Any) -> Service:
    collector = kwargs.pop("collector", None) or SimulatedNitroCollector(sim, image_pcrs())
    return Service(TlsIdentity.generate(), collector, kwargs.pop("model", DEMO_MODEL),
                   kwargs.pop("outputs", Outputs({"joint": {"rows": 30, "mean_value": 1.5}})), **kwargs)


@pytest.fixture(scope="module")
def approved(sim: SimulatedNitro) -> Iterator[Any]:
    with running(_service(sim), header_timeout=0.5) as server:
        yield server


def _url(server: Any) -> str:
    return f"https://127.0.0.1:{server.port}"


# --- raw HTTP over TLS: for what a well-behaved client would never send ------------------------------


def _tls(port: int) -> ssl.SSLSocket:
    sock = socket.create_connection(("127.0.0.1", port), 5)
    return client_context().wrap_socket(sock, server_hostname="localhost")


def _read(sock: ssl.SSLSocket) -> tuple[int, dict[str, str], Any]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        body += sock.recv(65536)
    return int(lines[0].split()[1]), headers, json.loads(body) if body else None


def _raw(port: int, request: bytes) -> tuple[int, dict[str, str], Any]:
    with _tls(port) as sock:
        sock.sendall(request)
        return _read(sock)


def _post(body: bytes, content_type: str = "application/json", extra: str = "") -> bytes:
    return (f"POST /v1/infer HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n").encode() + body


# --- the approved server --------------------------------------------------------------------------------


def test_an_approved_server_is_attested_once_per_connection_and_answers(approved: Any, verifier: Verifier) -> None:
    with AttestedClient(_url(approved), verifier) as client:
        peer = client.connect()
        assert peer.kind == "aws-nitro" and peer.summary()["measurements"]["pcr0"] == PCR0
        results = [client.infer([ROW])["outputs"][0] for _ in range(25)]
        assert results == [pytest.approx(EXPECTED)] * 25
        assert client.model()["features"] == 4
        assert client.attestations == 1  # 26 requests, one attestation: per connection, never per request


def test_the_client_re_attests_a_connection_the_server_closed(approved: Any, verifier: Verifier) -> None:
    with AttestedClient(_url(approved), verifier) as client:
        client.infer([ROW])
        client._conn.sock.close()  # as if the server had dropped the idle connection
        client._conn.sock = None
        assert client.infer([ROW])["outputs"] == [pytest.approx(EXPECTED)]
        assert client.attestations == 2


def test_the_evidence_binds_the_live_tls_key_and_the_nonce(approved: Any, sim: SimulatedNitro) -> None:
    from enclave_runtime.attest import verify
    from enclave_runtime.serve.tls import report_data, spki_of
    import base64

    nonce = os.urandom(32)
    with _tls(approved.port) as sock:
        cert = sock.getpeercert(binary_form=True)
        assert sock.version() == "TLSv1.3"
        sock.sendall(f"GET /.well-known/attestation?nonce={nonce.hex()} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        status, headers, body = _read(sock)
    assert status == 200 and headers["cache-control"] == "no-store"
    claims = verify("aws-nitro", base64.b64decode(body["evidence"]), store=TrustStore(simulation_roots=[sim.root]))
    assert claims.user_data == report_data(spki_of(cert), nonce)


def test_tls_below_1_3_is_refused(approved: Any) -> None:
    context = client_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection(("127.0.0.1", approved.port), 5) as sock, pytest.raises(ssl.SSLError):
        context.wrap_socket(sock, server_hostname="localhost")


# --- refusals: each names its check, and no data is sent ------------------------------------------------


@pytest.mark.parametrize(
    ("case", "check"),
    [("debug", "debug"), ("unapproved", "measurement"), ("prod-policy", "simulation"), ("untrusted-root", "root")],
)
def test_an_unacceptable_server_is_refused_with_the_check_named(sim: SimulatedNitro, case: str, check: str) -> None:
    pcrs = {0: bytes.fromhex("ab" * 48)} if case == "unapproved" else image_pcrs()
    service = _service(sim, collector=SimulatedNitroCollector(sim, pcrs, debug=case == "debug"))
    policy = _policy("prod") if case == "prod-policy" else _policy()
    roots = [] if case == "untrusted-root" else [sim.root]
    with running(service) as server, AttestedClient(_url(server), Verifier(policy, TrustStore(simulation_roots=roots))) as client:
        with pytest.raises(AttestationRefused) as refused:
            client.infer([ROW])
        assert refused.value.check == check, refused.value
        assert client._conn.sock is None  # closed: nothing was sent


def test_a_relay_with_another_tls_key_is_refused_and_receives_no_data(approved: Any, verifier: Verifier) -> None:
    """The relay terminates TLS with its own key and forwards the client's nonce to the genuine TEE, whose
    evidence is valid, approved and fresh, but binds the TEE's key, not the relay's."""
    received: list[bytes] = []

    async def evidence(request: Request) -> Response:
        async with httpx.AsyncClient(verify=False) as upstream:
            answer = await upstream.get(f"{_url(approved)}/.well-known/attestation", params=request.query_params)
        return Response(answer.content, answer.status_code, media_type="application/json")

    async def infer(request: Request) -> Response:
        received.append(await request.body())
        return Response(b'{"outputs": [0]}', media_type="application/json")

    relay = Starlette(routes=[Route("/.well-known/attestation", evidence), Route("/v1/infer", infer, methods=["POST"])])
    with running(app=relay) as server, AttestedClient(_url(server), verifier) as client:
        with pytest.raises(AttestationRefused) as refused:
            client.infer([ROW])
    assert refused.value.check == "tls-binding" and "relay" in refused.value.message
    assert received == []


class _Replaying:
    """A (broken or malicious) evidence source that serves the first evidence it ever produced."""

    def __init__(self, inner: SimulatedNitroCollector) -> None:
        self.inner, self.first = inner, None

    def collect(self, report_data: bytes) -> Evidence:
        self.first = self.first or self.inner.collect(report_data)
        return self.first


def test_replayed_evidence_for_another_nonce_is_refused(sim: SimulatedNitro, verifier: Verifier) -> None:
    service = _service(sim, collector=_Replaying(SimulatedNitroCollector(sim, image_pcrs())))
    with running(service) as server:  # startup's readiness check produced the evidence now replayed
        with AttestedClient(_url(server), verifier) as client, pytest.raises(AttestationRefused) as refused:
            client.connect()
    assert refused.value.check == "nonce"


def test_stale_evidence_is_refused(sim: SimulatedNitro, verifier: Verifier) -> None:
    an_hour_ago = lambda: dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)  # noqa: E731
    service = _service(sim, collector=SimulatedNitroCollector(sim, image_pcrs(), clock=an_hour_ago))
    with running(service) as server, AttestedClient(_url(server), verifier) as client:
        with pytest.raises(AttestationRefused) as refused:
            client.connect()
    assert refused.value.check == "freshness"


# --- bad input: clear 4xx, never a traceback, and the service keeps serving -----------------------------


@pytest.mark.parametrize(
    ("request_bytes", "status", "check", "field"),
    [
        (_post(b'{"inputs": [[1, 2'), 400, "json", "body"),
        (_post(b""), 400, "json", "body"),
        (_post(b'{"inputs": [[1, 2, NaN, 4]]}'), 400, "json", "body"),
        (_post(b'[1, 2]'), 422, "shape", "body"),
        (_post(b'{"inputs": [[1, 2, 3]]}'), 422, "shape", "inputs[0]"),
        (_post(b'{"inputs": [[1, 2, 3, "4"]]}'), 422, "shape", "inputs[0][3]"),
        (_post(b'{"inputs": [[1, 2, 3, true]]}'), 422, "shape", "inputs[0][3]"),
        (_post(b'{"inputs": [[1, 2, 3, 1e999]]}'), 422, "shape", "inputs[0][3]"),
        (_post(b'{"inputs": []}'), 422, "shape", "inputs"),
        (_post(json.dumps({"inputs": [ROW] * 257}).encode()), 422, "shape", "inputs"),
        (_post(b'{"inputs": [[1, 2, 3, 4]], "x": 1}'), 422, "shape", "x"),
        (_post(b"a=1", "application/x-www-form-urlencoded"), 415, "content-type", "content-type"),
        (b"POST /v1/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n", 413, "size", "body"),
        (b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404, "route", None),
        (b"DELETE /v1/infer HTTP/1.1\r\nHost: x\r\n\r\n", 405, "method", None),
        (b"GET /v1/outputs/joint HTTP/1.1\r\nHost: x\r\n\r\n", 401, "client-certificate", None),
        (b"GET /.well-known/attestation HTTP/1.1\r\nHost: x\r\n\r\n", 400, "nonce", "nonce"),
        (b"GET /.well-known/attestation?nonce=zz HTTP/1.1\r\nHost: x\r\n\r\n", 400, "nonce", "nonce"),
        (b"GET /.well-known/attestation?nonce=00ff HTTP/1.1\r\nHost: x\r\n\r\n", 400, "nonce", "nonce"),
    ],
    ids=["truncated-json", "empty", "nan", "not-an-object", "short-row", "string", "bool", "overflow", "no-rows",
         "too-many-rows", "unknown-field", "form", "content-length-huge", "route", "method", "output-no-cert",
         "no-nonce", "nonce-not-hex", "nonce-short"],
)
def test_bad_requests_get_a_clear_error(approved: Any, request_bytes: bytes, status: int, check: str,
                                        field: str | None) -> None:
    got, _, body = _raw(approved.port, request_bytes)
    error = body["error"]
    assert (got, error["status"], error["check"], error["field"]) == (status, status, check, field), error
    assert "Traceback" not in error["message"] and len(error["message"]) > 10


def test_a_huge_chunked_body_gets_413(approved: Any) -> None:
    chunk = b"x" * 16384
    with _tls(approved.port) as sock:
        sock.sendall(b"POST /v1/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        with contextlib.suppress(OSError):
            for _ in range(8):  # 128 KiB > the 64 KiB limit
                sock.sendall(b"4000\r\n" + chunk + b"\r\n")
        status, headers, body = _read(sock)
    assert (status, body["error"]["check"], headers.get("connection")) == (413, "size", "close")


def test_slow_clients_time_out_while_others_are_served(sim: SimulatedNitro, verifier: Verifier) -> None:
    service = _service(sim, limits=Limits(body_timeout=0.5))
    with running(service, header_timeout=0.5) as server:
        slow_headers, slow_body = _tls(server.port), _tls(server.port)
        slow_headers.sendall(b"POST /v1/infer HTTP/1.1\r\nHost: x\r\n")  # ...and never the rest
        slow_body.sendall(_post(b'{"inputs": [[1, 2, 3, 4]]}')[:-5])  # body cut short
        with AttestedClient(_url(server), verifier) as client:  # others are served meanwhile
            assert client.infer([ROW])["outputs"] == [pytest.approx(EXPECTED)]
        for sock, field in ((slow_headers, "headers"), (slow_body, "body")):
            with sock:
                status, headers, body = _read(sock)
                assert (status, body["error"]["check"], body["error"]["field"]) == (408, "timeout", field)
                assert headers["connection"] == "close" and sock.recv(1) == b""  # closed by the server


def test_the_service_keeps_serving_after_bad_requests(approved: Any, verifier: Verifier) -> None:
    for _ in range(5):
        _raw(approved.port, _post(b"{{{"))
        _raw(approved.port, b"POST /v1/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n")
    with AttestedClient(_url(approved), verifier) as client:
        assert client.infer([ROW, ROW])["outputs"] == [pytest.approx(EXPECTED)] * 2


def test_the_client_surfaces_the_servers_error(approved: Any, verifier: Verifier) -> None:
    with AttestedClient(_url(approved), verifier) as client, pytest.raises(QueryError) as error:
        client.infer([[1, 2]])
    assert (error.value.status, error.value.check, error.value.field) == (422, "shape", "inputs[0]")


# --- health and readiness -------------------------------------------------------------------------------


class _Broken:
    def collect(self, report_data: bytes) -> Evidence:
        raise EvidenceError("NSM attestation ioctl on /dev/nsm failed: No such device")


def test_health_and_readiness(approved: Any, sim: SimulatedNitro) -> None:
    assert _raw(approved.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")[::2] == (200, {"status": "ok"})
    status, _, body = _raw(approved.port, b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (status, body["status"], body["attested"]) == (200, "ready", True)
    for service, reason in ((_service(sim, collector=_Broken()), "cannot produce attestation evidence"),
                            (_service(sim, model=None), "model not loaded")):
        with running(service) as server:
            assert _raw(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 200  # alive...
            status, headers, body = _raw(server.port, b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")  # ...not ready
            assert status == 503 and headers["retry-after"] == "5" and reason in " ".join(body["reasons"])
            status, _, body = _raw(server.port, _post(b'{"inputs": [[1, 2, 3, 4]]}'))
            assert status == (503 if service.model is None else 200)


# --- graceful shutdown ----------------------------------------------------------------------------------


def test_graceful_shutdown_completes_an_in_flight_request(sim: SimulatedNitro) -> None:
    with running(_service(sim)) as server:
        request = _post(b'{"inputs": [[1, 2, 3, 4]]}')
        with _tls(server.port) as sock:
            sock.sendall(request[:-6])  # in flight: headers and part of the body
            time.sleep(0.2)
            server.should_exit = True  # what SIGTERM does
            time.sleep(0.3)
            with pytest.raises(OSError):  # no new connections while draining
                _tls(server.port).close()
            sock.sendall(request[-6:])
            status, headers, body = _read(sock)
        assert (status, body["outputs"]) == (200, [pytest.approx(EXPECTED)])
        assert headers["connection"] == "close"
        server.thread.join(10)
        assert not server.thread.is_alive()


# --- declared outputs, released per recipient over mutual TLS -----------------------------------------------

JOINT, LAB = {"rows": 30, "mean_value": 1.5}, {"assay": "only the lab's"}


def _party_pem(directory: Path, name: str) -> tuple[Path, Path]:
    """A party's self-signed client certificate (CN=<party>) and key, as files (`query --client-cert/--client-key`)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
                   .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    cert_file, key_file = directory / f"{name}.pem", directory / f"{name}.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@pytest.fixture(scope="module")
def parties(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    directory = tmp_path_factory.mktemp("parties")
    return {name: _party_pem(directory, name) for name in ("clinic", "lab", "stranger")}


@pytest.fixture(scope="module")
def recipients_server(sim: SimulatedNitro, parties: dict[str, tuple[Path, Path]]) -> Iterator[Any]:
    from cryptography import x509

    certificates = {p: x509.load_pem_x509_certificate(parties[p][0].read_bytes()) for p in ("clinic", "lab")}
    access = Access.declare({"joint": ["clinic"], "lab-only": ["lab"]}, certificates)
    with running(_service(sim, outputs=Outputs({"joint": JOINT, "lab-only": LAB}), access=access)) as server:
        yield server


def _as(server: Any, verifier: Verifier, party: tuple[Path, Path] | None = None) -> AttestedClient:
    cert, key = party or (None, None)
    return AttestedClient(_url(server), verifier, client_cert=cert, client_key=key)


def test_a_recipient_reads_its_output_and_lists_only_its_own(recipients_server: Any, verifier: Verifier,
                                                             parties: dict[str, tuple[Path, Path]]) -> None:
    with _as(recipients_server, verifier, parties["clinic"]) as clinic:
        assert clinic.output("joint") == JOINT and clinic.outputs() == ["joint"]
        assert clinic.infer([ROW])["outputs"] == [pytest.approx(EXPECTED)]
    with _as(recipients_server, verifier, parties["lab"]) as lab:
        assert lab.output("lab-only") == LAB and lab.outputs() == ["lab-only"]


def test_another_partys_certificate_gets_403_naming_the_output(recipients_server: Any, verifier: Verifier,
                                                               parties: dict[str, tuple[Path, Path]]) -> None:
    with _as(recipients_server, verifier, parties["lab"]) as lab:
        with pytest.raises(QueryError) as refused:
            lab.output("joint")
        assert lab.output("lab-only") == LAB  # the same connection still serves what is the lab's
    error = refused.value
    assert (error.status, error.check) == (403, "recipient")
    assert "'joint'" in error.message and "not a declared recipient" in error.message and "mean_value" not in str(error)


def test_without_a_client_certificate_outputs_get_401_and_inference_works(recipients_server: Any,
                                                                          verifier: Verifier) -> None:
    with _as(recipients_server, verifier) as anonymous:
        assert anonymous.infer([ROW])["outputs"] == [pytest.approx(EXPECTED)]
        for read in (lambda: anonymous.output("joint"), anonymous.outputs, lambda: anonymous.output("nope")):
            with pytest.raises(QueryError) as refused:
                read()
            assert (refused.value.status, refused.value.check) == (401, "client-certificate")
        assert anonymous.model()["features"] == 4 and anonymous.attestations == 1


def test_an_undeclared_certificate_is_refused_at_the_handshake(recipients_server: Any, verifier: Verifier,
                                                               parties: dict[str, tuple[Path, Path]]) -> None:
    with _as(recipients_server, verifier, parties["stranger"]) as stranger:
        with pytest.raises(AttestationRefused) as refused:
            stranger.output("joint")
    assert refused.value.check == "client-certificate" and "declared recipient" in refused.value.message


def test_a_relay_is_refused_before_the_recipients_certificate_is_used(recipients_server: Any, verifier: Verifier,
                                                                     parties: dict[str, tuple[Path, Path]]) -> None:
    """A relay forwards the evidence of the genuine TEE and would fetch the output for the recipient: the
    client refuses it (tls-binding) before asking, and the relay cannot fetch it itself without the key."""
    asked: list[str] = []

    async def evidence(request: Request) -> Response:
        async with httpx.AsyncClient(verify=False) as upstream:
            answer = await upstream.get(f"{_url(recipients_server)}/.well-known/attestation", params=request.query_params)
        return Response(answer.content, answer.status_code, media_type="application/json")

    async def output(request: Request) -> Response:
        asked.append(request.path_params["name"])
        async with httpx.AsyncClient(verify=False) as upstream:
            answer = await upstream.get(f"{_url(recipients_server)}/v1/outputs/{request.path_params['name']}")
        return Response(answer.content, answer.status_code, media_type="application/json")

    relay = Starlette(routes=[Route("/.well-known/attestation", evidence), Route("/v1/outputs/{name}", output)])
    with running(app=relay) as server, _as(server, verifier, parties["clinic"]) as client:
        with pytest.raises(AttestationRefused) as refused:
            client.output("joint")
        assert refused.value.check == "tls-binding" and asked == []
        upstream = httpx.get(f"{_url(server)}/v1/outputs/joint", verify=False)  # the relay fetching for itself
    assert upstream.status_code == 401 and "mean_value" not in upstream.text


def test_the_recipient_declaration_is_validated(tmp_path: Path, parties: dict[str, tuple[Path, Path]]) -> None:
    from cryptography import x509

    clinic = x509.load_pem_x509_certificate(parties["clinic"][0].read_bytes())
    with pytest.raises(AccessError, match="not a declared recipient of any output"):
        Access.declare({"joint": ["clinic"]}, {"lab": clinic})
    with pytest.raises(AccessError, match="same key"):
        Access.declare({"joint": ["clinic", "lab"]}, {"clinic": clinic, "lab": clinic})
    with pytest.raises(AccessError, match="subject"):
        Access.declare({"joint": ["clinic", "lab"]}, {"clinic": clinic, "lab": x509.load_pem_x509_certificate(
            _party_pem(tmp_path, "clinic")[0].read_bytes())})  # another key, the same CN
    with pytest.raises(AccessError, match="expired"):
        Access.declare({"joint": ["clinic"]}, {"clinic": clinic}, now=dt.datetime(2200, 1, 1, tzinfo=dt.timezone.utc))
    with pytest.raises(AccessError, match="PARTY=CERT.pem"):
        Access.from_files(REPO / "Pulumi.dev.yaml", ["clinic-aws"])
    with pytest.raises(AccessError, match="not a PEM certificate"):
        Access.from_files(REPO / "Pulumi.dev.yaml", [f"clinic-aws={parties['clinic'][1]}"])  # the key, not the cert
    access = Access.from_files(REPO / "Pulumi.dev.yaml", [f"clinic-aws={parties['clinic'][0]}"])
    assert access.outputs == {"global-model": frozenset({"clinic-aws", "clinic-azure", "lab-gcp"})}
    assert access.may_read("global-model", "clinic-aws") and not access.may_read("global-model", None)


# --- the CLI, as processes ------------------------------------------------------------------------------


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "enclave_runtime", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "PYTHONPATH": str(REPO)})


@contextlib.contextmanager
def _serve_process(tmp_path: Path, *extra: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "enclave_runtime", "serve", "--port", str(port), "--simulate",
         "--simulation-root-out", str(tmp_path / "root.pem"), *extra],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            if _raw(port, b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 200:
                break
        except OSError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.1)
    try:
        yield process, f"https://127.0.0.1:{port}"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_cli_serve_and_query(tmp_path: Path) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"environment": "dev", "measurements": {"version": "1", "nitro": {"pcr0": PCR0}}}))
    prod = tmp_path / "prod.json"
    prod.write_text(json.dumps({"environment": "prod", "measurements": {"version": "1", "nitro": {"pcr0": PCR0}}}))
    with _serve_process(tmp_path) as (process, url):
        trust = ["--policy", str(policy), "--trust-simulation-root", str(tmp_path / "root.pem")]
        ok = _cli("query", url, *trust, "--infer", "[[1, 2, 3, 4]]", "--json")
        assert ok.returncode == 0, ok.stdout + ok.stderr
        answer = json.loads(ok.stdout)
        assert answer["result"]["outputs"] == [pytest.approx(EXPECTED)] and answer["attested"]["kind"] == "aws-nitro"
        refused = _cli("query", url, "--policy", str(prod), "--trust-simulation-root", str(tmp_path / "root.pem"),
                       "--infer", "[[1, 2, 3, 4]]", "--json")
        assert (refused.returncode, json.loads(refused.stdout)["error"]["check"]) == (1, "simulation")
        shape = _cli("query", url, *trust, "--infer", "[[1, 2]]")
        assert shape.returncode == 2 and "(shape) [inputs[0]]" in shape.stdout
        bad = _cli("query", url, *trust, "--infer", "[[1, 2")
        assert bad.returncode == 2 and "UNUSABLE (input)" in bad.stdout and "Traceback" not in bad.stderr
        usage = _cli("query", url, *trust)  # no action
        assert usage.returncode == 2

        # SIGTERM while a request is in flight: it completes, then the process exits 0.
        port = int(url.rsplit(":", 1)[1])
        request = _post(b'{"inputs": [[1, 2, 3, 4]]}')
        with _tls(port) as sock:
            sock.sendall(request[:-6])
            time.sleep(0.2)
            process.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            sock.sendall(request[-6:])
            status, _, body = _read(sock)
        assert (status, body["outputs"]) == (200, [pytest.approx(EXPECTED)])
        assert process.wait(15) == 0


def test_cli_serve_refuses_to_start_without_evidence(tmp_path: Path) -> None:
    result = _cli("serve", "--port", str(_free_port()))  # this machine has no TEE
    assert result.returncode == 2 and "UNUSABLE (tee)" in result.stderr and "--simulate" in result.stderr
    result = _cli("serve", "--simulate")
    assert result.returncode == 2 and "--simulation-root-out" in result.stderr
    result = _cli("serve", "--simulate", "--simulation-root-out", str(tmp_path / "r.pem"), "--model", str(tmp_path / "none"))
    assert result.returncode == 2 and "--model" in result.stderr


def test_cli_query_debug_server_is_refused(tmp_path: Path) -> None:
    with _serve_process(tmp_path, "--simulate-debug") as (_, url):
        result = _cli("query", url, "--policy", str(REPO / "Pulumi.dev.yaml"), "--trust-simulation-root",
                      str(tmp_path / "root.pem"), "--attest-only")
    assert result.returncode == 1 and "REFUSED (debug)" in result.stdout, result.stdout


def test_cli_serves_an_output_only_to_its_declared_recipient(tmp_path: Path,
                                                             parties: dict[str, tuple[Path, Path]]) -> None:
    model = tmp_path / "global-model.json"
    model.write_text(json.dumps({"weights": [0.5, 0.25]}))
    stack = str(REPO / "Pulumi.dev.yaml")
    unusable = _cli("serve", "--simulate", "--simulation-root-out", str(tmp_path / "r.pem"),
                    "--output", f"global-model={model}")  # no --collaboration: nobody declared to receive it
    assert unusable.returncode == 2 and "UNUSABLE (--collaboration)" in unusable.stderr, unusable.stderr
    unusable = _cli("serve", "--simulate", "--simulation-root-out", str(tmp_path / "r.pem"), "--collaboration", stack,
                    "--recipient", f"bank-x={parties['lab'][0]}")
    assert unusable.returncode == 2 and "'bank-x' is not a declared recipient" in unusable.stderr, unusable.stderr
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"environment": "dev", "measurements": {"version": "1", "nitro": {"pcr0": PCR0}}}))
    with _serve_process(tmp_path, "--output", f"global-model={model}", "--collaboration", stack,
                        "--recipient", f"clinic-aws={parties['clinic'][0]}",
                        "--recipient", f"lab-gcp={parties['lab'][0]}") as (_, url):
        trust = ["--policy", str(policy), "--trust-simulation-root", str(tmp_path / "root.pem"), "--json"]
        clinic = ["--client-cert", str(parties["clinic"][0]), "--client-key", str(parties["clinic"][1])]
        read = _cli("query", url, *trust, *clinic, "--output", "global-model")
        assert read.returncode == 0 and json.loads(read.stdout)["result"]["value"] == {"weights": [0.5, 0.25]}, read.stdout
        anonymous = _cli("query", url, *trust, "--output", "global-model")
        assert (anonymous.returncode, json.loads(anonymous.stdout)["error"]["check"]) == (1, "client-certificate")
