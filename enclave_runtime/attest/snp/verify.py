"""Verify an SEV-SNP attestation report: VCEK/VLEK signature, chain to a pinned AMD ARK, and agreement
between what the report signs (chip_id, reported_tcb) and what its endorsement key was issued for.

The report names its signing key only by kind (VCEK or VLEK), so the key is found among the supplied
certificates: a VCEK by its hwID equal to the report's chip_id, a VLEK by its ASVK issuer (a VLEK is
per cloud provider, not per chip, so chip_id may be masked). The product, and with it the TCB byte
layout, is taken from the verified chain's ARK, which the pin vouches for.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID

from ..claims import Claims
from ..collateral import Collateral
from ..errors import VerificationError
from ..trust import CHAINS, TrustStore, check_revocation, describe, fingerprint, readable
from .report import POLICY_DEBUG, SnpReport
from .tcb import PRODUCTS, TcbVersion
from .vcek import AmdExtensions

VLEK_ISSUER_PREFIX = "SEV-VLEK-"  # the ASVK: AMD's CA for VLEKs, e.g. "SEV-VLEK-Milan"
ARK_PREFIX = "ARK-"
# CPUID family of each product (reports of version 3 and later carry it).
CPUID_FAMILY = {"milan": 0x19, "genoa": 0x19, "turin": 0x1A}


@dataclass(frozen=True)
class SnpClaims(Claims):
    kind: ClassVar[str] = "amd-sev-snp"
    version: int
    product: str
    signing_key: str
    measurement: bytes
    report_data: bytes
    host_data: bytes
    chip_id: bytes
    policy: int
    vmpl: int
    guest_svn: int
    family_id: bytes
    image_id: bytes
    id_key_digest: bytes
    author_key_digest: bytes
    platform_info: int
    reported_tcb: dict[str, int | str]
    current_tcb: int
    committed_tcb: int
    launch_tcb: int

    @property
    def debug(self) -> bool:
        return bool(self.policy & POLICY_DEBUG)


def verify(
    evidence: bytes, collateral: Collateral, store: TrustStore, at: dt.datetime, *, kind: str
) -> SnpClaims:
    return verify_report(evidence, collateral, store, at)


def verify_report(
    report: bytes,
    collateral: Collateral,
    store: TrustStore,
    at: dt.datetime,
    extra_certificates: Sequence[x509.Certificate] = (),
) -> SnpClaims:
    """Verify a 1184-byte report; `extra_certificates` are endorsements carried inside other evidence."""
    parsed = SnpReport.parse(report)
    candidates = [*extra_certificates, *collateral.certificates]
    for cert in candidates:
        if not readable(cert):
            raise VerificationError("chain", f"supplied certificate sha256 {fingerprint(cert)[:16]}… is malformed")
    key_cert, extensions = _endorsement(parsed, candidates)
    anchor, chain = CHAINS.verify(key_cert, candidates, store, "amd", at)
    product = _product(chain[-1], extensions, parsed)
    _check_signature(parsed, key_cert)
    reported = TcbVersion(product, parsed.reported_tcb)
    _check_tcb(reported, extensions, key_cert, parsed.signing_key)
    check_revocation(chain, collateral.crls, at)
    return SnpClaims(
        anchor=anchor.name,
        version=parsed.version,
        product=product,
        signing_key=parsed.signing_key,
        measurement=parsed.measurement,
        report_data=parsed.report_data,
        host_data=parsed.host_data,
        chip_id=parsed.chip_id,
        policy=parsed.policy,
        vmpl=parsed.vmpl,
        guest_svn=parsed.guest_svn,
        family_id=parsed.family_id,
        image_id=parsed.image_id,
        id_key_digest=parsed.id_key_digest,
        author_key_digest=parsed.author_key_digest,
        platform_info=parsed.platform_info,
        reported_tcb=reported.claim(),
        current_tcb=parsed.current_tcb,
        committed_tcb=parsed.committed_tcb,
        launch_tcb=parsed.launch_tcb,
    )


def _p384_leaves(candidates: Sequence[x509.Certificate]) -> list[x509.Certificate]:
    """Certificates with an EC P-384 key: VCEKs and VLEKs (AMD's CAs hold RSA keys)."""
    leaves = []
    for cert in candidates:
        try:
            key = cert.public_key()
        except (ValueError, UnsupportedAlgorithm):
            continue
        if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP384R1):
            leaves.append(cert)
    return leaves


def _common_name(name: x509.Name) -> str:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else ""


def _endorsement(
    report: SnpReport, candidates: Sequence[x509.Certificate]
) -> tuple[x509.Certificate, AmdExtensions]:
    leaves = _p384_leaves(candidates)
    if report.signing_key == "vlek":
        vleks = [c for c in leaves if _common_name(c.issuer).startswith(VLEK_ISSUER_PREFIX)]
        if not vleks:
            raise VerificationError(
                "chain",
                "the report is signed with a VLEK but no P-384 certificate issued by an ASVK "
                f"({VLEK_ISSUER_PREFIX}<product>) was supplied: give the VLEK with --with",
            )
        # A VLEK is not tied to a chip; among several, the one whose key verifies the report is the signer.
        chosen = next((c for c in vleks if _signature_valid(report, c)), vleks[0])
        return chosen, AmdExtensions.read(chosen)
    vceks = [(c, ext) for c in leaves if (ext := AmdExtensions.read(c)).hwid is not None]
    for cert, ext in vceks:
        if ext.hwid == report.chip_id:
            return cert, ext
    if not vceks:
        raise VerificationError(
            "chain",
            f"the report is signed with a VCEK but no VCEK (P-384 certificate with hwID) was supplied: fetch it "
            f"from https://kdsintf.amd.com/vcek/v1/<product>/{report.chip_id.hex()} and give it with --with",
        )
    masked = " (the chip id is masked: all zero)" if not any(report.chip_id) else ""
    others = ", ".join(f"{describe(c)} hwID {ext.hwid.hex() if ext.hwid else ''}" for c, ext in vceks)
    raise VerificationError(
        "binding",
        f"report chip_id {report.chip_id.hex()}{masked} matches no supplied VCEK: {others}; give the VCEK of this chip",
    )


def _product(ark: x509.Certificate, extensions: AmdExtensions, report: SnpReport) -> str:
    """The product named by the ARK, which the VCEK/VLEK and the report's CPUID must not contradict."""
    name = _common_name(ark.subject)
    product = name[len(ARK_PREFIX) :].lower() if name.startswith(ARK_PREFIX) else ""
    if product not in PRODUCTS:
        raise VerificationError(
            "root",
            f"chain ends at {describe(ark)}, which names no known AMD product (expected ARK-Milan/Genoa/Turin)",
        )
    if extensions.product is not None and extensions.product != product:
        raise VerificationError(
            "binding",
            f"endorsement key productName is {extensions.product_name!r} but its chain ends at {name}",
        )
    if report.cpuid is not None and report.cpuid[0] != CPUID_FAMILY[product]:
        raise VerificationError(
            "binding",
            f"report CPUID family is 0x{report.cpuid[0]:02x} but a {product} processor has family "
            f"0x{CPUID_FAMILY[product]:02x} (chain ends at {name})",
        )
    return product


def _signature_valid(report: SnpReport, cert: x509.Certificate) -> bool:
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return False
    try:
        key.verify(
            encode_dss_signature(report.signature_r, report.signature_s),
            report.signed,
            ec.ECDSA(hashes.SHA384()),
        )
    except InvalidSignature:
        return False
    return True


def _check_signature(report: SnpReport, cert: x509.Certificate) -> None:
    if not _signature_valid(report, cert):
        raise VerificationError(
            "signature",
            f"ECDSA P-384/SHA-384 signature over report bytes 0x000..0x29F does not verify with the "
            f"{report.signing_key.upper()} {describe(cert)}",
        )


def _check_tcb(
    reported: TcbVersion, extensions: AmdExtensions, cert: x509.Certificate, signing_key: str
) -> None:
    """The key is derived from the TCB it was issued for; a report claiming another TCB is not its own."""
    names = reported.components.keys()
    missing = sorted(set(names) - set(extensions.spl))
    if missing:
        raise VerificationError(
            "chain",
            f"{describe(cert)} lacks the {reported.product} TCB extensions {missing} a {signing_key.upper()} carries",
        )
    endorsed = TcbVersion.encode(reported.product, {name: extensions.spl[name] for name in names})
    if endorsed.raw != reported.raw:
        raise VerificationError(
            "binding",
            f"report reported_tcb is {reported.claim()} but the {signing_key.upper()} was issued for "
            f"{endorsed.claim()}: give the {signing_key.upper()} for this TCB",
        )
