"""Where the service's evidence comes from: any `enclave_runtime.evidence.Collector`.

A collector turns report data into signed evidence: on hardware the Nitro NSM, configfs-tsm/SNP ioctl
(`enclave_runtime.evidence.detect`), in dev and CI the simulated Nitro enclave below. The service
never looks inside: it asks for evidence over SHA-256(spki ‖ nonce) and hands the bytes to the client.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from ..evidence.base import Collector, Evidence, EvidenceError
from ..simulate.nitro import PCR_COUNT, PCR_SIZE, SimulatedNitro
from .tls import BINDING_SCHEME, TlsIdentity

__all__ = ["Collector", "Evidence", "EvidenceError", "SimulatedNitroCollector", "document", "pcrs_from_policy"]


def document(collector: Collector, identity: TlsIdentity, nonce: bytes) -> dict[str, Any]:
    """Fresh evidence over SHA-256(spki ‖ nonce), as the JSON every attested endpoint of the runtime serves
    (`enclave_runtime.client.read_attestation` reads it): the query service per connection with the
    client's nonce, the Flower SuperLink's launcher with none (`enclave_runtime.ml.launcher`).
    Raises EvidenceError when the TEE produces none."""
    evidence = collector.collect(identity.report_data(nonce))
    return {
        "kind": evidence.kind,
        "binding": BINDING_SCHEME,
        "nonce": nonce.hex(),
        "spki": base64.b64encode(identity.spki).decode(),
        "evidence": base64.b64encode(evidence.evidence).decode(),
        "collateral": [{"name": n, "der": base64.b64encode(d).decode()} for n, d in evidence.collateral],
    }


class SimulatedNitroCollector:
    """A simulated Nitro enclave answering `collect(report_data)` as `NitroNsm` does on hardware:
    an attestation document whose `user_data` is the report data.

    `pcrs` (index -> 48 bytes) default to the simulator's image PCRs; `debug` zeroes them all, as a
    debug-mode enclave does; `clock` lets a test produce stale documents.
    """

    def __init__(
        self,
        sim: SimulatedNitro | None = None,
        pcrs: Mapping[int, bytes] | None = None,
        *,
        debug: bool = False,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.sim = sim or SimulatedNitro()
        for index, value in (pcrs or {}).items():
            if not 0 <= index < PCR_COUNT or len(value) != PCR_SIZE:
                raise ValueError(f"PCR{index}: expected index 0..{PCR_COUNT - 1} and {PCR_SIZE} bytes, got {len(value)}")
        self.pcrs = dict(pcrs or {})
        self.debug = debug
        self.clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))

    def collect(self, report_data: bytes) -> Evidence:
        document = self.sim.attest(pcrs=self.pcrs, debug=self.debug, user_data=bytes(report_data), at=self.clock())
        return Evidence("aws-nitro", document)


def pcrs_from_policy(nitro: Mapping[str, str | None]) -> dict[int, bytes]:
    """Simulated PCRs equal to a policy's approved Nitro values (`pcr0`..`pcr8` hex), so a dev stack's
    client accepts the simulated enclave; unset registers keep the simulator's defaults."""
    pcrs: dict[int, bytes] = {}
    for name, value in nitro.items():
        if name.startswith("pcr") and name[3:].isdigit() and value:
            pcrs[int(name[3:])] = bytes.fromhex(value)
    return pcrs
