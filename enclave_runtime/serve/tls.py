"""The service's TLS identity: a key generated inside the TEE, held in memory, bound to the attestation.

The key is created when the process starts and never leaves it: there is no key file to steal from the
host, and a restarted service has a new key (clients re-attest per connection anyway). The evidence the
service hands out commits to SHA-256(SubjectPublicKeyInfo ‖ client nonce), so a client that reads the
SPKI from its own live TLS connection knows the TEE it verified holds the key ending that connection.

TLS 1.3 only: its handshake signs the transcript with the certificate key (CertificateVerify), which is
what proves the peer holds the attested key; older versions add no value here and only attack surface.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import ssl
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

BINDING_SCHEME = "sha256(spki||nonce)"  # what the report data / user data commits to, versioned by name
NONCE_MIN, NONCE_MAX = 16, 64  # bytes: at least 128 bits of client freshness, at most one SHA-512 worth


def spki_of(certificate_der: bytes) -> bytes:
    """The DER SubjectPublicKeyInfo of a DER certificate (what the binding commits to)."""
    cert = x509.load_der_x509_certificate(certificate_der)
    return cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def report_data(spki: bytes, nonce: bytes) -> bytes:
    """SHA-256(spki ‖ nonce): 32 bytes, fits Nitro user_data and the 64-byte SNP/TDX report data."""
    return hashlib.sha256(spki + nonce).digest()


@dataclass(frozen=True)
class TlsIdentity:
    """An ECDSA P-256 key and a self-signed certificate for it, created in memory.

    Self-signed on purpose: no CA vouches for a TEE's key; the attestation does. P-256 keeps the
    per-connection handshake cheap (attestation is per connection, so handshakes are the per-client cost).
    """

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    spki: bytes = field(repr=False)

    @classmethod
    def generate(cls, names: tuple[str, ...] = ("localhost",), days: int = 365) -> "TlsIdentity":
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.timezone.utc)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ccp attested service (key bound to TEE evidence)")])
        alt: list[x509.GeneralName] = []
        for name in names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alt.append(x509.DNSName(name))
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return cls(key, cert, spki)

    @property
    def spki_sha256(self) -> str:
        return hashlib.sha256(self.spki).hexdigest()

    def report_data(self, nonce: bytes) -> bytes:
        return report_data(self.spki, nonce)

    def ssl_context(self, client_trust: str = "") -> ssl.SSLContext:
        """A TLS 1.3-only server context holding the key, loaded without any file on disk.

        `client_trust`: PEM certificates of the declared output recipients (`access.Access.trust_pem`). When
        given, the server asks for a client certificate but does not require one (`CERT_OPTIONAL`: inference
        clients present none); a presented one must be one of these, and the app authorizes by its key.

        `ssl` loads keys only from paths, so the PEM goes through an anonymous memory file (memfd):
        it is never linked into a filesystem and disappears when closed, right after loading.
        """
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.maximum_version = ssl.TLSVersion.TLSv1_3
        context.set_alpn_protocols(["http/1.1"])
        if client_trust:
            context.verify_mode = ssl.CERT_OPTIONAL
            context.load_verify_locations(cadata=client_trust)
        pem = self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ) + self.certificate.public_bytes(serialization.Encoding.PEM)
        if not hasattr(os, "memfd_create"):
            raise RuntimeError(
                "os.memfd_create is unavailable (not Linux): the TLS key would have to be written to a file, "
                "which this service refuses; run it on Linux (every supported TEE is)"
            )
        fd = os.memfd_create("ccp-tls-key", os.MFD_CLOEXEC)
        try:
            os.write(fd, pem)
            context.load_cert_chain(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        return context
