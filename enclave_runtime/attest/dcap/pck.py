"""The SGX extension of a PCK certificate (OID 1.2.840.113741.1.13.1): what the platform's TCB is.

Why it matters: the quote says nothing verifiable about the platform's microcode or PCE; the PCK leaf,
issued by Intel for exactly this TCB, does. Its FMSPC selects the TCB Info, and its CPUSVN components
and PCESVN are what the TCB levels are compared with. Layout: Intel "PCK Certificate and CRL Profile"
(a SEQUENCE of {OID, value}; the TCB entry is itself such a SEQUENCE of 16 component SVNs, PCESVN, CPUSVN).
"""

from __future__ import annotations

import functools

from dataclasses import dataclass

from asn1crypto import core
from cryptography import x509

from ..errors import VerificationError

SGX_EXTENSION = "1.2.840.113741.1.13.1"
_TCB = SGX_EXTENSION + ".2"
_PCEID = SGX_EXTENSION + ".3"
_FMSPC = SGX_EXTENSION + ".4"
_PCESVN = _TCB + ".17"
_CPUSVN = _TCB + ".18"


class Entry(core.Sequence):
    """One {OID, value} entry of the SGX extension (the simulator encodes with the same classes)."""

    _fields = [("id", core.ObjectIdentifier), ("value", core.Any)]


class Entries(core.SequenceOf):
    _child_spec = Entry


@dataclass(frozen=True)
class PckTcb:
    fmspc: bytes  # 6 bytes
    pceid: bytes  # 2 bytes
    pcesvn: int
    cpusvn: bytes  # 16 bytes
    components: tuple[int, ...]  # the 16 SGX TCB component SVNs, in order


@functools.lru_cache(maxsize=1024)
def parse(leaf: x509.Certificate) -> PckTcb:
    """Read the SGX extension of the (already chain-verified) PCK leaf; a missing or malformed one is `chain`."""
    try:
        der = leaf.extensions.get_extension_for_oid(x509.ObjectIdentifier(SGX_EXTENSION)).value.value  # type: ignore[attr-defined]
    except x509.ExtensionNotFound:
        raise VerificationError("chain", f"PCK leaf has no SGX extension {SGX_EXTENSION}") from None
    try:
        top = _entries(der)
        tcb = _entries(top[_TCB].dump())
        components = tuple(tcb[f"{_TCB}.{i}"].parse(core.Integer).native for i in range(1, 17))
        result = PckTcb(
            fmspc=_octets(top, _FMSPC, 6),
            pceid=_octets(top, _PCEID, 2),
            pcesvn=tcb[_PCESVN].parse(core.Integer).native,
            cpusvn=_octets(tcb, _CPUSVN, 16),
            components=components,
        )
    except KeyError as exc:
        raise VerificationError("chain", f"PCK SGX extension lacks entry {exc.args[0]}") from None
    except (ValueError, TypeError) as exc:
        raise VerificationError("chain", f"PCK SGX extension is malformed: {exc}") from None
    if not all(0 <= svn <= 0xFF for svn in components) or not 0 <= result.pcesvn <= 0xFFFF:
        raise VerificationError(
            "chain", f"PCK SGX extension has SVNs out of range: {components}, {result.pcesvn}"
        )
    return result


def _entries(der: bytes) -> dict[str, core.Any]:
    entries = Entries.load(der)
    return {entry["id"].dotted: entry["value"] for entry in entries}


def _octets(entries: dict[str, core.Any], oid: str, size: int) -> bytes:
    value = entries[oid].parse(core.OctetString).native
    if len(value) != size:
        raise ValueError(f"entry {oid} is {len(value)} bytes, expected {size}")
    return value
