"""The client's check of the aggregator: nothing leaves a party until the aggregator proves what it runs.

The aggregator presents an `AggregatorIdentity` on the channel: its attestation evidence and the public
key of the channel it terminates (the TLS key of the SuperLink in a deployment). `AttestationGate.admit`
verifies the evidence (`enclave_runtime.attest.verify`: signatures, chain to a pinned or explicitly given
simulation root, validity now) and then validates it against the collaboration's approved measurements
(`enclave_runtime.policy.validate`) with the binding: SHA-256 of the channel key in the evidence's report
data (Nitro `user_data`). The binding is what stops a relay: a genuine aggregator's evidence replayed by another endpoint names the
genuine endpoint's key, not the key of the channel the client is actually talking to.

Fail closed: any exception from the verifier, any failed policy check, a missing field, is a refusal.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from enclave_runtime.attest import Collateral, TrustStore, VerificationError, verify
from enclave_runtime.client import BOUND_FIELD
from enclave_runtime.policy import Binding, Policy, validate
from enclave_runtime.serve.tls import report_data


class AggregatorRefused(Exception):
    """The aggregator's attestation did not verify or is not the approved workload; nothing was sent."""


@dataclass(frozen=True)
class AggregatorIdentity:
    """What the aggregator's end of the channel presents: evidence of `kind` and the channel's public key,
    with the endorsements the TEE handed out with the evidence (e.g. an SNP VCEK), if any."""

    kind: str
    evidence: bytes
    channel_key: bytes
    collateral: Collateral = field(default_factory=Collateral, compare=False)


@dataclass(frozen=True)
class Admission:
    """A verified aggregator: the claims a party's audit log records."""

    kind: str
    channel_key_sha256: str
    claims: dict[str, object]


@dataclass
class AttestationGate:
    """One party's decision about the aggregator, made once per presented identity and cached.

    `at` fixes the verification time (tests); by default it is the time of each check.
    """

    store: TrustStore
    policy: Policy
    at: Callable[[], dt.datetime] | None = None
    decisions: list[tuple[str, bool, str]] = field(default_factory=list)  # (kind, admitted, reason): for audit
    _admitted: dict[tuple[str, bytes, bytes], Admission] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def admit(self, identity: AggregatorIdentity | None) -> Admission:
        """Return the admission, or raise `AggregatorRefused` saying which check failed."""
        if identity is None:
            self._refuse("none", "the aggregator presented no attestation evidence: refusing to send anything")
        assert identity is not None
        key = (identity.kind, identity.evidence, identity.channel_key)
        with self._lock:
            cached = self._admitted.get(key)
        if cached is not None:
            return cached
        if not identity.channel_key:
            self._refuse(identity.kind, "the channel has no public key to bind the evidence to")
        when = self.at() if self.at else dt.datetime.now(dt.timezone.utc)
        try:
            claims = verify(identity.kind, identity.evidence, collateral=identity.collateral, store=self.store, at=when)
        except VerificationError as exc:
            self._refuse(identity.kind, f"evidence did not verify ({exc.check}): {exc}")
        except Exception as exc:  # noqa: BLE001 -- any verifier failure is a refusal, never a pass
            self._refuse(identity.kind, f"evidence could not be verified: {type(exc).__name__}: {exc}")
        bound = self.policy.model_copy(update={"binding": _binding(identity)})
        decision = validate(identity.kind, claims, bound)
        if not decision.allowed:
            reasons = "; ".join(f"{f.check}: {f.message}" for f in decision.failed)
            self._refuse(identity.kind, f"aggregator is not the approved workload: {reasons}")
        admission = Admission(identity.kind, hashlib.sha256(identity.channel_key).hexdigest(), claims.as_dict())
        with self._lock:
            self._admitted[key] = admission
            self.decisions.append((identity.kind, True, "verified and approved"))
        return admission

    def _refuse(self, kind: str, reason: str) -> None:
        with self._lock:
            self.decisions.append((kind, False, reason))
        raise AggregatorRefused(reason)


def _binding(identity: AggregatorIdentity) -> Binding:
    """SHA-256 of the channel key, where each kind carries the report data a `Collector` was asked for
    (`enclave_runtime.client.BOUND_FIELD`: Nitro's `user_data`, the 64-byte report data of SNP/TDX/SGX,
    zero-padded), else a vTPM quote's or a token's nonce. The same report data as the query service's
    binding with an empty nonce (`serve.tls.report_data(spki, b"")`), so the aggregator obtains it from
    any TEE through `Collector.collect` (`enclave_runtime.ml.launcher`)."""
    digest = report_data(identity.channel_key, b"").hex()
    name, _size = BOUND_FIELD.get(identity.kind, ("nonce", None))
    return Binding(**{name: digest})
