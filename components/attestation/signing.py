"""Detached signatures over the approved measurements, checked before anything is declared.

The approved measurements are what every party's key is bound to, so the set a stack deploys must be
the set the parties reviewed. A signer (e.g. each party's release manager, or the collaboration's
build pipeline) signs `ApprovedMeasurements.canonical_json()` — sorted keys, no whitespace, the
`signature` field excluded — and the stack config carries the signature (`measurements.signature`:
`keyId`, `signature`) and the trusted public keys (`ccp:measurementSigners`: key id -> PEM).

Algorithms: Ed25519 (RFC 8032; the signature is the 64 raw bytes) or ECDSA P-256 with SHA-256 (the
signature is DER, as `cryptography` and OpenSSL produce it). Signatures are base64 (standard or
url-safe alphabet). Any other key type is refused: no RSA, no other curve, nothing implicit.

Policy (fail closed): once signer keys are configured, an unsigned set is refused; a signature by a
key id that is not configured is refused; a signature that does not verify is refused. A signature
with no signer keys configured is refused too (it could not have been checked).
"""

from __future__ import annotations

import base64
import binascii
from typing import Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from enclave_runtime.measurements import ApprovedMeasurements, MeasurementSignature

PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey


class SignatureError(ValueError):
    """The measurements' signature is missing, by an unknown key, or does not verify."""

    def __init__(self, key_id: str | None, reason: str):
        self.key_id = key_id
        super().__init__(f"signer key {key_id!r}: {reason}" if key_id else reason)


def load_public_key(key_id: str, pem: str) -> PublicKey:
    """A configured signer key: Ed25519 or ECDSA P-256 in PEM (SubjectPublicKeyInfo)."""
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError) as error:
        raise SignatureError(key_id, f"is not a PEM public key ({error})") from None
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    raise SignatureError(key_id, "is neither Ed25519 nor ECDSA P-256; other key types are refused")


def _decode(key_id: str, signature: str) -> bytes:
    text = signature.strip()
    padded = text + "=" * (-len(text) % 4)
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(padded.encode())
        return base64.b64decode(padded.encode(), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(key_id, "the signature is not base64") from None


def verify(key_id: str, key: PublicKey, message: bytes, signature: bytes) -> None:
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
        else:
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise SignatureError(
            key_id,
            "the signature does not verify over the measurements' canonical JSON: the measurements "
            "were changed after signing, or were signed by another key",
        ) from None


def verify_measurements(measurements: ApprovedMeasurements, signers: Mapping[str, str]) -> None:
    """Raise SignatureError unless the measurements carry a valid signature by a configured signer.

    With no signers configured and no signature, signing is not in use and nothing is checked.
    """
    signature = measurements.signature
    if not signers:
        if signature is not None:
            raise SignatureError(
                signature.key_id,
                "the measurements are signed but ccp:measurementSigners has no keys: add the signer's "
                "public key so that the signature is checked",
            )
        return
    if signature is None:
        raise SignatureError(
            None,
            f"ccp:measurementSigners is set ({', '.join(sorted(signers))}) but the measurements are not "
            "signed: add measurements.signature (keyId, signature)",
        )
    pem = signers.get(signature.key_id)
    if pem is None:
        raise SignatureError(
            signature.key_id,
            f"is not one of the configured signers ({', '.join(sorted(signers))})",
        )
    key = load_public_key(signature.key_id, pem)
    verify(signature.key_id, key, measurements.canonical_json(), _decode(signature.key_id, signature.signature))


def sign_measurements(
    measurements: ApprovedMeasurements, private_key: PrivateKey, key_id: str
) -> MeasurementSignature:
    """The detached signature a signer adds (tooling and tests; private keys never enter a stack)."""
    message = measurements.canonical_json()
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        raw = private_key.sign(message)
    elif isinstance(private_key, ec.EllipticCurvePrivateKey) and isinstance(private_key.curve, ec.SECP256R1):
        raw = private_key.sign(message, ec.ECDSA(hashes.SHA256()))
    else:
        raise SignatureError(key_id, "signing key is neither Ed25519 nor ECDSA P-256")
    return MeasurementSignature(key_id=key_id, signature=base64.b64encode(raw).decode())


def public_key_pem(private_key: PrivateKey) -> str:
    """The PEM a stack config lists under ccp:measurementSigners for this signer."""
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
