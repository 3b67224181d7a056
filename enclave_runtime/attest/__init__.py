"""Verify attestation evidence: signatures, certificate chains to pinned vendor roots, validity at a time.

`verify(kind, evidence, ...)` returns typed claims or raises `VerificationError(check, message)`.
It applies no policy: `enclave_runtime.policy.validate` decides whether verified claims are the
approved workload (the verify/validate split of google/go-sev-guest).

Kinds are imported on first use, so a host that verifies one kind loads only that kind's code.
"""

from __future__ import annotations

import datetime as dt
import importlib
from typing import Protocol

from .claims import Claims
from .collateral import Collateral, decode_evidence
from .errors import CHECKS, VerificationError
from .trust import TrustStore

# kind -> module defining `verify(evidence, collateral, store, at) -> Claims`
KINDS: dict[str, str] = {
    "aws-nitro": "enclave_runtime.attest.nitro",
    "amd-sev-snp": "enclave_runtime.attest.snp.verify",
    "azure-vtpm": "enclave_runtime.attest.azure_vtpm",
    "intel-tdx": "enclave_runtime.attest.dcap.tdx",
    "intel-sgx": "enclave_runtime.attest.dcap.sgx",
    "maa-token": "enclave_runtime.attest.tokens",
    "cs-token": "enclave_runtime.attest.tokens",
}


class KindVerifier(Protocol):
    def __call__(
        self, evidence: bytes, collateral: Collateral, store: TrustStore, at: dt.datetime, *, kind: str
    ) -> Claims: ...


def verify(
    kind: str,
    evidence: bytes,
    *,
    collateral: Collateral | None = None,
    store: TrustStore | None = None,
    at: dt.datetime | None = None,
) -> Claims:
    """Verify `evidence` of `kind` as of `at` (default: now, UTC).

    `evidence` may be binary, hex, base64 or JSON; `collateral` holds what came with it (`--with`);
    `store` supplies trust-directory certificates and an explicit simulation root.
    """
    module = KINDS.get(kind)
    if module is None:
        raise VerificationError("input", f"unknown evidence kind {kind!r}: use one of {sorted(KINDS)}")
    when = at or dt.datetime.now(dt.timezone.utc)
    if when.tzinfo is None:
        raise VerificationError("input", f"verification time {when.isoformat()} has no time zone: give UTC")
    verifier: KindVerifier = importlib.import_module(module).verify
    return verifier(
        decode_evidence(evidence), collateral or Collateral(), store or TrustStore(), when.astimezone(dt.timezone.utc), kind=kind
    )


__all__ = ["CHECKS", "KINDS", "Claims", "Collateral", "TrustStore", "VerificationError", "verify"]
