"""Intel's signed TCB collateral (PCS TCB Info, QE Identity) and the TCB-status evaluation.

Why fail closed: TCB Info is what says a platform's microcode is revoked. Its signing chain is served as
an HTTP header (`TCB-Info-Issuer-Chain`), not in the JSON, so it is easy to drop; collateral whose
signature was not checked would let anyone declare any platform `UpToDate`. So a supplied document is
used only after its signature verifies with an "Intel SGX TCB Signing" certificate chaining to the same
anchor as the quote's PCK chain; otherwise verification fails, telling the caller what to supply.

The signature is over the exact bytes of the `tcbInfo` / `enclaveIdentity` value as served (Intel signs
the serialised JSON), so the raw member is cut out of the file's bytes, never re-serialised.
Evaluation rules: Intel PCS API v4 "TCB Info" / "Enclave Identity" and the DCAP QVL.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID

from ..collateral import Collateral
from ..errors import VerificationError
from ..trust import CHAINS, Anchor, TrustStore, describe
from .pck import PckTcb
from .quote import EnclaveReport

TCB_SIGNER = "Intel SGX TCB Signing"
REVOKED = "Revoked"


def signed_document(
    collateral: Collateral, key: str, store: TrustStore, at: dt.datetime, anchor: Anchor
) -> dict[str, Any] | None:
    """The verified `key` member of a supplied PCS document, or None when none was supplied."""
    document = collateral.document(key)
    source = collateral.document_source(key)
    if document is None or source is None:
        return None
    signers = [c for c in [*collateral.certificates, *store.pool] if _common_name(c) == TCB_SIGNER]
    if not signers:
        raise VerificationError(
            "chain",
            f"{key} collateral was supplied without its signing certificate: supply the TCB signing chain "
            f"({TCB_SIGNER!r} certificate, PCS response header TCB-Info-Issuer-Chain / "
            "SGX-Enclave-Identity-Issuer-Chain) with --with, or leave the TCB collateral out",
        )
    signer = signers[0]
    signer_anchor, _ = CHAINS.verify(signer, collateral.certificates, store, "intel", at)
    if signer_anchor.name != anchor.name:
        raise VerificationError(
            "root",
            f"{key} is signed under {signer_anchor.name}, but the quote's PCK chain ends at {anchor.name}",
        )
    signature = _hex(_field(document, "signature", str, key), f"{key} signature", 64)
    public_key = signer.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise VerificationError("chain", f"{describe(signer)} has no EC key to verify {key} with")
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    try:
        public_key.verify(der, raw_member(source, key), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise VerificationError(
            "signature", f"{key} signature does not verify with {describe(signer)}"
        ) from None
    body = _field(document, key, dict, key)
    issued = _date(body, "issueDate", key)
    next_update = _date(body, "nextUpdate", key)
    if not issued <= at <= next_update:
        raise VerificationError(
            "validity",
            f"{key} is valid {issued.isoformat()} .. {next_update.isoformat()}, not at {at.isoformat()}",
        )
    return body


def raw_member(source: bytes, key: str) -> bytes:
    """The exact bytes of top-level member `key` of the JSON object in `source`."""
    try:
        text = source.decode("utf-8")
    except UnicodeDecodeError:
        raise VerificationError("input", f"document holding {key} is not UTF-8") from None
    decoder = json.JSONDecoder()
    index = _skip(text, text.index("{") + 1) if "{" in text else 0
    try:
        while index < len(text) and text[index] == '"':
            name, index = decoder.raw_decode(text, index)
            index = _skip(text, index)
            if text[index] != ":":
                break
            start = _skip(text, index + 1)
            _, end = decoder.raw_decode(text, start)
            if name == key:
                return text[start:end].encode("utf-8")
            index = _skip(text, end)
            if text[index] != ",":
                break
            index = _skip(text, index + 1)
    except (ValueError, IndexError):
        pass
    raise VerificationError("input", f"cannot locate the raw {key!r} member in the supplied document")


def _skip(text: str, index: int) -> int:
    while index < len(text) and text[index] in " \t\r\n":
        index += 1
    return index


def platform_status(info: dict[str, Any], kind_id: str, pck: PckTcb, tee_tcb_svn: bytes | None) -> str:
    """The status of the first TCB level the platform meets (Intel's order: newest first).

    A level is met when every SGX component SVN and the PCESVN of the PCK certificate are at least the
    level's, and, for TDX, every TEE_TCB_SVN byte of the quote is at least the level's TDX component.
    """
    found_id = info.get("id", "SGX")
    if found_id != kind_id:
        raise VerificationError("binding", f"tcbInfo id is {found_id!r}, expected {kind_id!r} for this quote")
    fmspc = _hex(_field(info, "fmspc", str, "tcbInfo"), "tcbInfo fmspc", 6)
    if fmspc != pck.fmspc:
        raise VerificationError(
            "binding", f"tcbInfo fmspc is {fmspc.hex()}, but the PCK certificate's FMSPC is {pck.fmspc.hex()}"
        )
    pceid = _hex(_field(info, "pceId", str, "tcbInfo"), "tcbInfo pceId", 2)
    if pceid != pck.pceid:
        raise VerificationError(
            "binding", f"tcbInfo pceId is {pceid.hex()}, but the PCK's PCEID is {pck.pceid.hex()}"
        )
    for level in _field(info, "tcbLevels", list, "tcbInfo"):
        tcb = _field(_dict(level, "tcbInfo tcbLevels[]"), "tcb", dict, "tcbInfo tcbLevel")
        if not _at_least(pck.components, _sgx_components(tcb)):
            continue
        if pck.pcesvn < _field(tcb, "pcesvn", int, "tcbInfo tcbLevel"):
            continue
        if tee_tcb_svn is not None and not _at_least(tuple(tee_tcb_svn), _svns(tcb, "tdxtcbcomponents")):
            continue
        return _status(level, "TCB", pck.fmspc.hex())
    raise VerificationError(
        "tcb",
        f"platform TCB (FMSPC {pck.fmspc.hex()}, CPUSVN {pck.cpusvn.hex()}, PCESVN {pck.pcesvn}) matches no tcbInfo level",
    )


def qe_status(identity: dict[str, Any], kind_id: str, qe: EnclaveReport) -> str:
    """Check the QE report is Intel's QE for this kind, then the status of its ISVSVN."""
    found_id = identity.get("id", "QE")
    if found_id != kind_id:
        raise VerificationError("binding", f"enclaveIdentity id is {found_id!r}, expected {kind_id!r}")
    where = "enclaveIdentity"
    mrsigner = _hex(_field(identity, "mrsigner", str, where), "enclaveIdentity mrsigner", 32)
    if qe.mrsigner != mrsigner:
        raise VerificationError(
            "binding", f"QE report mrsigner is {qe.mrsigner.hex()}, expected {mrsigner.hex()}"
        )
    if qe.isvprodid != _field(identity, "isvprodid", int, where):
        raise VerificationError(
            "binding", f"QE report isvprodid is {qe.isvprodid}, expected {identity['isvprodid']}"
        )
    misc = int.from_bytes(_hex(_field(identity, "miscselect", str, where), "miscselect", 4), "big")
    misc_mask = int.from_bytes(
        _hex(_field(identity, "miscselectMask", str, where), "miscselectMask", 4), "big"
    )
    if qe.miscselect & misc_mask != misc & misc_mask:
        raise VerificationError(
            "binding",
            f"QE report miscselect {qe.miscselect:#010x} masked with {misc_mask:#010x} is not {misc:#010x}",
        )
    attributes = _hex(_field(identity, "attributes", str, where), "attributes", 16)
    mask = _hex(_field(identity, "attributesMask", str, where), "attributesMask", 16)
    masked = bytes(a & m for a, m in zip(qe.attributes, mask))
    if masked != bytes(a & m for a, m in zip(attributes, mask)):
        raise VerificationError(
            "binding",
            f"QE report attributes {qe.attributes.hex()} masked with {mask.hex()} is not {attributes.hex()}",
        )
    for level in _field(identity, "tcbLevels", list, where):
        tcb = _field(_dict(level, "enclaveIdentity tcbLevels[]"), "tcb", dict, "enclaveIdentity tcbLevel")
        if qe.isvsvn >= _field(tcb, "isvsvn", int, "enclaveIdentity tcbLevel"):
            return _status(level, "QE", f"isvsvn {qe.isvsvn}")
    raise VerificationError("tcb", f"QE isvsvn {qe.isvsvn} matches no enclaveIdentity level")


def _status(level: dict[str, Any], what: str, which: str) -> str:
    status = _field(level, "tcbStatus", str, f"{what} level")
    if status == REVOKED:
        raise VerificationError(
            "tcb", f"{what} level of {which} is {REVOKED} (tcbDate {level.get('tcbDate')})"
        )
    return status


def _sgx_components(tcb: dict[str, Any]) -> tuple[int, ...]:
    """tcbInfo v3 lists `sgxtcbcomponents`; v2 names them `sgxtcbcomp01svn` .. `sgxtcbcomp16svn`."""
    if "sgxtcbcomponents" in tcb:
        return _svns(tcb, "sgxtcbcomponents")
    return tuple(_field(tcb, f"sgxtcbcomp{i:02d}svn", int, "tcbInfo tcbLevel") for i in range(1, 17))


def _svns(tcb: dict[str, Any], key: str) -> tuple[int, ...]:
    components = _field(tcb, key, list, "tcbInfo tcbLevel")
    if len(components) != 16:
        raise VerificationError("input", f"tcbInfo {key} has {len(components)} entries, expected 16")
    return tuple(_field(_dict(c, key), "svn", int, key) for c in components)


def _at_least(actual: Sequence[int], required: Sequence[int]) -> bool:
    return all(a >= r for a, r in zip(actual, required, strict=True))


def _dict(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise VerificationError("input", f"{where} is {type(value).__name__}, expected an object")
    return value


def _field(obj: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise VerificationError("input", f"{where} field {key!r} is {value!r}, expected {kind.__name__}")
    return value


def _hex(value: str, what: str, size: int) -> bytes:
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raw = b""
    if len(raw) != size:
        raise VerificationError("input", f"{what} is {value!r}, expected {size} bytes of hex")
    return raw


def _date(obj: dict[str, Any], key: str, where: str) -> dt.datetime:
    value = _field(obj, key, str, where)
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise VerificationError("input", f"{where} {key} is {value!r}, expected an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise VerificationError("input", f"{where} {key} is {value!r}, expected a UTC time (Z)")
    return parsed


def _common_name(cert: Any) -> str | None:
    try:
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except ValueError:  # a malformed subject names nobody
        return None
    return str(names[0].value) if names else None
