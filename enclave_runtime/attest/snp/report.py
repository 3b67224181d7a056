"""The SEV-SNP ATTESTATION_REPORT (Firmware ABI specification 56860): 1184 bytes, little-endian.

Versions 2, 3 and 5 share one layout: version 3 fills the CPUID family/model/stepping bytes that
version 2 left reserved, and version 5 the launch/current mitigation vectors; nothing moves. The
layout is read here and nowhere else, so every other module works with named, typed fields.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..binary import Reader
from ..errors import VerificationError

REPORT_SIZE = 1184
SIGNED_SIZE = 0x2A0  # the signature covers bytes 0x000..0x29F
SUPPORTED_VERSIONS = (2, 3, 5)
ECDSA_P384_SHA384 = 1
SIGNATURE_COMPONENT_SIZE = 72  # r and s are 72-byte little-endian fields holding 48-byte values
P384_SIZE = 48
POLICY_DEBUG = 1 << 19
SIGNING_KEYS = {0: "vcek", 1: "vlek"}  # flags bits 2..4; 7 (no key) means the report is unsigned


@dataclass(frozen=True)
class SnpReport:
    version: int
    guest_svn: int
    policy: int
    family_id: bytes
    image_id: bytes
    vmpl: int
    signature_algo: int
    current_tcb: int
    platform_info: int
    author_key_en: bool
    mask_chip_key: bool
    signing_key: str
    report_data: bytes
    measurement: bytes
    host_data: bytes
    id_key_digest: bytes
    author_key_digest: bytes
    report_id: bytes
    report_id_ma: bytes
    reported_tcb: int
    cpuid: tuple[int, int, int] | None  # family, model, stepping (version 3 and later)
    chip_id: bytes
    committed_tcb: int
    current_version: tuple[int, int, int]  # firmware major, minor, build
    committed_version: tuple[int, int, int]
    launch_tcb: int
    launch_mit_vector: int | None  # version 5 and later
    current_mit_vector: int | None
    signature_r: int
    signature_s: int
    signed: bytes

    @property
    def debug(self) -> bool:
        """Policy bit 19: the guest allows the hypervisor to debug it, i.e. read its memory."""
        return bool(self.policy & POLICY_DEBUG)

    @classmethod
    def parse(cls, data: bytes) -> "SnpReport":
        if len(data) != REPORT_SIZE:
            raise VerificationError(
                "structure",
                f"SNP report is {len(data)} bytes; an ATTESTATION_REPORT is exactly {REPORT_SIZE}",
            )
        r = Reader(data, "SNP report")
        version = r.u32le("version")
        if version not in SUPPORTED_VERSIONS:
            raise VerificationError(
                "structure",
                f"SNP report version is {version}; this verifier reads versions {SUPPORTED_VERSIONS}",
            )
        guest_svn = r.u32le("guest_svn")
        policy = r.u64le("policy")
        family_id = r.take(16, "family_id")
        image_id = r.take(16, "image_id")
        vmpl = r.u32le("vmpl")
        signature_algo = r.u32le("signature_algo")
        if signature_algo != ECDSA_P384_SHA384:
            raise VerificationError(
                "structure",
                f"SNP report signature_algo is {signature_algo}; only {ECDSA_P384_SHA384} (ECDSA P-384 with SHA-384) is defined",
            )
        current_tcb = r.u64le("current_tcb")
        platform_info = r.u64le("platform_info")
        flags = r.u32le("flags")
        selector = (flags >> 2) & 0b111
        if selector not in SIGNING_KEYS:
            raise VerificationError(
                "structure",
                f"SNP report signing key selector (flags bits 2..4) is {selector}; expected 0 (VCEK) or 1 (VLEK)",
            )
        r.take(4, "reserved 0x4C")
        report_data = r.take(64, "report_data")
        measurement = r.take(48, "measurement")
        host_data = r.take(32, "host_data")
        id_key_digest = r.take(48, "id_key_digest")
        author_key_digest = r.take(48, "author_key_digest")
        report_id = r.take(32, "report_id")
        report_id_ma = r.take(32, "report_id_ma")
        reported_tcb = r.u64le("reported_tcb")
        cpuid_bytes = r.take(3, "cpuid_fam_id/cpuid_mod_id/cpuid_step")
        r.take(0x1A0 - 0x18B, "reserved 0x18B")
        chip_id = r.take(64, "chip_id")
        committed_tcb = r.u64le("committed_tcb")
        current_version = cls._firmware_version(r, "current")
        committed_version = cls._firmware_version(r, "committed")
        launch_tcb = r.u64le("launch_tcb")
        launch_mit_vector = r.u64le("launch_mit_vector")
        current_mit_vector = r.u64le("current_mit_vector")
        r.take(SIGNED_SIZE - r.offset, "reserved 0x208")
        signature_r = cls._signature_component(r, "signature r")
        signature_s = cls._signature_component(r, "signature s")
        if any(r.rest()):
            raise VerificationError(
                "structure",
                "SNP report bytes after the signature's r and s (0x330..0x49F) are not zero; they must be",
            )
        return cls(
            version=version,
            guest_svn=guest_svn,
            policy=policy,
            family_id=family_id,
            image_id=image_id,
            vmpl=vmpl,
            signature_algo=signature_algo,
            current_tcb=current_tcb,
            platform_info=platform_info,
            author_key_en=bool(flags & 1),
            mask_chip_key=bool(flags & 2),
            signing_key=SIGNING_KEYS[selector],
            report_data=report_data,
            measurement=measurement,
            host_data=host_data,
            id_key_digest=id_key_digest,
            author_key_digest=author_key_digest,
            report_id=report_id,
            report_id_ma=report_id_ma,
            reported_tcb=reported_tcb,
            cpuid=(cpuid_bytes[0], cpuid_bytes[1], cpuid_bytes[2]) if version >= 3 else None,
            chip_id=chip_id,
            committed_tcb=committed_tcb,
            current_version=current_version,
            committed_version=committed_version,
            launch_tcb=launch_tcb,
            launch_mit_vector=launch_mit_vector if version >= 5 else None,
            current_mit_vector=current_mit_vector if version >= 5 else None,
            signature_r=signature_r,
            signature_s=signature_s,
            signed=bytes(data[:SIGNED_SIZE]),
        )

    @staticmethod
    def _firmware_version(r: Reader, which: str) -> tuple[int, int, int]:
        build, minor, major = r.u8(f"{which}_build"), r.u8(f"{which}_minor"), r.u8(f"{which}_major")
        r.take(1, f"reserved after {which}_major")
        return major, minor, build

    @staticmethod
    def _signature_component(r: Reader, field: str) -> int:
        """A P-384 value fills 48 of the 72 bytes; anything in the upper 24 is not a signature."""
        raw = r.take(SIGNATURE_COMPONENT_SIZE, field)
        if any(raw[P384_SIZE:]):
            raise VerificationError(
                "structure",
                f"SNP report {field} has non-zero bytes above the 48 a P-384 value uses: {raw[P384_SIZE:].hex()}",
            )
        return int.from_bytes(raw[:P384_SIZE], "little")
