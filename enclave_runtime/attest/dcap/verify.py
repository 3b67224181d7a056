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
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ..collateral import Collateral, canonical_pem_certificates
from ..errors import VerificationError
from ..trust import CHAINS, Anchor, TrustStore, check_revocation, describe, fingerprint, readable
from . import pck, tcb
from .quote import TEE_SGX, TEE_TDX, EnclaveReport, Quote, TdReport


@dataclass(frozen=True)
class Verified:
    """A quote whose every link verified, with what the collateral said of it."""

    quote: Quote
    anchor: Anchor
    pck: pck.PckTcb
    tcb_status: str | None
    qe_tcb_status: str | None


@dataclass(frozen=True)
class QuoteKind:
    """What makes a quote an SGX or a TDX one: the header's TEE type, the versions, the body type."""

    name: str
    tee_type: int
    versions: tuple[int, ...]
    body: type[EnclaveReport] | type[TdReport]
    other: str  # the kind to use for a quote of the other TEE


SGX = QuoteKind("intel-sgx", TEE_SGX, (3,), EnclaveReport, "intel-tdx")
TDX = QuoteKind("intel-tdx", TEE_TDX, (4, 5), TdReport, "intel-sgx")


def verify_evidence(
    evidence: bytes, collateral: Collateral, store: TrustStore, at: dt.datetime, kind: QuoteKind
) -> Verified:
    """Parse `evidence` as a quote of `kind`, refuse the other TEE's quotes by name, and verify it."""
    quote = Quote.parse(evidence)
    if quote.header.tee_type != kind.tee_type or not isinstance(quote.body, kind.body):
        raise VerificationError(
            "structure",
            f"quote has tee_type {quote.header.tee_type:#x}, expected {kind.tee_type:#x} for {kind.name}: "
            f"verify it as {kind.other}",
        )
    if quote.header.version not in kind.versions:
        raise VerificationError(
            "structure", f"{kind.name} quote version is {quote.header.version}, expected one of {kind.versions}"
        )
    return verify_quote(quote, collateral, store, at)


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


@functools.lru_cache(maxsize=256)  # a QE's attestation key signs many quotes
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
    certs = canonical_pem_certificates(pem, "quote's PCK certificate chain")
    if not certs:
        raise VerificationError("structure", "quote's PCK certificate chain holds no certificate")
    for index, cert in enumerate(certs):
        if not readable(cert):
            raise VerificationError("structure", f"PCK chain certificate {index} is malformed")
    return tuple(certs)
