"""AMD's X.509 extensions on a VCEK or VLEK: which chip and which TCB the key was derived for.

The report signs its chip_id and reported_tcb, the certificate carries the same facts as extensions
(AMD "VCEK Certificate and KDS Interface Specification" 57230); verifying the report means checking
that the two agree. Values are DER (INTEGER, IA5String); hwID is the 64 raw chip-id bytes in AMD's
certificates, so a DER OCTET STRING around them is accepted too.
"""

from __future__ import annotations

import functools

from dataclasses import dataclass
from typing import Any

from asn1crypto import core
from cryptography import x509

from ..errors import VerificationError
from ..trust import describe

_AMD = "1.3.6.1.4.1.3704.1"
STRUCT_VERSION = x509.ObjectIdentifier(f"{_AMD}.1")
PRODUCT_NAME = x509.ObjectIdentifier(f"{_AMD}.2")
HWID = x509.ObjectIdentifier(f"{_AMD}.4")
CSP_ID = x509.ObjectIdentifier(f"{_AMD}.5")  # VLEK only: the cloud provider it was issued to
SPL_OIDS: dict[str, x509.ObjectIdentifier] = {
    "bl_spl": x509.ObjectIdentifier(f"{_AMD}.3.1"),
    "tee_spl": x509.ObjectIdentifier(f"{_AMD}.3.2"),
    "snp_spl": x509.ObjectIdentifier(f"{_AMD}.3.3"),
    "ucode_spl": x509.ObjectIdentifier(f"{_AMD}.3.8"),
    "fmc_spl": x509.ObjectIdentifier(f"{_AMD}.3.9"),  # Turin
}
CHIP_ID_SIZE = 64


@dataclass(frozen=True)
class AmdExtensions:
    """What a VCEK/VLEK says about the chip and TCB it endorses; absent extensions are None / left out."""

    product_name: str | None  # e.g. "Milan-B0", "Genoa"
    hwid: bytes | None  # VCEK only
    spl: dict[str, int]

    @property
    def product(self) -> str | None:
        """The generation in lower case ("milan"), without the stepping AMD appends ("-B0")."""
        return self.product_name.split("-", 1)[0].lower() if self.product_name else None

    @classmethod
    @functools.lru_cache(maxsize=1024)  # a chip's VCEK arrives with every report it signs
    def read(cls, cert: x509.Certificate) -> "AmdExtensions":
        try:
            extensions = {ext.oid: ext.value for ext in cert.extensions}
        except ValueError as exc:
            raise VerificationError("chain", f"{describe(cert)} has unreadable extensions: {exc}") from None
        raw = {
            oid: value.value
            for oid, value in extensions.items()
            if isinstance(value, x509.UnrecognizedExtension)
        }
        product_name = raw.get(PRODUCT_NAME)
        hwid = raw.get(HWID)
        spl = {name: raw[oid] for name, oid in SPL_OIDS.items() if oid in raw}
        return cls(
            product_name=None
            if product_name is None
            else _der(cert, "productName", core.IA5String, product_name),
            hwid=None if hwid is None else _hwid(cert, hwid),
            spl={name: _spl(cert, name, value) for name, value in spl.items()},
        )


def _der(cert: x509.Certificate, field: str, spec: type[core.Asn1Value], value: bytes) -> Any:
    try:
        return spec.load(value, strict=True).native
    except (ValueError, TypeError) as exc:
        raise VerificationError(
            "chain", f"{describe(cert)} extension {field} is not a DER {spec.__name__}: {value.hex()} ({exc})"
        ) from None


def _spl(cert: x509.Certificate, name: str, value: bytes) -> int:
    level = _der(cert, name, core.Integer, value)
    if not 0 <= level <= 0xFF:
        raise VerificationError(
            "chain", f"{describe(cert)} extension {name} is {level}; an SPL is one byte (0..255)"
        )
    return int(level)


def _hwid(cert: x509.Certificate, value: bytes) -> bytes:
    chip_id = value if len(value) == CHIP_ID_SIZE else _der(cert, "hwID", core.OctetString, value)
    if len(chip_id) != CHIP_ID_SIZE:
        raise VerificationError(
            "chain",
            f"{describe(cert)} extension hwID holds {len(chip_id)} bytes; a chip id is {CHIP_ID_SIZE}",
        )
    return bytes(chip_id)
