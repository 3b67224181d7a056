"""TPM 2.0 quotes: the one typed place for TPM structures (TPMS_ATTEST, TPMT_SIGNATURE) and quote checks.

Why here and hand-parsed: tpm2-pytss has no wheel for this platform, and a verifier must turn every
malformed byte into a named `structure` failure, which the bounds-checked `Reader` gives for free. The
layouts are TPM 2.0 Library Part 2 (big-endian): TPMS_ATTEST §10.12.12, TPMS_QUOTE_INFO §10.12.4,
TPML_PCR_SELECTION §10.9.7, TPMT_SIGNATURE §11.3.4.

A quote proves only what its AK signed: the PCR selection, the digest of the selected PCR values and the
caller's nonce (extraData). `verify_quote` checks the signature, then that the supplied PCR values hash
to the signed digest, so the values it returns are the ones the TPM vouched for.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from .binary import Reader
from .errors import VerificationError

TPM_GENERATED_VALUE = 0xFF544347  # every TPM-made attestation starts with it; a TPM refuses to sign it otherwise
TPM_ST_ATTEST_QUOTE = 0x8018
TPM_ALG_SHA256 = 0x000B
TPM_ALG_RSASSA = 0x0014
TPM_ALG_ECDSA = 0x0018
PCR_COUNT = 24
SHA256_SIZE = 32

AttestationKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


@dataclass(frozen=True)
class ClockInfo:
    """TPMS_CLOCK_INFO: lets a verifier order quotes of one TPM; `safe` is false after a clock rollback."""

    clock: int
    reset_count: int
    restart_count: int
    safe: bool


@dataclass(frozen=True)
class PcrSelection:
    """One TPMS_PCR_SELECTION: a hash bank and the PCR indices selected in it, ascending."""

    hash_alg: int
    indices: tuple[int, ...]


@dataclass(frozen=True)
class TpmsAttest:
    """A TPMS_ATTEST of type quote (the bytes the AK signs)."""

    qualified_signer: bytes
    extra_data: bytes
    clock_info: ClockInfo
    firmware_version: int
    pcr_selection: tuple[PcrSelection, ...]
    pcr_digest: bytes

    @classmethod
    def parse(cls, message: bytes) -> TpmsAttest:
        r = Reader(message, "TPMS_ATTEST")
        magic = r.u32be("magic")
        if magic != TPM_GENERATED_VALUE:
            raise VerificationError(
                "structure", f"TPMS_ATTEST magic is {magic:#010x}, expected {TPM_GENERATED_VALUE:#010x} (TPM_GENERATED)"
            )
        kind = r.u16be("type")
        if kind != TPM_ST_ATTEST_QUOTE:
            raise VerificationError(
                "structure", f"TPMS_ATTEST type is {kind:#06x}, expected {TPM_ST_ATTEST_QUOTE:#06x} (TPM_ST_ATTEST_QUOTE)"
            )
        signer = r.sized_be16("qualifiedSigner")
        extra = r.sized_be16("extraData")
        clock = ClockInfo(r.u64be("clock"), r.u32be("resetCount"), r.u32be("restartCount"), r.u8("safe") != 0)
        firmware = r.u64be("firmwareVersion")
        selection = tuple(_pcr_selection(r, i) for i in range(r.u32be("pcrSelect.count")))
        digest = r.sized_be16("pcrDigest")
        if r.remaining:
            raise VerificationError("structure", f"TPMS_ATTEST has {r.remaining} bytes after pcrDigest, expected none")
        return cls(signer, extra, clock, firmware, selection, digest)


def _pcr_selection(r: Reader, i: int) -> PcrSelection:
    alg = r.u16be(f"pcrSelections[{i}].hash")
    bitmap = r.take(r.u8(f"pcrSelections[{i}].sizeofSelect"), f"pcrSelections[{i}].pcrSelect")
    return PcrSelection(alg, tuple(8 * byte + bit for byte, bits in enumerate(bitmap) for bit in range(8) if bits >> bit & 1))


@dataclass(frozen=True)
class TpmtSignature:
    """A TPMT_SIGNATURE (what `tpm2_quote -f tss` writes), or a raw signature (`-f plain`, Azure's sample)."""

    sig_alg: int
    hash_alg: int
    signature: bytes  # RSA: the signature; ECDSA: DER ECDSA-Sig-Value

    @classmethod
    def parse(cls, blob: bytes, ak: AttestationKey) -> TpmtSignature:
        """Read `blob` as a TPMT_SIGNATURE if it is exactly one, else as the raw form for `ak`'s key type."""
        try:
            return cls._parse_tss(blob)
        except VerificationError:
            pass
        if isinstance(ak, rsa.RSAPublicKey):
            return cls(TPM_ALG_RSASSA, TPM_ALG_SHA256, bytes(blob))
        size = (ak.curve.key_size + 7) // 8
        if len(blob) == 2 * size:  # raw r || s
            blob = encode_dss_signature(int.from_bytes(blob[:size], "big"), int.from_bytes(blob[size:], "big"))
        return cls(TPM_ALG_ECDSA, TPM_ALG_SHA256, bytes(blob))

    @classmethod
    def _parse_tss(cls, blob: bytes) -> TpmtSignature:
        r = Reader(blob, "TPMT_SIGNATURE")
        alg, hash_alg = r.u16be("sigAlg"), r.u16be("hash")
        if alg == TPM_ALG_RSASSA:
            signature = r.sized_be16("signature")
        elif alg == TPM_ALG_ECDSA:
            sig_r, sig_s = r.sized_be16("signatureR"), r.sized_be16("signatureS")
            signature = encode_dss_signature(int.from_bytes(sig_r, "big"), int.from_bytes(sig_s, "big"))
        else:
            raise VerificationError("structure", f"TPMT_SIGNATURE sigAlg {alg:#06x} is neither RSASSA nor ECDSA")
        if r.remaining:
            raise VerificationError("structure", f"TPMT_SIGNATURE has {r.remaining} trailing bytes")
        return cls(alg, hash_alg, signature)

    def verify(self, message: bytes, ak: AttestationKey) -> None:
        if self.hash_alg != TPM_ALG_SHA256:
            raise VerificationError("structure", f"quote signature hash is {self.hash_alg:#06x}, expected SHA-256 (0x000b)")
        self._check_fits(ak)
        try:
            if isinstance(ak, rsa.RSAPublicKey):
                ak.verify(self.signature, message, padding.PKCS1v15(), hashes.SHA256())
            else:
                ak.verify(self.signature, message, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            raise VerificationError("signature", "TPM quote signature does not verify with the attestation key") from None


    def _check_fits(self, ak: AttestationKey) -> None:
        expected = TPM_ALG_RSASSA if isinstance(ak, rsa.RSAPublicKey) else TPM_ALG_ECDSA
        if self.sig_alg != expected:
            raise VerificationError(
                "signature",
                f"quote signature algorithm is {self.sig_alg:#06x}, but the {type(ak).__name__} AK signs with {expected:#06x}",
            )


@dataclass(frozen=True)
class QuoteInfo:
    """A verified quote: the attested structure and the SHA-256 PCR values it vouches for."""

    attest: TpmsAttest
    pcrs: dict[int, bytes]

    @property
    def nonce(self) -> bytes:
        return self.attest.extra_data


def verify_quote(
    message: bytes,
    signature: bytes,
    pcrs: Mapping[int, bytes],
    ak: AttestationKey,
    nonce: bytes | None = None,
) -> QuoteInfo:
    """Verify a quote `message` (TPMS_ATTEST) signed by `ak` over the SHA-256 PCR values `pcrs`.

    Raises `structure` (layout, a bank other than SHA-256), `signature` (not the AK's), `input` (a selected
    PCR not supplied) or `binding` (PCR values that do not hash to pcrDigest, or extraData != `nonce`).
    """
    if not isinstance(ak, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
        raise VerificationError("input", f"attestation key is a {type(ak).__name__}, expected an RSA or EC public key")
    attest = TpmsAttest.parse(message)
    TpmtSignature.parse(signature, ak).verify(message, ak)
    if nonce is not None and attest.extra_data != nonce:
        raise VerificationError(
            "binding", f"quote extraData is {attest.extra_data.hex()}, expected the nonce {bytes(nonce).hex()}"
        )
    selected = _selected_sha256(attest.pcr_selection)
    values = {i: _pcr_value(pcrs, i) for i in selected}
    digest = hashlib.sha256(b"".join(values[i] for i in selected)).digest()
    if digest != attest.pcr_digest:
        raise VerificationError(
            "binding",
            f"SHA-256 over PCRs {list(selected)} is {digest.hex()}, but the quote's pcrDigest is "
            f"{attest.pcr_digest.hex()}: a supplied PCR value is not the one the TPM quoted",
        )
    return QuoteInfo(attest, values)


def _selected_sha256(selection: tuple[PcrSelection, ...]) -> tuple[int, ...]:
    """The selected indices; only the SHA-256 bank is accepted, since the values supplied are that bank's."""
    if len(selection) != 1 or selection[0].hash_alg != TPM_ALG_SHA256:
        banks = [f"{s.hash_alg:#06x}" for s in selection]
        raise VerificationError("structure", f"quote selects PCR banks {banks}, expected only SHA-256 (0x000b)")
    indices = selection[0].indices
    if indices and indices[-1] >= PCR_COUNT:
        raise VerificationError("structure", f"quote selects PCR {indices[-1]}, expected indices below {PCR_COUNT}")
    return indices


def _pcr_value(pcrs: Mapping[int, bytes], index: int) -> bytes:
    value = pcrs.get(index)
    if value is None:
        raise VerificationError("input", f"PCR {index} is selected by the quote but its value was not supplied")
    if not isinstance(value, (bytes, bytearray)) or len(value) != SHA256_SIZE:
        raise VerificationError("structure", f"PCR {index} value must be {SHA256_SIZE} bytes (SHA-256 bank)")
    return bytes(value)
