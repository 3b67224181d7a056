"""Reading what comes with evidence: certificates, CRLs and JSON collateral, in whatever encoding.

Evidence and `--with` files arrive as binary, hex, base64, PEM or JSON depending on who produced them
(a `nitro-cli` dump, a configfs-tsm blob, a KDS download, a PCS response); detecting the encoding here
means every verifier receives bytes and typed objects, and a file that is none of these is refused
with its name.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from .errors import VerificationError

# What cryptography raises for a certificate it cannot read (only some of it derives from ValueError).
MALFORMED_CERTIFICATE = (
    ValueError,
    TypeError,
    UnsupportedAlgorithm,
    x509.InvalidVersion,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
)


# AMD's VCEKs (as served by the KDS and carried in Azure evidence) have serial number 0, which
# cryptography 50 loads with this deprecation warning; cryptography is pinned in requirements.txt, and a
# tool verifying AMD evidence silences exactly this warning rather than alarm its users.
AMD_SERIAL_ZERO_WARNING = "Parsed a serial number which wasn't positive"

_HEX = re.compile(rb"^[0-9a-fA-F\s]+$")
_B64 = re.compile(rb"^[A-Za-z0-9+/=_\-\s]+$")


def decode_text(text: bytes) -> bytes | None:
    """Hex, then base64 (standard or url-safe, padding optional, whitespace ignored); None if neither."""
    compact = re.sub(rb"\s", b"", text)
    if _HEX.match(text) and len(compact) % 2 == 0:
        return binascii.unhexlify(compact)
    if _B64.match(text):
        padded = compact + b"=" * (-len(compact) % 4)
        try:
            if b"-" in compact or b"_" in compact:
                return base64.urlsafe_b64decode(padded)
            return base64.b64decode(padded, validate=True)
        except (binascii.Error, ValueError):
            pass
    return None


def decode_evidence(blob: bytes) -> bytes:
    """Binary as is; JSON as is (the kind parses it); otherwise hex, then base64 (standard or url-safe)."""
    text = blob.strip()
    if not text or text[:1] in (b"{", b"["):
        return bytes(blob)
    decoded = decode_text(text)
    return bytes(blob) if decoded is None else decoded


def json_object(data: bytes | str, what: str, check: str) -> dict[str, Any]:
    """`data` parsed as a JSON object, or a `check` failure naming `what` (no JSON error escapes)."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise VerificationError(check, f"{what} is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise VerificationError(check, f"{what} is a JSON {type(document).__name__}, expected an object")
    return document


def canonical_pem_certificates(pem: bytes, what: str) -> list[x509.Certificate]:
    """Certificates carried *inside* evidence (a DCAP quote's PCK chain, an Azure vTPM document's VCEK).

    PEM tolerates stray text and whitespace, which would make those bytes free to change with nothing
    noticing; vendors emit canonical PEM (64-column base64, LF; Intel adds a NUL), so anything else is
    refused as `structure`. Files given with `--with` are read leniently by `Collateral.add` instead.
    """
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except MALFORMED_CERTIFICATE as exc:
        raise VerificationError("structure", f"{what} is not readable PEM: {exc}") from None
    canonical = b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certs)
    if pem not in (canonical, canonical + b"\0"):
        raise VerificationError("structure", f"{what} is not canonical PEM (64-column base64, LF, optional NUL)")
    return certs


@dataclass
class Collateral:
    """Everything given with one piece of evidence, sorted by what it is."""

    certificates: list[x509.Certificate] = field(default_factory=list)
    crls: list[x509.CertificateRevocationList] = field(default_factory=list)
    documents: list[dict[str, Any]] = field(default_factory=list)  # JSON: TCB info, QE identity, JWKS, ...
    # The exact bytes of each document, same order: signed collateral (Intel's tcbInfo, enclaveIdentity)
    # is verified over the bytes as served, which re-serialising the parsed JSON would not reproduce.
    document_bytes: list[bytes] = field(default_factory=list)

    @classmethod
    def from_files(cls, paths: Iterable[Path | str]) -> "Collateral":
        collateral = cls()
        for path in paths:
            try:
                blob = Path(path).read_bytes()
            except OSError as exc:
                raise VerificationError("input", f"cannot read {path}: {exc.strerror}") from None
            collateral.add(blob, str(path))
        return collateral

    def add(self, blob: bytes, name: str = "collateral") -> None:
        """Sort one file's contents in; refuse a file that holds nothing recognisable."""
        text = blob.strip()
        if text[:1] == b"{":
            try:
                self.documents.append(json.loads(text))
                self.document_bytes.append(bytes(text))
            except ValueError as exc:
                raise VerificationError("input", f"{name}: not valid JSON ({exc})") from None
            return
        if b"-----BEGIN" in text:
            found = False
            if b"CERTIFICATE-----" in text:
                self.certificates.extend(self._pem_certs(text, name))
                found = True
            for crl_pem in re.findall(rb"-----BEGIN X509 CRL-----.+?-----END X509 CRL-----", text, re.S):
                self.crls.append(self._load(x509.load_pem_x509_crl, crl_pem, name, "PEM CRL"))
                found = True
            if not found:
                raise VerificationError("input", f"{name}: PEM holds neither CERTIFICATE nor X509 CRL blocks")
            return
        der = decode_evidence(blob)
        for loader in (x509.load_der_x509_certificate, x509.load_der_x509_crl):
            try:
                loaded = loader(der)
            except MALFORMED_CERTIFICATE:
                continue
            (self.certificates if isinstance(loaded, x509.Certificate) else self.crls).append(loaded)  # type: ignore[arg-type]
            return
        raise VerificationError(
            "input", f"{name}: not a certificate, certificate chain, CRL or JSON document (PEM, DER, hex or base64)"
        )

    def extend(self, other: "Collateral") -> None:
        self.certificates.extend(other.certificates)
        self.crls.extend(other.crls)
        self.documents.extend(other.documents)
        self.document_bytes.extend(other.document_bytes)

    def document(self, key: str) -> dict[str, Any] | None:
        """The first JSON document with top-level `key` (e.g. `tcbInfo`, `enclaveIdentity`, `keys`)."""
        return next((d for d in self.documents if isinstance(d, dict) and key in d), None)

    def document_source(self, key: str) -> bytes | None:
        """The exact bytes of the document `document(key)` returns."""
        return next(
            (raw for d, raw in zip(self.documents, self.document_bytes) if isinstance(d, dict) and key in d), None
        )

    @staticmethod
    def _pem_certs(text: bytes, name: str) -> list[x509.Certificate]:
        try:
            return x509.load_pem_x509_certificates(
                b"".join(re.findall(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\s*", text, re.S))
            )
        except MALFORMED_CERTIFICATE as exc:
            raise VerificationError("input", f"{name}: unreadable PEM certificate ({exc})") from None

    @staticmethod
    def _load(loader: Any, data: bytes, name: str, what: str) -> Any:
        try:
            return loader(data)
        except ValueError as exc:
            raise VerificationError("input", f"{name}: unreadable {what} ({exc})") from None
