"""Availability fault run: two `serve` replicas (simulated Nitro TEE), load, one replica SIGKILLed mid-load.

The failover client (`enclave_runtime.client.FailoverClient`) must keep the error rate under 0.1 % and
every answer must come from a replica it attested (its TLS key is one of the two replicas' keys); a
peer that does not attest never receives a request with data.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from enclave_runtime.attest import Collateral, TrustStore
from enclave_runtime.client import (
    AttestationRefused, FailoverClient, ReplicasUnavailable, Verifier, client_context,
)
from enclave_runtime.policy import Policy
from enclave_runtime.serve import TlsIdentity
from enclave_runtime.simulate.nitro import image_pcrs

REPO = Path(__file__).resolve().parents[2]
PCR0 = image_pcrs()[0].hex()
ROW = [1, 2, 3, 4]
EXPECTED = 0.42 * 1 - 1.5 * 2 + 2.0 * 3 + 0.125 * 4 + 0.5  # DEMO_MODEL on ROW
KEY_LINE = re.compile(r"key sha256:([0-9a-f]{64})")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 1) as raw, \
                client_context().wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return tls.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


@dataclass
class Replica:
    process: subprocess.Popen[bytes]
    url: str
    root: Path
    log: Path
    key: str = ""


@contextlib.contextmanager
def replicas(tmp_path: Path, count: int = 2) -> Iterator[list[Replica]]:
    """`count` `python -m enclave_runtime serve --simulate` processes, each with its own key and root."""
    started: list[Replica] = []
    try:
        for i in range(count):
            port, log = _free_port(), tmp_path / f"replica-{i}.log"
            with log.open("wb") as sink:
                process = subprocess.Popen(
                    [sys.executable, "-m", "enclave_runtime", "serve", "--port", str(port), "--simulate",
                     "--simulation-root-out", str(tmp_path / f"root-{i}.pem")],
                    cwd=REPO, stdout=subprocess.DEVNULL, stderr=sink, env={**os.environ, "PYTHONPATH": str(REPO)},
                )
            started.append(Replica(process, f"https://127.0.0.1:{port}", tmp_path / f"root-{i}.pem", log))
        deadline = time.monotonic() + 30
        for replica in started:
            port = int(replica.url.rsplit(":", 1)[1])
            while not _ready(port):
                assert replica.process.poll() is None, replica.log.read_text()
                assert time.monotonic() < deadline, "replica did not become ready"
                time.sleep(0.05)
            replica.key = KEY_LINE.search(replica.log.read_text()).group(1)  # type: ignore[union-attr]
        yield started
    finally:
        for replica in started:
            if replica.process.poll() is None:
                replica.process.kill()
            replica.process.wait(10)


def _verifier(roots: list[Path]) -> Verifier:
    policy = Policy.load({"environment": "dev", "measurements": {"version": "1", "nitro": {"pcr0": PCR0}}})
    return Verifier(policy, TrustStore(simulation_roots=Collateral.from_files(roots).certificates))


@dataclass
class Tally:
    ok: int = 0
    errors: list[str] = field(default_factory=list)
    answered_by: dict[str, int] = field(default_factory=dict)
    wrong: list[Any] = field(default_factory=list)
    failovers: int = 0
    attestations: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def test_one_of_two_replicas_killed_mid_load(tmp_path: Path) -> None:
    with replicas(tmp_path) as (first, second):
        verifier = _verifier([first.root, second.root])
        urls = [first.url, second.url]
        tally, stop = Tally(), threading.Event()

        def worker(start: int) -> None:
            with FailoverClient(urls, verifier, timeout=5.0, start=start) as client:
                while not stop.is_set():
                    try:
                        answer = client.infer([ROW])
                    except Exception as exc:  # counted, not raised: the error rate is the measurement
                        with tally.lock:
                            tally.errors.append(f"{type(exc).__name__}: {exc}")
                        continue
                    assert client.last_peer is not None
                    key = client.last_peer.spki_sha256
                    with tally.lock:
                        tally.ok += 1
                        tally.answered_by[key] = tally.answered_by.get(key, 0) + 1
                        if answer["outputs"] != [pytest.approx(EXPECTED)]:
                            tally.wrong.append(answer)
                with tally.lock:
                    tally.failovers += client.failovers
                    tally.attestations += client.attestations

        threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(8)]
        for thread in threads:
            thread.start()
        time.sleep(2.0)
        served_before_kill = dict(tally.answered_by)
        first.process.send_signal(signal.SIGKILL)  # no graceful drain: in-flight requests are cut
        first.process.wait(5)
        after_kill = tally.ok
        time.sleep(3.0)
        stop.set()
        for thread in threads:
            thread.join(20)
            assert not thread.is_alive()

    total = tally.ok + len(tally.errors)
    assert total > 300, f"too little load to judge: {total} requests"
    assert len(tally.errors) / total < 0.001, tally.errors[:5]
    assert tally.wrong == []
    # every answer came from one of the two attested replicas (their TLS keys, as each one logged it)
    assert set(tally.answered_by) <= {first.key, second.key}
    assert served_before_kill.get(first.key, 0) > 0 and served_before_kill.get(second.key, 0) > 0
    assert tally.ok - after_kill > 100, "the surviving replica kept answering"
    # the four clients that started on the killed replica failed over once each; nobody re-attests per request
    assert tally.failovers >= 4
    assert tally.attestations <= 8 + 4 * 2


# --- never an unattested peer ----------------------------------------------------------------------------


@contextlib.contextmanager
def impostor(seen: list[str]) -> Iterator[str]:
    """A TLS 1.3 server that answers everything but proves nothing (no evidence): it records the paths it
    is sent, so the test can show no data request reached it."""
    import uvicorn

    async def anything(request: Request) -> JSONResponse:
        seen.append(f"{request.method} {request.url.path}")
        if request.url.path == "/.well-known/attestation":
            return JSONResponse({"error": "no TEE here"}, status_code=404)
        return JSONResponse({"outputs": [42.0]})

    app = Starlette(routes=[Route("/{path:path}", anything, methods=["GET", "POST"])])
    identity, port = TlsIdentity.generate(), _free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="critical", lifespan="off",
                                           ssl_context_factory=lambda _c, _d: identity.ssl_context()))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def test_an_unattested_replica_is_skipped_and_never_sent_data(tmp_path: Path) -> None:
    seen: list[str] = []
    with replicas(tmp_path, 1) as (good,), impostor(seen) as bad:
        verifier = _verifier([good.root])
        with FailoverClient([bad, good.url], verifier) as client:
            for _ in range(20):
                assert client.infer([ROW])["outputs"] == [pytest.approx(EXPECTED)]
                assert client.last_url == good.url and client.last_peer.spki_sha256 == good.key  # type: ignore[union-attr]
            assert list(client.refused) == [bad] and client.refused[bad].check == "evidence"
        assert seen == ["GET /.well-known/attestation"]  # asked to prove itself once, then never used

        with FailoverClient([bad], verifier) as alone, pytest.raises(AttestationRefused) as refused:
            alone.infer([ROW])
        assert refused.value.check == "evidence"
        assert all(path == "GET /.well-known/attestation" for path in seen)


def test_non_idempotent_requests_are_not_retried_and_all_down_is_named(tmp_path: Path) -> None:
    dead = f"https://127.0.0.1:{_free_port()}"
    with replicas(tmp_path, 1) as (good,):
        verifier = _verifier([good.root])
        with FailoverClient([dead, good.url], verifier, cooldown=60) as client:
            with pytest.raises(ConnectionRefusedError):
                client.request("POST", "/v1/infer", {"inputs": [ROW]}, idempotent=False)
            # idempotent: the dead replica is cooling down, the live one answers
            assert client.infer([ROW])["outputs"] == [pytest.approx(EXPECTED)] and client.last_url == good.url
        with FailoverClient([dead], verifier) as client, pytest.raises(ReplicasUnavailable) as down:
            client.model()
        assert [url for url, _ in down.value.failures] == [dead]
