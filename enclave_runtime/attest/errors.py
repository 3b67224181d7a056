"""The one error a verifier raises: which check failed, and why, in words a reviewer can act on.

Verification stops at the first failed cryptographic check (nothing after it can be trusted), so a
verifier raises; validation collects every failed policy check instead (see `enclave_runtime.policy`).
"""

from __future__ import annotations

# The checks a verifier names; the CLI's `error.check` is always one of these.
CHECKS = (
    "input",  # unreadable or wrongly encoded evidence / collateral
    "structure",  # layout, lengths, versions, algorithm ids
    "signature",  # the evidence's own signature
    "chain",  # a certificate link, or a certificate's fitness (CA flag, key type)
    "root",  # the chain does not end at a pinned vendor root (or the explicit simulation root)
    "validity",  # a certificate, CRL, collateral or token not valid at the verification time
    "binding",  # evidence and endorsement disagree (chip id vs VCEK, QE report vs attestation key, ...)
    "revocation",  # a certificate in the chain is on a supplied CRL
    "tcb",  # TCB collateral marks the platform's level as revoked or unknown
    "claims",  # a token's issuer, audience or required claims
)


class VerificationError(Exception):
    """Evidence was not verified. `check` is one of `CHECKS`; `message` names the value and the fix."""

    def __init__(self, check: str, message: str) -> None:
        if check not in CHECKS:
            raise ValueError(f"unknown verification check {check!r}")
        super().__init__(f"{check}: {message}")
        self.check = check
        self.message = message
