"""The Azure HCL report: what an Azure SEV-SNP confidential VM's paravisor (HCL) puts in vTPM NV 0x01400001.

Layout (little-endian; Azure/azure-cvm-tooling `hcl.rs`, Microsoft "Guest attestation design detail"):
32-byte attestation header ("HCLA", version, report size, request type, status, reserved), the 1184-byte
SNP report, a 20-byte runtime-data header (data size, version, report type, hash type, runtime-data size),
then the runtime-data JSON (the vTPM keys HCLAkPub/HCLEkPub, the VM configuration, user data), then zero
padding to the NV index size.

Only the SNP report is signed, and it binds the runtime-data JSON by its hash in report_data[0:32]. The
headers and the padding are bound by nothing, so every field of them is pinned to the one value a genuine
report carries: a changed unsigned byte is refused as `structure` instead of passing unnoticed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .binary import Reader
from .collateral import json_object
from .errors import VerificationError

HCL_SIGNATURE = b"HCLA"
HCL_VERSION = 2
HEADER_SIZE = 32
SNP_REPORT_SIZE = 1184
RUNTIME_HEADER_SIZE = 20
RUNTIME_DATA_VERSION = 1
REPORT_TYPE_SNP = 2  # IgvmReportType: 2 SNP, 4 TDX (not supported here)

# IgvmHashType -> the hash of the runtime data, which fills the start of the SNP report_data
HASH_TYPES: dict[int, Callable[[bytes], bytes]] = {
    1: lambda data: hashlib.sha256(data).digest(),
    2: lambda data: hashlib.sha384(data).digest(),
    3: lambda data: hashlib.sha512(data).digest(),
}


@dataclass(frozen=True)
class HclReport:
    """A parsed HCL report; `runtime_data` is the exact JSON bytes the SNP report_data binds."""

    snp_report: bytes
    hash_type: int
    runtime_data: bytes

    @classmethod
    def parse(cls, blob: bytes) -> HclReport:
        r = Reader(blob, "HCL report")
        signature = r.take(4, "signature")
        if signature != HCL_SIGNATURE:
            raise VerificationError("structure", f"HCL report signature is {signature!r}, expected {HCL_SIGNATURE!r}")
        _expect(r.u32le("version"), HCL_VERSION, "version")
        report_size = r.u32le("report_size")
        _expect(r.u32le("request_type"), REPORT_TYPE_SNP, "request_type (2 = SEV-SNP)")
        _expect(r.u32le("status"), 0, "status")
        _expect(int.from_bytes(r.take(12, "reserved"), "little"), 0, "reserved")
        snp_report = r.take(SNP_REPORT_SIZE, "SNP report")
        data_size = r.u32le("runtime data_size")
        _expect(r.u32le("runtime version"), RUNTIME_DATA_VERSION, "runtime version")
        _expect(r.u32le("runtime report_type"), REPORT_TYPE_SNP, "runtime report_type (2 = SEV-SNP)")
        hash_type = r.u32le("runtime hash_type")
        if hash_type not in HASH_TYPES:
            raise VerificationError("structure", f"HCL runtime hash_type is {hash_type}, expected one of {sorted(HASH_TYPES)}")
        runtime_size = r.u32le("runtime variable_data_size")
        _expect(data_size, RUNTIME_HEADER_SIZE + runtime_size, "runtime data_size (header + runtime data)")
        runtime_data = r.take(runtime_size, "runtime data")
        _expect(report_size, r.offset, "report_size (header through runtime data)")
        if r.rest().strip(b"\0"):
            raise VerificationError("structure", f"HCL report padding after byte {report_size} is not all zero")
        return cls(snp_report, hash_type, runtime_data)

    def bound_runtime(self, report_data: bytes) -> dict[str, Any]:
        """The runtime-data JSON, once its hash is found in the SNP `report_data` (read nothing unbound)."""
        digest = HASH_TYPES[self.hash_type](self.runtime_data)
        if digest != report_data[: len(digest)]:
            raise VerificationError(
                "binding",
                f"hash (type {self.hash_type}) of the HCL runtime data is {digest.hex()}, but the SNP report_data[0:{len(digest)}] "
                f"is {report_data[: len(digest)].hex()}: the runtime data is not the one the hardware report vouches for",
            )
        return json_object(self.runtime_data, "HCL runtime data", "structure")


def _expect(value: int, expected: int, field: str) -> None:
    if value != expected:
        raise VerificationError("structure", f"HCL report {field} is {value}, expected {expected}")
