"""Certificate issuance for the simulated TEE: a root and the chains each vendor format needs.

The simulated chains mirror the real ones' shapes (key types, signature schemes, vendor extensions),
because a verifier tested only against a friendlier shape proves nothing about the real one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ccp simulated TEE (not a vendor)"),
        ]
    )


@dataclass(frozen=True)
class Issued:
    """A certificate with its private key."""

    key: PrivateKey
    certificate: x509.Certificate

    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)


def issue(
    subject: str,
    key: PrivateKey,
    issuer: Issued | None,
    *,
    ca: bool,
    not_before: dt.datetime,
    not_after: dt.datetime,
    extensions: Sequence[x509.ExtensionType] = (),
    rsa_pss: bool = False,
    hash_alg: hashes.HashAlgorithm | None = None,
    serial: int | None = None,
) -> Issued:
    """Issue `subject` (self-signed when `issuer` is None). `rsa_pss` signs as AMD does (PSS, salt = hash size)."""
    signer = issuer.key if issuer else key
    algorithm = hash_alg or hashes.SHA384()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(subject))
        .issuer_name(issuer.certificate.subject if issuer else name(subject))
        .public_key(key.public_key())
        .serial_number(serial if serial is not None else x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    pad = (
        padding.PSS(mgf=padding.MGF1(algorithm), salt_length=algorithm.digest_size)
        if rsa_pss and isinstance(signer, rsa.RSAPrivateKey)
        else None
    )
    certificate = builder.sign(signer, algorithm, rsa_padding=pad)
    return Issued(key, certificate)


def ec_key(curve: ec.EllipticCurve) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(curve)


def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)
