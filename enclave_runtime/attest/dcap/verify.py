"""Verification shared by SGX and TDX quotes: the quote's signatures, the PCK chain, and the collateral.

The chain of trust, each link checked here: Intel SGX Root CA → PCK CA → PCK leaf (chain, validity,
CRLs) → QE report (signed by the PCK leaf) → attestation key (hashed with the QE auth data into the QE
report's report_data) → header + body (signed by the attestation key). Break any link and nothing after
it is Intel's word. TCB Info / QE Identity are evaluated only when supplied, and then only once signed
(see `tcb`); their statuses are claims, judged by policy.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ..collateral import Collateral
from ..errors import VerificationError
from ..trust import CHAINS, Anchor, TrustStore, check_revocation, describe, fingerprint, readable
from . import pck, tcb
from .quote import Quote, TdReport


@dataclass(frozen=True)
class Verified:
    """A quote whose every link verified, with what the collateral said of it."""

    quote: Quote
    anchor: Anchor
    pck: pck.PckTcb
    tcb_status: str | None
    qe_tcb_status: str | None


def verify_quote(quote: Quote, collateral: Collateral, store: TrustStore, at: dt.datetime) -> Verified:
    certification = quote.certification
    attestation_key = _p256_key(quote.attestation_key)
    _verify(
        attestation_key,
        quote.signature,
        quote.signed,
        "quote signature (attestation key over header and body)",
    )

    chain_certs = list(_pem_chain(certification.pck_chain_pem))
    leaf = chain_certs[0]
    anchor, chain = CHAINS.verify(leaf, [*chain_certs[1:], *collateral.certificates], store, "intel", at)
    if [fingerprint(c) for c in chain[: len(chain_certs)]] != [fingerprint(c) for c in chain_certs]:
        # The chain may be completed from --with or the trust directory, but every certificate the quote
        # carries must be on it, in order: a quote is not a bag of certificates to pick from.
        raise VerificationError(
            "chain",
            f"the quote's PCK chain ({len(chain_certs)} certificates) is not the verified chain leaf → "
            f"{anchor.name} in order",
        )
    leaf_key = leaf.public_key()
    if not isinstance(leaf_key, ec.EllipticCurvePublicKey) or not isinstance(leaf_key.curve, ec.SECP256R1):
        raise VerificationError("chain", f"PCK leaf {describe(leaf)} has no P-256 key")
    _verify(
        leaf_key,
        certification.qe_report_signature,
        certification.qe_report_raw,
        "QE report signature (PCK leaf)",
    )

    expected = hashlib.sha256(quote.attestation_key + certification.qe_auth_data).digest() + bytes(32)
    report_data = certification.qe_report.report_data
    if report_data != expected:
        raise VerificationError(
            "binding",
            f"QE report_data is {report_data.hex()}, expected SHA-256(attestation key || QE auth data) || 32 zero "
            f"bytes = {expected.hex()}: the attestation key is not the one the QE certified",
        )

    platform = pck.parse(leaf)
    check_revocation(chain, collateral.crls, at)

    tdx = isinstance(quote.body, TdReport)
    info = tcb.signed_document(collateral, "tcbInfo", store, at, anchor)
    tcb_status = (
        None
        if info is None
        else tcb.platform_status(
            info, "TDX" if tdx else "SGX", platform, quote.body.tee_tcb_svn if tdx else None
        )
    )
    identity = tcb.signed_document(collateral, "enclaveIdentity", store, at, anchor)
    qe_tcb_status = (
        None
        if identity is None
        else tcb.qe_status(identity, "TD_QE" if tdx else "QE", certification.qe_report)
    )
    return Verified(quote, anchor, platform, tcb_status, qe_tcb_status)


def _p256_key(raw: bytes) -> ec.EllipticCurvePublicKey:
    numbers = ec.EllipticCurvePublicNumbers(
        int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"), ec.SECP256R1()
    )
    try:
        return numbers.public_key()
    except ValueError:
        raise VerificationError("signature", f"attestation key {raw.hex()} is not a P-256 point") from None


def _verify(key: ec.EllipticCurvePublicKey, raw_signature: bytes, data: bytes, what: str) -> None:
    r, s = int.from_bytes(raw_signature[:32], "big"), int.from_bytes(raw_signature[32:], "big")
    try:
        key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise VerificationError("signature", f"{what} does not verify") from None


@functools.lru_cache(maxsize=256)
def _pem_chain(pem: bytes) -> tuple[x509.Certificate, ...]:
    """The quote's PCK chain, checked once per distinct chain (a platform sends the same one every time)."""
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except (ValueError, x509.InvalidVersion) as exc:
        raise VerificationError(
            "structure", f"quote's PCK certificate chain is not readable PEM: {exc}"
        ) from None
    if not certs:
        raise VerificationError("structure", "quote's PCK certificate chain holds no certificate")
    for index, cert in enumerate(certs):
        if not readable(cert):
            raise VerificationError("structure", f"PCK chain certificate {index} is malformed")
    # PEM tolerates stray text and whitespace; Intel's chain is canonical PEM (optionally NUL-terminated).
    # Insisting on that keeps the certification data byte-exact: no unsigned bytes that change nothing.
    canonical = b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certs)
    if pem not in (canonical, canonical + b"\0"):
        raise VerificationError(
            "structure",
            "quote's PCK certificate chain is not canonical PEM (64-column base64, LF, optional NUL)",
        )
    return tuple(certs)
