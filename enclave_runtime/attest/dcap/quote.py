"""The Intel DCAP quote layouts (SGX v3, TDX v4 and v5), parsed in one typed place.

Why one module for SGX and TDX: the header, the ECDSA signature data and the QE certification are the
same structures in both, and the QE report is itself an SGX report body. Each layout is a table of
(field, size) read through `Reader`, so a short or inconsistent buffer is a `structure` failure and the
simulator packs exactly what the parser reads (`pack`), never a second description of the bytes.

Lengths come from the quote's own length fields, never from the buffer size: genuine quotes are often
followed by padding (Intel's quote buffer is fixed-size; one genuine sample carries a text note), which
is not part of the quote and is ignored: `size` says where the quote ended.
Sources: Intel "SGX ECDSA Quote Library API" (quote v3) and "TDX DCAP Quote Generation Library" (v4/v5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..binary import Reader
from ..errors import VerificationError

ATT_KEY_ECDSA_P256 = 2
TEE_SGX = 0x00
TEE_TDX = 0x81
CERT_PCK_CHAIN = 5  # PEM PCK leaf || PCK CA || root
CERT_QE_REPORT = 6  # v4/v5: QE report certification data wrapping a type-5 chain
BODY_SGX = 1
BODY_TDX10 = 2
BODY_TDX15 = 3

# (field, size, is a little-endian integer); names starting with "_" are reserved bytes (zero when packed).
Layout = tuple[tuple[str, int, bool], ...]


def _read(cls: Any, reader: Reader, what: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for field, size, is_int in cls.LAYOUT:
        chunk = reader.take(size, f"{what}.{field.lstrip('_')}")
        if not field.startswith("_"):
            values[field] = int.from_bytes(chunk, "little") if is_int else chunk
    return values


def _pack(obj: Any) -> bytes:
    out = bytearray()
    for field, size, is_int in obj.LAYOUT:
        value = 0 if field.startswith("_") else getattr(obj, field)
        out += value.to_bytes(size, "little") if is_int else (value or b"\0" * size)
    return bytes(out)


@dataclass(frozen=True)
class Header:
    LAYOUT: ClassVar[Layout] = (
        ("version", 2, True),
        ("att_key_type", 2, True),
        ("tee_type", 4, True),
        ("qe_svn", 2, True),  # v3 only: reserved (zero or not) in v4/v5, kept so the bytes round-trip
        ("pce_svn", 2, True),
        ("qe_vendor_id", 16, False),
        ("user_data", 20, False),
    )
    SIZE: ClassVar[int] = 48

    version: int
    att_key_type: int
    tee_type: int
    qe_svn: int
    pce_svn: int
    qe_vendor_id: bytes
    user_data: bytes

    @classmethod
    def parse(cls, reader: Reader) -> "Header":
        header = cls(**_read(cls, reader, "quote header"))
        if header.att_key_type != ATT_KEY_ECDSA_P256:
            raise VerificationError(
                "structure",
                f"quote header att_key_type is {header.att_key_type}, expected {ATT_KEY_ECDSA_P256} (ECDSA-256-with-P-256)",
            )
        return header

    def pack(self) -> bytes:
        return _pack(self)


@dataclass(frozen=True)
class EnclaveReport:
    """An SGX report body: the SGX quote's body, and the QE report in every quote."""

    LAYOUT: ClassVar[Layout] = (
        ("cpusvn", 16, False),
        ("miscselect", 4, True),
        ("_reserved1", 28, False),
        ("attributes", 16, False),
        ("mrenclave", 32, False),
        ("_reserved2", 32, False),
        ("mrsigner", 32, False),
        ("_reserved3", 96, False),
        ("isvprodid", 2, True),
        ("isvsvn", 2, True),
        ("_reserved4", 60, False),
        ("report_data", 64, False),
    )
    SIZE: ClassVar[int] = 384

    cpusvn: bytes
    miscselect: int
    attributes: bytes
    mrenclave: bytes
    mrsigner: bytes
    isvprodid: int
    isvsvn: int
    report_data: bytes

    @classmethod
    def parse(cls, reader: Reader, what: str = "SGX report") -> "EnclaveReport":
        return cls(**_read(cls, reader, what))

    def pack(self) -> bytes:
        return _pack(self)


@dataclass(frozen=True)
class TdReport:
    """A TDX TD report as quoted: TDX 1.0 (584 bytes), or TDX 1.5 (648) with `tee_tcb_svn2`, `mrservicetd`."""

    LAYOUT: ClassVar[Layout] = (
        ("tee_tcb_svn", 16, False),
        ("mrseam", 48, False),
        ("mrsignerseam", 48, False),
        ("seam_attributes", 8, False),
        ("td_attributes", 8, False),
        ("xfam", 8, False),
        ("mrtd", 48, False),
        ("mrconfigid", 48, False),
        ("mrowner", 48, False),
        ("mrownerconfig", 48, False),
        ("rtmr0", 48, False),
        ("rtmr1", 48, False),
        ("rtmr2", 48, False),
        ("rtmr3", 48, False),
        ("report_data", 64, False),
    )
    LAYOUT15: ClassVar[Layout] = (("tee_tcb_svn2", 16, False), ("mrservicetd", 48, False))
    SIZE: ClassVar[int] = 584
    SIZE15: ClassVar[int] = 648

    tee_tcb_svn: bytes
    mrseam: bytes
    mrsignerseam: bytes
    seam_attributes: bytes
    td_attributes: bytes
    xfam: bytes
    mrtd: bytes
    mrconfigid: bytes
    mrowner: bytes
    mrownerconfig: bytes
    rtmr0: bytes
    rtmr1: bytes
    rtmr2: bytes
    rtmr3: bytes
    report_data: bytes
    tee_tcb_svn2: bytes | None = None
    mrservicetd: bytes | None = None

    @classmethod
    def parse(cls, reader: Reader, tdx15: bool = False) -> "TdReport":
        values = _read(cls, reader, "TD report")
        if tdx15:
            values.update(_read(_Tdx15, reader, "TD report"))
        return cls(**values)

    @property
    def tdx15(self) -> bool:
        return self.tee_tcb_svn2 is not None

    def pack(self) -> bytes:
        return _pack(self) + (
            _pack(_Tdx15(self.tee_tcb_svn2 or b"", self.mrservicetd or b"")) if self.tdx15 else b""
        )


@dataclass(frozen=True)
class _Tdx15:
    """The TDX 1.5 tail of a TD report (v5 body type 3)."""

    LAYOUT: ClassVar[Layout] = TdReport.LAYOUT15
    tee_tcb_svn2: bytes
    mrservicetd: bytes


Body = EnclaveReport | TdReport


@dataclass(frozen=True)
class QeCertification:
    """What certifies the attestation key: the QE report, its PCK signature, QE auth data, the PCK chain."""

    qe_report: EnclaveReport
    qe_report_raw: bytes
    qe_report_signature: bytes
    qe_auth_data: bytes
    pck_chain_pem: bytes

    @classmethod
    def parse(cls, reader: Reader) -> "QeCertification":
        start = reader.offset
        qe_report = EnclaveReport.parse(reader, "QE report")
        raw = reader.data[start : reader.offset]
        signature = reader.take(64, "QE report signature")
        auth = reader.take(reader.u16le("QE auth data length"), "QE auth data")
        chain = _certification(reader, CERT_PCK_CHAIN, "PCK certificate chain")
        return cls(qe_report, raw, signature, auth, chain)

    def pack(self) -> bytes:
        return (
            self.qe_report_raw
            + self.qe_report_signature
            + len(self.qe_auth_data).to_bytes(2, "little")
            + self.qe_auth_data
            + _certification_pack(CERT_PCK_CHAIN, self.pck_chain_pem)
        )


def _certification(reader: Reader, expected: int, what: str) -> bytes:
    cert_type = reader.u16le("certification data type")
    if cert_type != expected:
        raise VerificationError(
            "structure", f"certification data type is {cert_type}, expected {expected} ({what})"
        )
    return reader.take(reader.u32le("certification data size"), what)


def _certification_pack(cert_type: int, data: bytes) -> bytes:
    return cert_type.to_bytes(2, "little") + len(data).to_bytes(4, "little") + data


@dataclass(frozen=True)
class Quote:
    """A parsed DCAP quote. `signed` is the exact region the attestation key signs."""

    header: Header
    body: Body
    signed: bytes
    signature: bytes  # raw r || s, big-endian, P-256
    attestation_key: bytes  # raw x || y, P-256
    certification: QeCertification
    size: int  # bytes the quote occupies; anything after is padding

    @classmethod
    def parse(cls, data: bytes) -> "Quote":
        reader = Reader(data, "DCAP quote")
        header = Header.parse(reader)
        body = _parse_body(header, reader)
        signed = reader.data[: reader.offset]
        sig_data = Reader(
            reader.take(reader.u32le("signature data length"), "signature data"), "quote signature data"
        )
        signature = sig_data.take(64, "quote signature")
        key = sig_data.take(64, "attestation key")
        if header.version == 3:
            certification = QeCertification.parse(sig_data)
        else:
            inner = Reader(_certification(sig_data, CERT_QE_REPORT, "QE report certification data"), "QE report certification data")
            certification = QeCertification.parse(inner)
            inner.done()
        sig_data.done()
        return cls(header, body, signed, signature, key, certification, reader.offset)


def _parse_body(header: Header, reader: Reader) -> Body:
    if header.version == 3:
        if header.tee_type != TEE_SGX:
            raise VerificationError(
                "structure", f"quote v3 has tee_type {header.tee_type:#x}, expected {TEE_SGX:#x} (SGX)"
            )
        return EnclaveReport.parse(reader)
    if header.version == 4:
        if header.tee_type == TEE_TDX:
            return TdReport.parse(reader)
        if header.tee_type == TEE_SGX:
            return EnclaveReport.parse(reader)
        raise VerificationError(
            "structure", f"quote v4 has tee_type {header.tee_type:#x}, expected {TEE_SGX:#x} or {TEE_TDX:#x}"
        )
    if header.version == 5:
        body_type = reader.u16le("body type")
        body_size = reader.u32le("body size")
        expected = _BODY_SIZES.get(body_type)
        if expected is None:
            raise VerificationError(
                "structure", f"quote v5 body type is {body_type}, expected one of {sorted(_BODY_SIZES)}"
            )
        if body_size != expected:
            raise VerificationError(
                "structure", f"quote v5 body type {body_type} has size {body_size}, expected {expected}"
            )
        if (body_type == BODY_SGX) != (header.tee_type == TEE_SGX):
            raise VerificationError(
                "structure", f"quote v5 body type {body_type} does not match tee_type {header.tee_type:#x}"
            )
        if body_type == BODY_SGX:
            return EnclaveReport.parse(reader)
        return TdReport.parse(reader, tdx15=body_type == BODY_TDX15)
    raise VerificationError("structure", f"quote version is {header.version}, expected 3, 4 or 5")


_BODY_SIZES = {BODY_SGX: EnclaveReport.SIZE, BODY_TDX10: TdReport.SIZE, BODY_TDX15: TdReport.SIZE15}


def signed_region(header: Header, body: Body) -> bytes:
    """What the attestation key signs: header, (v5) body descriptor, body."""
    packed = body.pack()
    if header.version < 5:
        return header.pack() + packed
    body_type = BODY_SGX if isinstance(body, EnclaveReport) else BODY_TDX15 if body.tdx15 else BODY_TDX10
    return header.pack() + body_type.to_bytes(2, "little") + len(packed).to_bytes(4, "little") + packed


def signature_data(
    version: int, signature: bytes, attestation_key: bytes, certification: QeCertification
) -> bytes:
    """The u32-length-prefixed signature data that follows the signed region."""
    qe = certification.pack()
    data = signature + attestation_key + (qe if version == 3 else _certification_pack(CERT_QE_REPORT, qe))
    return len(data).to_bytes(4, "little") + data
