"""`python -m enclave_runtime flower superlink|supernode`: start Flower's own processes behind attestation.

Flower's SuperLink and SuperNodes (`components/kubernetes/flower.py`) speak TLS with files Flower reads; this
launcher makes those files trustworthy, then replaces itself with Flower's binary (`os.execvp`), so Flower
runs exactly as it would alone and nothing of ours sits in its data path. It never imports flwr: the image
runs the `flower-*` executables, and these commands run (and are tested) without Flower's environment.

superlink (in the aggregator's TEE):
1. generates an ECDSA P-256 key and a self-signed certificate in memory (`serve.tls.TlsIdentity`, as the
   query service; for the `--name`s SuperNodes dial and 127.0.0.1, where flower-superlink reaches itself)
   and writes them, mode 0600, into `--tls-dir`, which must be memory-backed (tmpfs: the
   pod's `emptyDir: {medium: Memory}`): the key never reaches a disk, and a new container has a new key;
2. obtains evidence whose report data is SHA-256 of the key's SubjectPublicKeyInfo (the query service's
   binding with an empty nonce; `ml.attestation.AttestationGate` checks exactly that) and refuses to
   start Flower if the TEE produces none;
3. serves `GET /evidence` on `--evidence-port` from a forked child: fresh evidence per request (a Nitro
   document's signing certificate lives three hours, so evidence made once at start would expire) plus the
   certificate, as JSON (`serve.evidence.document` + `certificate`);
4. execs `flower-superlink` with `--ssl-ca-certfile/--ssl-certfile/--ssl-keyfile` on those files
   (`superlink_command`). flower-superlink is then the container's main process; the evidence child ends
   with the container.

Why plain HTTP for the evidence: it authenticates itself. It is signed by the TEE vendor's chain and
commits to the certificate's key, so an attacker on the path can swap or drop it (a refusal, which
dropping packets achieves anyway) but cannot make a SuperNode accept another key. It also carries no
nonce: what the SuperNode trusts is the key, and only the attested TEE holds it (a replayed document names
an old key nobody outside that TEE has). HTTPS with the same self-signed certificate would prove nothing
before the evidence is checked, and a CA-signed one would add a party to trust. A separate port keeps it
apart from Flower's, and the NetworkPolicy admits only the collaboration's SuperNodes to it.

supernode (in a party's TEE, before anything of the party is loaded):
1. fetches the evidence and certificate from `--evidence-url`;
2. refuses unless the certificate's key is the key the answer names and `AttestationGate.admit` accepts
   the evidence: it verifies (signatures, a pinned root or an explicit `--trust-simulation-root`), is the
   approved workload of `--policy` (measurements, no debug TEE, no simulation in prod) and binds
   SHA-256 of that certificate's key;
3. writes the admitted certificate to `--root-certificates` (0600, memory-backed) and execs
   `flower-supernode --root-certificates` on it: Flower's TLS then trusts that one attested key only. If
   the SuperLink restarts (a new key), the handshake fails, flower-supernode exits, and the pod's restart
   runs this check again.
A refusal prints one line naming the check and exits 1; unusable input exits 2; Flower is never started.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import signal
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

from ..cli import EXIT_OK, EXIT_REJECTED, EXIT_UNUSABLE, UsageParser, trust_store
from .attestation import Admission, AggregatorIdentity, AggregatorRefused, AttestationGate

FLEET_PORT: Final = 9092  # Flower's Fleet API port: the SuperLink's one HTTPS port
EVIDENCE_PORT: Final = 9097  # not one of flwr's (9091-9095)
EVIDENCE_PATH: Final = "/evidence"
SUPERNODE_HEALTH_PORT: Final = 9095  # `flower-supernode --health-server-address` (gRPC health, no data)
TLS_DIR: Final = "/run/ccp/tls"  # in memory: the SuperLink's key never reaches a disk
SUPERLINK_CERT_DIR: Final = "/run/ccp/superlink"  # in memory: written by the party's gate
SUPERLINK_CERT: Final = f"{SUPERLINK_CERT_DIR}/certificate.pem"  # the certificate the gate attested
KEY_FILE, CERT_FILE, CA_FILE = "key.pem", "certificate.pem", "ca.pem"
MEMORY_FILESYSTEMS: Final = frozenset({"tmpfs", "ramfs"})
# flower-superlink's own SuperExec (`--isolation subprocess`) dials its ServerAppIo API at 127.0.0.1 and
# checks the certificate against `--ssl-ca-certfile`: without this name the ServerApp never starts.
LOOPBACK: Final = "127.0.0.1"
MAX_ANSWER: Final = 1 << 20  # bytes: an attestation answer is a few KiB; more is not one
Exec = Callable[[str, Sequence[str]], Any]


def superlink_command(tls_dir: str = TLS_DIR) -> list[str]:
    """`flower-superlink` on the launcher's key and certificate (the certificate is its own CA: no CA
    vouches for a TEE's key, its evidence does), never `--insecure`, no run-time installs."""
    return [
        "flower-superlink",
        "--ssl-ca-certfile", f"{tls_dir}/{CA_FILE}",
        "--ssl-certfile", f"{tls_dir}/{CERT_FILE}",
        "--ssl-keyfile", f"{tls_dir}/{KEY_FILE}",
        "--host", "0.0.0.0",
        "--port", str(FLEET_PORT),
        "--isolation", "subprocess",
        "--disable-runtime-dependency-installation",
    ]


def supernode_command(superlink: str, party: str, root_certificates: str = SUPERLINK_CERT) -> list[str]:
    """`flower-supernode` for `party`: HTTPS to `superlink`, trusting only the attested certificate.
    The party's name reaches its ClientApp as Flower node config, which tells the ClientApp which sealed
    dataset and key are its own. `fl.py`'s ClientApp does not read it yet: `LocalGrid` names each party
    itself."""
    return [
        "flower-supernode",
        "--superlink", superlink,
        "--root-certificates", root_certificates,
        "--isolation", "subprocess",
        "--health-server-address", f"0.0.0.0:{SUPERNODE_HEALTH_PORT}",
        "--node-config", f'party="{party}"',
    ]


class Refused(Exception):
    """The SuperNode will not connect: `check` names what failed."""

    def __init__(self, check: str, message: str) -> None:
        super().__init__(message)
        self.check = check


def filesystem_type(path: Path, mountinfo: Path = Path("/proc/self/mountinfo")) -> str:
    """The type of the filesystem `path` is on: that of the longest mount point containing it."""
    target = os.path.realpath(path)
    best, kind = "", ""
    for line in mountinfo.read_text().splitlines():
        fields = line.split(" ")
        mount = fields[4].encode().decode("unicode_escape")  # mountinfo escapes spaces as \040
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best):
            best, kind = mount, fields[fields.index("-") + 1]
    return kind


def write_private(directory: Path, name: str, data: bytes, option: str) -> Path:
    """Write `data` to directory/name with mode 0600, only on a memory-backed filesystem (else
    Unusable naming `option`). Replaces a file a previous container of the pod left (an emptyDir outlives
    container restarts), never through a symlink."""
    from ..serve.commands import Unusable

    if not directory.is_dir():
        raise Unusable(option, f"{option} {directory}: no such directory; mount the pod's in-memory volume there")
    kind = filesystem_type(directory)
    if kind not in MEMORY_FILESYSTEMS:
        raise Unusable(option, f"{option} {directory} is on {kind or 'an unknown filesystem'}, not in memory: "
                       "TLS material must never reach a disk; mount an emptyDir with medium: Memory (tmpfs) there")
    path = directory / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)
    return path


# --- superlink -------------------------------------------------------------------------------------------


class EvidenceServer(http.server.ThreadingHTTPServer):
    """`GET /evidence`: fresh evidence over SHA-256(spki) and the certificate, as JSON; nothing else."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], answer: Callable[[], dict[str, Any]]) -> None:
        super().__init__(address, _EvidenceHandler)
        self.answer = answer
        self.lock = threading.Lock()  # one evidence request at a time: the NSM / TSM is one device


class _EvidenceHandler(http.server.BaseHTTPRequestHandler):
    server: EvidenceServer
    timeout = 10  # seconds: a slow client holds a thread no longer

    def do_GET(self) -> None:  # noqa: N802 -- http.server's name
        from ..evidence.base import EvidenceError

        if urllib.parse.urlsplit(self.path).path != EVIDENCE_PATH:
            self._send(404, {"error": f"not found: the evidence is at {EVIDENCE_PATH}"})
            return
        try:
            with self.server.lock:
                answer = self.server.answer()
        except EvidenceError as exc:
            self._send(503, {"error": f"the TEE produced no evidence: {exc}"})
            return
        self._send(200, answer)

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 -- http.server's signature
        """Requests are not logged: only the SuperNodes call, once each at start."""


def serve_in_child(server: EvidenceServer) -> None:
    """Serve `server` from a forked child, so the parent can exec flower-superlink. If the child's
    server stops, it stops the SuperLink too (SIGTERM): a SuperLink no SuperNode can attest is restarted
    by Kubernetes with a new key, never left running."""
    parent = os.getpid()
    if os.fork() == 0:
        try:
            server.serve_forever()
        finally:
            os.kill(parent, signal.SIGTERM)
            os._exit(1)
    server.socket.close()


def _superlink_parser() -> UsageParser:
    from ..serve.commands import add_tee_arguments

    parser = UsageParser(prog="python -m enclave_runtime flower superlink",
                         description="Flower's SuperLink with a TLS key bound to this TEE's evidence")
    parser.add_argument("--tls-dir", type=Path, default=Path(TLS_DIR),
                        help="memory-backed directory for the key and certificate (tmpfs)")
    parser.add_argument("--name", action="append", default=[], dest="names", metavar="DNS", required=True,
                        help="the DNS name (or IP) SuperNodes dial, in the certificate (repeatable)")
    parser.add_argument("--evidence-host", default="0.0.0.0", help="address the evidence endpoint listens on")
    parser.add_argument("--evidence-port", type=int, default=EVIDENCE_PORT)
    add_tee_arguments(parser)
    return parser


def run_superlink(argv: Sequence[str], *, execvp: Exec = os.execvp,
                  detach: Callable[[EvidenceServer], None] = serve_in_child) -> int:
    """Returns only when the SuperLink cannot start (2); otherwise `execvp` replaces the process."""
    from cryptography.hazmat.primitives import serialization

    from ..evidence.base import EvidenceError
    from ..serve.commands import Unusable, tee_collector
    from ..serve.evidence import document
    from ..serve.tls import TlsIdentity

    args = _superlink_parser().parse_args(list(argv))
    try:
        if not 0 <= args.evidence_port <= 65535:
            raise Unusable("--evidence-port", f"--evidence-port {args.evidence_port}: give 1..65535 (0: any free port)")
        collector = tee_collector(args)
        identity = TlsIdentity.generate(tuple(dict.fromkeys([*args.names, LOOPBACK])))
        certificate = identity.certificate.public_bytes(serialization.Encoding.PEM)

        def answer() -> dict[str, Any]:
            return {**document(collector, identity, b""), "certificate": certificate.decode()}

        try:
            kind = answer()["kind"]  # the TEE must bind the key before Flower may use it
        except EvidenceError as exc:
            raise Unusable("tee", f"the TEE produced no evidence for the TLS key: {exc}") from None
        key = identity.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption())
        write_private(args.tls_dir, KEY_FILE, key, "--tls-dir")
        write_private(args.tls_dir, CERT_FILE, certificate, "--tls-dir")
        write_private(args.tls_dir, CA_FILE, certificate, "--tls-dir")
        try:
            server = EvidenceServer((args.evidence_host, args.evidence_port), answer)
        except OSError as exc:
            raise Unusable("--evidence-port", f"cannot listen on {args.evidence_host}:{args.evidence_port}: "
                           f"{exc.strerror or exc}") from None
    except Unusable as exc:
        print(f"flower superlink: UNUSABLE ({exc.field}): {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    detach(server)
    print(f"flower superlink: TLS key sha256:{identity.spki_sha256} bound to {kind} evidence, "
          f"served on http://{args.evidence_host}:{server.server_address[1]}{EVIDENCE_PATH}; starting "
          f"flower-superlink{' (SIMULATED TEE)' if args.simulate else ''}", file=sys.stderr, flush=True)
    command = superlink_command(str(args.tls_dir))
    execvp(command[0], command)
    return EXIT_OK


# --- supernode -------------------------------------------------------------------------------------------


def _supernode_parser() -> UsageParser:
    parser = UsageParser(prog="python -m enclave_runtime flower supernode",
                         description="a party's Flower SuperNode, started only once the SuperLink is attested")
    parser.add_argument("--superlink", required=True, metavar="HOST:PORT", help="the SuperLink's Fleet API")
    parser.add_argument("--evidence-url", required=True, metavar="URL",
                        help=f"the SuperLink's evidence, http://HOST:{EVIDENCE_PORT}{EVIDENCE_PATH}")
    parser.add_argument("--party", required=True, help="this SuperNode's party (ccp:collaboration.parties[].name)")
    parser.add_argument("--policy", required=True, type=Path,
                        help="policy document or Pulumi stack file with the approved measurements")
    parser.add_argument("--trust-simulation-root", type=Path, action="append", default=[], metavar="PEM",
                        help="accept the simulated TEE with this root (dev; a prod policy still refuses it)")
    parser.add_argument("--trust-dir", type=Path, help="certificates to complete chains (trusts nothing by itself)")
    parser.add_argument("--root-certificates", type=Path, default=Path(SUPERLINK_CERT),
                        help="where the admitted certificate is written for flower-supernode (memory-backed)")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS", help="for fetching the evidence")
    return parser


def fetch(url: str, timeout: float) -> bytes:
    """The evidence answer at `url` (http or https); Refused (`evidence`) when it cannot be had."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise Refused("evidence", f"--evidence-url {url!r}: expected http://HOST:PORT{EVIDENCE_PATH}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 -- scheme checked above
            body: bytes = response.read(MAX_ANSWER + 1)
    except urllib.error.HTTPError as exc:
        raise Refused("evidence", f"{url} answered HTTP {exc.code}: {exc.read(300).decode(errors='replace')}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Refused("evidence", f"cannot fetch the SuperLink's evidence from {url}: {reason}") from None
    if len(body) > MAX_ANSWER:
        raise Refused("evidence", f"{url} answered more than {MAX_ANSWER} bytes: not an attestation answer")
    return body


def admit(body: bytes, gate: AttestationGate) -> tuple[bytes, Admission]:
    """The certificate (PEM) the evidence in `body` binds, and the gate's admission; Refused otherwise."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from ..client import AttestationRefused, read_attestation
    from ..serve.tls import spki_of

    try:
        attestation = read_attestation(body)
    except AttestationRefused as exc:
        raise Refused(exc.check, exc.message) from None
    pem = attestation.answer.get("certificate")
    try:
        certificate = x509.load_pem_x509_certificate(pem.encode() if isinstance(pem, str) else b"")
    except ValueError as exc:
        raise Refused("certificate", f"the answer carries no readable PEM certificate (field certificate): {exc}") from None
    spki = spki_of(certificate.public_bytes(serialization.Encoding.DER))
    if spki != attestation.spki:
        raise Refused("certificate", f"the served certificate's key sha256:{hashlib.sha256(spki).hexdigest()} is "
                      f"not the key the evidence is for (sha256:{hashlib.sha256(attestation.spki).hexdigest()}): "
                      "a substituted certificate")
    try:
        admission = gate.admit(AggregatorIdentity(attestation.kind, attestation.evidence, spki, attestation.collateral))
    except AggregatorRefused as exc:
        raise Refused("attestation", str(exc)) from None
    return certificate.public_bytes(serialization.Encoding.PEM), admission


def run_supernode(argv: Sequence[str], *, execvp: Exec = os.execvp) -> int:
    """Returns only on a refusal (1) or unusable input (2); otherwise `execvp` replaces the process."""
    from ..attest import VerificationError
    from ..policy import Policy, PolicyError
    from ..serve.commands import Unusable

    args = _supernode_parser().parse_args(list(argv))
    try:
        if args.timeout <= 0:
            raise Unusable("--timeout", f"--timeout {args.timeout}: give positive seconds")
        try:
            gate = AttestationGate(trust_store(args), Policy.from_file(args.policy))
        except PolicyError as exc:
            raise Unusable("--policy", str(exc)) from None
        except VerificationError as exc:
            raise Unusable("--trust-dir", exc.message) from None
        certificate, admission = admit(fetch(args.evidence_url, args.timeout), gate)
        write_private(args.root_certificates.parent, args.root_certificates.name, certificate, "--root-certificates")
    except Unusable as exc:
        print(f"flower supernode: UNUSABLE ({exc.field}): {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    except Refused as exc:
        reason = " ".join(str(exc).split())  # one line, whatever the verifier's message held
        print(f"flower supernode: REFUSED ({exc.check}): {reason}; flower-supernode not started", file=sys.stderr)
        return EXIT_REJECTED
    print(f"flower supernode: party {args.party!r} admitted the SuperLink ({admission.kind}, TLS key "
          f"sha256:{admission.channel_key_sha256}); starting flower-supernode", file=sys.stderr, flush=True)
    command = supernode_command(args.superlink, args.party, str(args.root_certificates))
    execvp(command[0], command)
    return EXIT_OK


def run_flower(argv: Sequence[str]) -> int:
    """`flower superlink ...` or `flower supernode ...`."""
    commands = {"superlink": run_superlink, "supernode": run_supernode}
    if not argv or argv[0] not in commands:
        print("usage: python -m enclave_runtime flower {superlink,supernode} ... (--help for each)", file=sys.stderr)
        return EXIT_UNUSABLE
    return commands[argv[0]](argv[1:])
