"""AWS Nitro Enclaves attestation documents: COSE_Sign1 (ES384) signed by a leaf that chains to Root-G1.

The document is checked the way AWS specifies it (aws-nitro-enclaves-nsm-api, docs/attestation_process.md):
the COSE envelope and every payload field are typed and sized strictly before anything is trusted, then
the leaf is chained through the cabundle to the pinned root as of `at`, then the signature is checked
with the leaf's key. The chain comes first so the signature is only ever checked with a key a vendor
root vouches for.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
from collections.abc import Mapping
from typing import Any, ClassVar

import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pycose.algorithms import Es384
from pycose.messages import Sign1Message

from .claims import Claims, internal
from .collateral import Collateral
from .errors import VerificationError
from .trust import CHAINS, TrustStore, check_revocation, describe, fingerprint, load_der_cached

VENDOR = "aws-nitro"
COSE_SIGN1_TAG = 18
ES384_HEADER = cbor2.dumps({1: Es384.identifier})  # the protected header AWS emits: a1 01 38 22
ES384_SIGNATURE_SIZE = 96  # raw r || s, 48 bytes each
SHA384_SIZE = 48
P384_SIZE = 48  # bytes of a P-384 coordinate (and of r and s)
PCR_INDICES = range(32)
DEBUG_PCRS = (0, 1, 2)  # a debug-mode enclave reports these (with every other PCR) as zero
# (min, max) byte lengths of the optional fields, from the AWS syntactical validation rules.
OPTIONAL_SIZES: dict[str, tuple[int, int]] = {
    "public_key": (1, 1024),
    "user_data": (0, 512),
    "nonce": (0, 512),
}
CERT_SIZE = (1, 1024)
REQUIRED = ("module_id", "digest", "timestamp", "pcrs", "certificate", "cabundle")
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
MAX_TIMESTAMP_MS = (dt.datetime.max.replace(tzinfo=dt.timezone.utc) - EPOCH) // dt.timedelta(milliseconds=1)


@dataclasses.dataclass(frozen=True)
class NitroClaims(Claims):
    """What a verified Nitro document vouches for; PCRs are flattened to `pcrN` claims by `as_dict`."""

    kind: ClassVar[str] = "aws-nitro"
    module_id: str
    timestamp: dt.datetime
    timestamp_ms: int
    digest: str
    user_data: bytes | None
    nonce: bytes | None
    public_key: bytes | None
    pcrs: Mapping[int, bytes] = internal()

    @property
    def debug(self) -> bool:
        return all(not any(self.pcrs[index]) for index in DEBUG_PCRS)

    def as_dict(self) -> dict[str, Any]:
        data = super().as_dict()
        data.update({f"pcr{index}": value.hex() for index, value in sorted(self.pcrs.items())})
        return data


@dataclasses.dataclass(frozen=True)
class _Document:
    """The payload after the syntactical checks: every field has its documented type and size."""

    module_id: str
    digest: str
    timestamp_ms: int
    pcrs: dict[int, bytes]
    certificate: bytes
    cabundle: list[bytes]
    public_key: bytes | None
    user_data: bytes | None
    nonce: bytes | None


def verify(
    evidence: bytes, collateral: Collateral, store: TrustStore, at: dt.datetime, *, kind: str
) -> NitroClaims:
    """Verify a Nitro attestation document (untagged or tag-18 COSE_Sign1) as of `at`."""
    message = _envelope(evidence)
    document = _document(message.payload)
    leaf = _signer(document.certificate)
    bundle = [_certificate(der, f"cabundle[{index}]") for index, der in enumerate(document.cabundle)]
    anchor, chain = CHAINS.verify(leaf, bundle, store.with_certificates(collateral.certificates), VENDOR, at)
    _check_bundle_order(chain, bundle)
    check_revocation(chain, collateral.crls, at)
    _check_signature(message, leaf)
    timestamp = EPOCH + dt.timedelta(milliseconds=document.timestamp_ms)
    if not leaf.not_valid_before_utc <= timestamp <= leaf.not_valid_after_utc:
        raise VerificationError(
            "binding",
            f"document timestamp {timestamp.isoformat()} is outside the validity "
            f"{leaf.not_valid_before_utc.isoformat()} .. {leaf.not_valid_after_utc.isoformat()} "
            f"of its signing certificate {describe(leaf)}",
        )
    return NitroClaims(
        anchor=anchor.name,
        module_id=document.module_id,
        timestamp=timestamp,
        timestamp_ms=document.timestamp_ms,
        digest=document.digest,
        user_data=document.user_data,
        nonce=document.nonce,
        public_key=document.public_key,
        pcrs=document.pcrs,
    )


def _cbor(data: bytes, what: str) -> Any:
    """Decode exactly one CBOR item: trailing bytes would be unsigned data riding along."""
    stream = io.BytesIO(data)
    try:
        item = cbor2.CBORDecoder(stream).decode()
    except (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise VerificationError("structure", f"{what} is not valid CBOR: {exc}") from None
    if stream.tell() != len(data):
        raise VerificationError(
            "structure",
            f"{what} has {len(data) - stream.tell()} bytes after its CBOR item ({len(data)} bytes in all)",
        )
    return item


def _envelope(evidence: bytes) -> Sign1Message:
    """The COSE_Sign1 as AWS emits it: protected {1: -35}, unprotected {}, payload, 96-byte signature."""
    cose = _cbor(evidence, "Nitro attestation document")
    if isinstance(cose, cbor2.CBORTag):
        if cose.tag != COSE_SIGN1_TAG:
            raise VerificationError(
                "structure",
                f"document has CBOR tag {cose.tag}, expected {COSE_SIGN1_TAG} (COSE_Sign1) or none",
            )
        cose = cose.value
    # Inside a tag cbor2 decodes arrays as tuples and maps as frozendicts (so they can be hashed).
    if not (isinstance(cose, (list, tuple)) and len(cose) == 4):
        raise VerificationError(
            "structure", f"document is a CBOR {type(cose).__name__}, expected the 4-element COSE_Sign1 array"
        )
    protected, unprotected, payload, signature = cose
    for field, value, expected in (
        ("protected header", protected, bytes),
        ("payload", payload, bytes),
        ("signature", signature, bytes),
    ):
        if type(value) is not expected:
            raise VerificationError(
                "structure",
                f"COSE_Sign1 {field} is a CBOR {type(value).__name__}, expected {expected.__name__}",
            )
    if protected != ES384_HEADER:
        raise VerificationError(
            "structure",
            f"COSE protected header is {protected.hex() or 'empty'}, "
            f"expected {ES384_HEADER.hex()} = {{1: -35}} (alg ES384)",
        )
    if not isinstance(unprotected, Mapping) or unprotected:
        raise VerificationError(
            "structure", f"COSE unprotected header is {unprotected!r:.80}, expected an empty map"
        )
    if len(signature) != ES384_SIGNATURE_SIZE:
        raise VerificationError(
            "structure",
            f"COSE signature is {len(signature)} bytes, expected {ES384_SIGNATURE_SIZE} (ES384 r || s)",
        )
    message: Sign1Message = Sign1Message.from_cose_obj(
        [protected, {}, payload, signature], allow_unknown_attributes=False
    )
    return message


def _document(payload: bytes) -> _Document:
    fields = _cbor(payload, "attestation document payload")
    if type(fields) is not dict:
        raise VerificationError("structure", f"payload is a CBOR {type(fields).__name__}, expected a map")
    unknown = sorted(map(repr, set(fields) - set(REQUIRED) - set(OPTIONAL_SIZES)))
    if unknown:
        raise VerificationError(
            "structure",
            f"payload has unknown fields {', '.join(unknown)}; allowed: {REQUIRED + tuple(OPTIONAL_SIZES)}",
        )
    missing = [name for name in REQUIRED if fields.get(name) is None]
    if missing:
        raise VerificationError("structure", f"payload lacks (or has null) mandatory fields {missing}")
    module_id, digest, timestamp = fields["module_id"], fields["digest"], fields["timestamp"]
    if type(module_id) is not str or not module_id:
        raise VerificationError("structure", f"module_id is {module_id!r}, expected non-empty text")
    if digest != "SHA384":
        raise VerificationError("structure", f"digest is {digest!r}, expected the text 'SHA384'")
    if type(timestamp) is not int or not 0 < timestamp <= MAX_TIMESTAMP_MS:
        raise VerificationError(
            "structure",
            f"timestamp is {timestamp!r}, expected milliseconds since the epoch "
            f"(a uint, 0 < t <= {MAX_TIMESTAMP_MS})",
        )
    return _Document(
        module_id=module_id,
        digest=digest,
        timestamp_ms=timestamp,
        pcrs=_pcrs(fields["pcrs"]),
        certificate=_bytes(fields["certificate"], "certificate", *CERT_SIZE),
        cabundle=_cabundle(fields["cabundle"]),
        public_key=_optional(fields.get("public_key"), "public_key"),
        user_data=_optional(fields.get("user_data"), "user_data"),
        nonce=_optional(fields.get("nonce"), "nonce"),
    )


def _bytes(value: Any, field: str, low: int, high: int) -> bytes:
    if type(value) is not bytes:
        raise VerificationError(
            "structure", f"{field} is a CBOR {type(value).__name__}, expected a byte string"
        )
    if not low <= len(value) <= high:
        raise VerificationError("structure", f"{field} is {len(value)} bytes, expected {low}..{high}")
    return value


def _optional(value: Any, field: str) -> bytes | None:
    """Absent and null both mean "not given": the NSM emits null for each one the enclave did not pass."""
    return None if value is None else _bytes(value, field, *OPTIONAL_SIZES[field])


def _pcrs(pcrs: Any) -> dict[int, bytes]:
    if type(pcrs) is not dict or not 1 <= len(pcrs) <= len(PCR_INDICES):
        raise VerificationError("structure", f"pcrs is {pcrs!r:.60}, expected a map of 1..32 PCRs")
    for index in pcrs:
        if type(index) is not int or index not in PCR_INDICES:
            raise VerificationError("structure", f"pcrs has key {index!r}, expected a PCR index 0..31")
    for index in DEBUG_PCRS:
        if index not in pcrs:
            raise VerificationError(
                "structure", f"pcrs lacks PCR{index}; the enclave image PCRs 0, 1 and 2 are always reported"
            )
    return {
        index: _bytes(value, f"PCR{index}", SHA384_SIZE, SHA384_SIZE) for index, value in sorted(pcrs.items())
    }


def _cabundle(cabundle: Any) -> list[bytes]:
    if type(cabundle) is not list or not cabundle:
        raise VerificationError(
            "structure", f"cabundle is {cabundle!r:.60}, expected a non-empty array of DER certificates"
        )
    return [_bytes(der, f"cabundle[{i}]", *CERT_SIZE) for i, der in enumerate(cabundle)]


def _certificate(der: bytes, field: str) -> x509.Certificate:
    """Parse `der` and every field chain building reads, so a malformed one is a named `chain` failure.

    cryptography decodes names, extensions and keys lazily, and reports a bad version field with an
    exception outside ValueError: without this, a corrupt issuer name or version would escape as a bare
    exception from the middle of chain building.
    """
    try:
        return load_der_cached(der)
    except VerificationError as exc:
        raise VerificationError("chain", f"{field}: {exc.message}") from None


def _signer(der: bytes) -> x509.Certificate:
    leaf = _certificate(der, "certificate")
    key = leaf.public_key()
    if not (isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP384R1)):
        raise VerificationError(
            "chain",
            f"signing certificate {describe(leaf)} has a {type(key).__name__}, "
            "expected an EC P-384 key for ES384",
        )
    return leaf


def _check_bundle_order(chain: list[x509.Certificate], bundle: list[x509.Certificate]) -> None:
    """AWS orders cabundle [root, intermediate 1, ..., intermediate N]; the chain found must be exactly that.

    Checking cabundle[0] against the root the chain ended at refuses a bundle that names a foreign root
    even when the pinned root came from elsewhere (a trust directory, `--with`).
    """
    if fingerprint(bundle[0]) != fingerprint(chain[-1]):
        raise VerificationError(
            "root",
            f"cabundle[0] is {describe(bundle[0])}, but the chain ends at {describe(chain[-1])}: "
            "the bundle must start with the root",
        )
    found = [fingerprint(cert) for cert in reversed(chain[1:])]
    given = [fingerprint(cert) for cert in bundle]
    if found != given:
        raise VerificationError(
            "chain",
            f"cabundle holds {len(given)} certificates that are not the chain [root, intermediates...] found "
            f"({len(found)} certificates from {describe(chain[-1])} to the signing certificate's issuer)",
        )


def _check_signature(message: Sign1Message, leaf: x509.Certificate) -> None:
    """ES384 over the COSE Sig_structure (RFC 9052 §4.4), verified by OpenSSL.

    pycose decodes the envelope, but its own verify runs the pure-Python `ecdsa` package, about 30x
    slower than `cryptography`; the structure signed is the one RFC 9052 defines, built from pycose's
    decoded protected header bytes and payload.
    """
    to_be_signed = cbor2.dumps(["Signature1", message.phdr_encoded, b"", message.payload])
    r, s = message.signature[:P384_SIZE], message.signature[P384_SIZE:]
    signature = encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big"))
    try:
        leaf.public_key().verify(signature, to_be_signed, ec.ECDSA(hashes.SHA384()))  # type: ignore[call-arg]
    except InvalidSignature:
        raise VerificationError(
            "signature", f"ES384 signature does not verify with the key of {describe(leaf)}"
        ) from None
