"""Google Confidential Space attestation tokens, from the container launcher.

The launcher writes a default token (audience `https://sts.googleapis.com`, no nonce) to
`attestation_verifier_claims_token` and serves tokens with a custom audience and nonces on its Unix
socket (`POST /v1/token`, google/go-tpm-tools launcher/teeserver). Only the latter binds report data,
so `collect` with report data needs an audience: a default token would prove the workload but not
that it produced this particular request.

The report data goes in as one nonce, lowercase hex; the launcher takes nonces of 10 to 74 bytes,
so report data must be 5 to 37 bytes (a SHA-256 fits). Tests drive a real Unix-socket HTTP server.
"""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path

from .base import Evidence, EvidenceError

LAUNCHER = Path("/run/container_launcher")
TOKEN_FILE = "attestation_verifier_claims_token"
SOCKET = "teeserver.sock"
NONCE_BYTES = (10, 74)  # the launcher's bounds on each nonce string


class ConfidentialSpace:
    """Tokens from the launcher under `launcher` (the directory the launcher mounts into the container)."""

    def __init__(
        self, audience: str | None = None, *, launcher: Path | str = LAUNCHER, timeout: float = 30.0
    ) -> None:
        self.audience = audience
        self.launcher = Path(launcher)
        self.timeout = timeout

    def collect(self, report_data: bytes) -> Evidence:
        if self.audience is None:
            if report_data:
                raise EvidenceError(
                    "a Confidential Space token binds report data only with a custom audience: "
                    "construct ConfidentialSpace(audience=...) (or detect(audience=...))"
                )
            return Evidence("cs-token", default_token(self.launcher))
        return Evidence(
            "cs-token",
            request_token(self.launcher / SOCKET, self.audience, [nonce(report_data)], self.timeout),
        )


def nonce(report_data: bytes) -> str:
    """`report_data` as the launcher's nonce string: lowercase hex, refused outside its length bounds."""
    text = bytes(report_data).hex()
    low, high = NONCE_BYTES
    if not low <= len(text) <= high:
        raise EvidenceError(
            f"report data is {len(report_data)} bytes; a Confidential Space nonce (hex) must be {low}..{high} "
            f"characters, so report data must be {low // 2 + low % 2}..{high // 2} bytes: pass a SHA-256"
        )
    return text


def default_token(launcher: Path | str = LAUNCHER) -> bytes:
    """The launcher's default token file, as written (the launcher refreshes it before expiry)."""
    path = Path(launcher) / TOKEN_FILE
    try:
        token = path.read_bytes().strip()
    except OSError as exc:
        raise EvidenceError(
            f"cannot read the Confidential Space token {path}: {exc.strerror} "
            "(is this a Confidential Space workload, with the launcher running?)"
        ) from None
    return _checked(token, str(path))


def request_token(socket_path: Path | str, audience: str, nonces: list[str], timeout: float = 30.0) -> bytes:
    """`POST /v1/token` on the launcher's socket: an OIDC token with `audience` and `nonces` (eat_nonce)."""
    body = json.dumps({"audience": audience, "nonces": nonces, "token_type": "OIDC"})
    connection = _UnixConnection(Path(socket_path), timeout)
    try:
        connection.request("POST", "/v1/token", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        answer = response.read()
    except FileNotFoundError:
        raise EvidenceError(
            f"launcher socket {socket_path} does not exist: not a Confidential Space workload, or the "
            "launcher has not started its token server yet"
        ) from None
    except OSError as exc:
        raise EvidenceError(f"cannot reach the launcher at {socket_path}: {exc.strerror or exc}") from None
    finally:
        connection.close()
    if response.status != 200:
        raise EvidenceError(
            f"launcher at {socket_path} answered POST /v1/token with {response.status} {response.reason}: "
            f"{answer[:300].decode('utf-8', 'replace').strip()}"
        )
    return _checked(answer.strip(), f"the launcher at {socket_path}")


def _checked(token: bytes, source: str) -> bytes:
    """Refuse anything that is not a compact JWS (header.payload.signature) before it travels on."""
    if token.count(b".") != 2 or not all(token.split(b".")):
        raise EvidenceError(f"{source} did not give a JWT (header.payload.signature): got {len(token)} bytes")
    return token


class _UnixConnection(http.client.HTTPConnection):
    """HTTP/1.1 over the launcher's AF_UNIX socket (the Host header says localhost, as curl does)."""

    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.socket_path))
        except OSError:
            sock.close()
            raise
        self.sock = sock
