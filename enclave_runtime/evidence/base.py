"""What every collector returns, and the one error collection raises.

Collection runs inside the TEE and hands its output to `enclave_runtime.attest.verify` on the other
side, so `Evidence` carries exactly what `verify` takes: the kind, the evidence bytes, and the
endorsements the platform handed out with it (named DER blobs, e.g. the VCEK, ASK and ARK from an
SNP certificate table), so a verifier needs no network fetch for what the host already supplied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, get_args

Kind = Literal["aws-nitro", "amd-sev-snp", "intel-tdx", "azure-vtpm", "cs-token"]
KINDS: tuple[str, ...] = get_args(Kind)


class EvidenceError(Exception):
    """Evidence could not be collected. The message names the path, field or value and the fix.

    Collection never degrades (no empty report, no unbound token): a caller that gets evidence can
    rely on it holding the report data it asked for.
    """


@dataclass(frozen=True)
class Evidence:
    """One piece of evidence, as `enclave_runtime.attest.verify(kind, evidence, ...)` takes it."""

    kind: Kind
    evidence: bytes
    # (name, DER) pairs: e.g. ("vcek", ...), ("ask", ...), ("ark", ...). Tuples, not a dict: order
    # is the platform's, and names are informative only (the verifier sorts certificates itself).
    collateral: list[tuple[str, bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # A misspelt kind would only fail at verification, far from its cause: refuse it here.
        if self.kind not in KINDS:
            raise EvidenceError(f"unknown evidence kind {self.kind!r}: use one of {list(KINDS)}")
        if not self.evidence:
            raise EvidenceError(f"{self.kind} evidence is empty: the platform returned no report")


class Collector(Protocol):
    """Produces evidence that binds `report_data` (a hash of what the caller wants attested)."""

    def collect(self, report_data: bytes) -> Evidence: ...


REPORT_DATA_SIZE = 64  # SNP REPORT_DATA and TDX REPORTDATA are both 64 bytes


def fixed_report_data(report_data: bytes) -> bytes:
    """`report_data` zero-padded to the 64 bytes SNP and TDX sign; longer is refused.

    Truncating would sign something other than what the caller asked for, so it is an error; padding
    is what verifiers expect (a 32-byte SHA-256 lands in the first half, the rest is zero).
    """
    if len(report_data) > REPORT_DATA_SIZE:
        raise EvidenceError(
            f"report data is {len(report_data)} bytes; SNP and TDX sign exactly {REPORT_DATA_SIZE}: "
            "pass a hash of what you want bound (SHA-256 or SHA-512), not the data itself"
        )
    return bytes(report_data).ljust(REPORT_DATA_SIZE, b"\0")
