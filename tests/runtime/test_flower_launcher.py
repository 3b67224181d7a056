"""`python -m enclave_runtime flower superlink|supernode` (enclave_runtime/ml/launcher.py) on the simulated
Nitro TEE, with `os.execvp` replaced by a recorder: nothing of Flower runs here (flwr is in `.venv-ml` only).

The SuperLink launcher's evidence endpoint runs in a thread instead of a forked child (`detach`), so each
test fetches it over real HTTP on localhost; the SuperNode launcher then judges what it fetched.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import stat
import tempfile
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from enclave_runtime.attest import TrustStore, verify
from enclave_runtime.cli import main
from enclave_runtime.ml.attestation import AggregatorIdentity, AttestationGate
from enclave_runtime.ml.launcher import (
    EVIDENCE_PATH,
    EvidenceServer,
    filesystem_type,
    run_superlink,
    run_supernode,
    superlink_command,
    supernode_command,
)
from enclave_runtime.policy import Policy
from enclave_runtime.serve.tls import TlsIdentity
from enclave_runtime.simulate.nitro import image_pcrs

APPROVED_PCR0 = image_pcrs()[0].hex()  # the simulator's image
SUPERLINK = "localhost:9092"

pytestmark = pytest.mark.skipif(filesystem_type(Path("/dev/shm")) != "tmpfs",
                                reason="needs /dev/shm on tmpfs: the launcher writes TLS material only in memory")


class Recorder:
    """Stands in for `os.execvp`: records what would have replaced the process."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    def __call__(self, file: str, args: Any) -> None:
        self.calls.append((file, list(args)))


@pytest.fixture
def memory() -> Iterator[Path]:
    """A directory on tmpfs, as the pod's `emptyDir: {medium: Memory}`."""
    path = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="ccp-flower-test-"))
    yield path
    shutil.rmtree(path)


def write_policy(path: Path, pcr0: str) -> Path:
    path.write_text(json.dumps({"environment": "dev", "measurements": {"version": "1", "nitro": {"pcr0": pcr0}}}))
    return path


@pytest.fixture
def approved_policy(tmp_path: Path) -> Path:
    return write_policy(tmp_path / "approved.json", APPROVED_PCR0)


class SuperLink:
    """One launched SuperLink: its TLS directory, simulated root, evidence URL and recorded exec."""

    def __init__(self, memory: Path, tmp_path: Path, *extra: str) -> None:
        self.tls_dir = memory / "tls"
        self.tls_dir.mkdir()
        self.root = tmp_path / f"root-{len(list(tmp_path.iterdir()))}.pem"
        self.execs = Recorder()
        self.servers: list[EvidenceServer] = []
        self.code = run_superlink(
            ["--tls-dir", str(self.tls_dir), "--name", "localhost", "--evidence-host", "127.0.0.1",
             "--evidence-port", "0", "--simulate", "--simulation-root-out", str(self.root), *extra],
            execvp=self.execs, detach=self._serve,
        )

    def _serve(self, server: EvidenceServer) -> None:
        self.servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self.servers[0].server_address[:2]
        return f"http://{host}:{port}{EVIDENCE_PATH}"

    def answer(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url, timeout=10) as response:
            result: dict[str, Any] = json.loads(response.read())
        return result

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


@pytest.fixture
def launch(memory: Path, tmp_path: Path) -> Iterator[Any]:
    launched: list[SuperLink] = []

    def start(*extra: str) -> SuperLink:
        link = SuperLink(memory, tmp_path, *extra)
        launched.append(link)
        return link

    yield start
    for link in launched:
        link.close()


def supernode(link: SuperLink, policy: Path, memory: Path, url: str | None = None) -> tuple[int, Recorder, Path]:
    cert_dir = memory / "superlink"
    cert_dir.mkdir(exist_ok=True)
    execs = Recorder()
    code = run_supernode(
        ["--superlink", SUPERLINK, "--evidence-url", url or link.url, "--party", "lab-gcp", "--policy", str(policy),
         "--trust-simulation-root", str(link.root), "--root-certificates", str(cert_dir / "certificate.pem")],
        execvp=execs,
    )
    return code, execs, cert_dir / "certificate.pem"


def spki(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


# --- superlink --------------------------------------------------------------------------------------------


def test_superlink_writes_its_key_and_certificate_0600_in_memory_then_execs_flower_superlink(launch: Any) -> None:
    link = launch()
    assert link.code == 0
    files = {p.name: p for p in link.tls_dir.iterdir()}
    assert sorted(files) == ["ca.pem", "certificate.pem", "key.pem"]
    assert {name: stat.S_IMODE(p.stat().st_mode) for name, p in files.items()} == dict.fromkeys(files, 0o600)
    certificate = files["certificate.pem"].read_bytes()
    assert files["ca.pem"].read_bytes() == certificate  # self-signed: its own CA
    key = serialization.load_pem_private_key(files["key.pem"].read_bytes(), password=None)
    assert key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo) == spki(certificate)
    names = x509.load_pem_x509_certificate(certificate).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert names.value.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in names.value.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]  # flwr's SuperExec
    tls = str(link.tls_dir)
    assert link.execs.calls == [("flower-superlink", superlink_command(tls))]
    assert superlink_command(tls)[:7] == ["flower-superlink", "--ssl-ca-certfile", f"{tls}/ca.pem",
                                          "--ssl-certfile", f"{tls}/certificate.pem", "--ssl-keyfile", f"{tls}/key.pem"]
    assert "--insecure" not in superlink_command(tls)


def test_superlink_evidence_binds_the_certificates_key(launch: Any) -> None:
    link = launch()
    answer = link.answer()
    certificate = (link.tls_dir / "certificate.pem").read_bytes()
    assert answer["certificate"].encode() == certificate
    assert base64.b64decode(answer["spki"]) == spki(certificate)
    assert (answer["kind"], answer["binding"], answer["nonce"]) == ("aws-nitro", "sha256(spki||nonce)", "")
    store = TrustStore(simulation_roots=[x509.load_pem_x509_certificate(link.root.read_bytes())])
    claims = verify("aws-nitro", base64.b64decode(answer["evidence"]), store=store)
    assert claims.user_data == hashlib.sha256(spki(certificate)).digest()
    assert claims.as_dict()["pcr0"] == APPROVED_PCR0
    gate = AttestationGate(store, Policy.load({"environment": "dev",
                                               "measurements": {"version": "1", "nitro": {"pcr0": APPROVED_PCR0}}}))
    evidence = base64.b64decode(answer["evidence"])
    assert gate.admit(AggregatorIdentity("aws-nitro", evidence, spki(certificate))).channel_key_sha256 == \
        hashlib.sha256(spki(certificate)).hexdigest()
    assert link.answer()["evidence"] != answer["evidence"]  # fresh per request (a Nitro leaf lives 3 hours)


def test_superlink_refuses_a_tls_directory_on_disk(tmp_path: Path, memory: Path) -> None:
    execs = Recorder()
    code = run_superlink(["--tls-dir", str(tmp_path), "--name", "localhost", "--evidence-port", "0", "--simulate",
                          "--simulation-root-out", str(memory / "root.pem")], execvp=execs, detach=lambda s: None)
    assert (code, execs.calls, list(tmp_path.iterdir())) == (2, [], [])


def test_superlink_without_a_tee_does_not_start(memory: Path) -> None:
    execs = Recorder()
    code = run_superlink(["--tls-dir", str(memory), "--name", "localhost"], execvp=execs, detach=lambda s: None)
    assert (code, execs.calls, list(memory.iterdir())) == (2, [], [])


# --- supernode --------------------------------------------------------------------------------------------


def test_supernode_admits_the_approved_superlink_and_execs_flower_supernode(
    launch: Any, approved_policy: Path, memory: Path,
) -> None:
    link = launch()
    code, execs, written = supernode(link, approved_policy, memory)
    assert code == 0
    assert written.read_bytes() == (link.tls_dir / "certificate.pem").read_bytes()
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert execs.calls == [("flower-supernode", supernode_command(SUPERLINK, "lab-gcp", str(written)))]
    assert execs.calls[0][1] == [
        "flower-supernode", "--superlink", SUPERLINK, "--root-certificates", str(written),
        "--isolation", "subprocess", "--health-server-address", "0.0.0.0:9095", "--node-config", 'party="lab-gcp"',
    ]


def refused(capsys: pytest.CaptureFixture[str], code: int, execs: Recorder, written: Path) -> str:
    """The refusal's one line, after checking nothing was started or written."""
    assert (code, execs.calls, written.exists()) == (1, [], False)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("flower supernode")]
    assert len(lines) == 1, lines
    return lines[0]


def test_supernode_refuses_an_unapproved_measurement(
    launch: Any, approved_policy: Path, memory: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    other = write_policy(tmp_path / "other.json", "ee" * 48)
    line = refused(capsys, *supernode(launch("--simulate-pcrs-from", str(other)), approved_policy, memory))
    assert line.startswith("flower supernode: REFUSED (attestation): ")
    assert "pcr0" in line and APPROVED_PCR0 in line and line.endswith("flower-supernode not started")


def test_supernode_refuses_a_debug_enclave(
    launch: Any, approved_policy: Path, memory: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    line = refused(capsys, *supernode(launch("--simulate-debug"), approved_policy, memory))
    assert line.startswith("flower supernode: REFUSED (attestation): ") and "debug" in line


def test_supernode_refuses_a_certificate_whose_key_the_evidence_does_not_bind(
    launch: Any, approved_policy: Path, memory: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    link = launch()
    genuine = link.answer()
    impostor = TlsIdentity.generate(("localhost",))
    pem = impostor.certificate.public_bytes(serialization.Encoding.PEM).decode()
    cases = {
        # the genuine evidence, another certificate: caught against the key the answer names
        "certificate": {**genuine, "certificate": pem},
        # the answer made consistent with the impostor's key: the evidence still binds the genuine key
        "attestation": {**genuine, "certificate": pem, "spki": base64.b64encode(impostor.spki).decode()},
    }
    lines = {}
    for check, answer in cases.items():
        relay = EvidenceServer(("127.0.0.1", 0), lambda answer=answer: answer)
        threading.Thread(target=relay.serve_forever, daemon=True).start()
        try:
            url = f"http://127.0.0.1:{relay.server_address[1]}{EVIDENCE_PATH}"
            lines[check] = refused(capsys, *supernode(link, approved_policy, memory, url))
        finally:
            relay.shutdown()
            relay.server_close()
        assert lines[check].startswith(f"flower supernode: REFUSED ({check}): "), lines[check]
    assert "substituted certificate" in lines["certificate"]
    assert "user_data" in lines["attestation"]


def test_supernode_refuses_unreachable_evidence(
    approved_policy: Path, memory: Path, launch: Any, capsys: pytest.CaptureFixture[str],
) -> None:
    link = launch()
    port = link.servers[0].server_address[1]
    link.close()  # nothing listens there any more
    line = refused(capsys, *supernode(link, approved_policy, memory))
    assert line.startswith("flower supernode: REFUSED (evidence): cannot fetch the SuperLink's evidence from "
                           f"http://127.0.0.1:{port}{EVIDENCE_PATH}")


def test_the_cli_dispatches_flower(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flower", "nothing"]) == 2
    assert "flower {superlink,supernode}" in capsys.readouterr().err
