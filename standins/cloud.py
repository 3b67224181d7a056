"""What the demo and the end-to-end tests need from each cloud's stand-ins, and the cases they run.

A `CloudStandIns` is started for one recording (one stack's review) and gives, per party key, the
party's `Wrapper` (the party's own credentials, no attestation) and a `Releaser` for a workload in the
simulated TEE presenting one of `CASES`. Only `approved` may be granted; every other case must be
refused by the policy the stack generated, with the service's reason in the `KeyReleaseError`.
"""

from __future__ import annotations

from typing import Final, Protocol

from enclave_runtime.keyrelease import Releaser, Wrapper
from standins.stack import PartyKey

CASES: Final[tuple[str, ...]] = ("approved", "debug", "unapproved-image", "other-collaboration", "unattested")
EXPECTED: Final[dict[str, str]] = {case: "denied" for case in CASES} | {"approved": "granted"}


class CloudStandIns(Protocol):
    cloud: str

    def wrapper(self, key: PartyKey) -> Wrapper: ...

    def releaser(self, key: PartyKey, case: str) -> Releaser: ...

    def stop(self) -> None: ...
