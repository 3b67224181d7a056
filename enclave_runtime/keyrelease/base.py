"""One interface over three clouds' attestation-bound key release.

A party *wraps* a fresh data key under its party key with its own credentials (no attestation: wrapping
never returns plaintext); the workload *unwraps* it inside the TEE, and every unwrap carries fresh
evidence the key service checks against the policy the stack generated. The wrapped form is opaque
outside its cloud, so `WrappedKey` travels in a sealed file's header unchanged.

A client never falls back to an unattested call: a refusal is a `KeyReleaseError` naming the service
and the service's reason, after bounded retries for what is worth retrying (throttling, 5xx, timeouts).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol, get_args

Cloud = Literal["aws", "azure", "gcp"]
CLOUDS: Final[tuple[str, ...]] = get_args(Cloud)
# An output sealed to a declared recipient is wrapped to the recipient's own public key, not a cloud key.
RECIPIENT: Final = "recipient"


class KeyReleaseError(Exception):
    """A key service refused or could not be reached; `reason` is the service's own words where it gave any."""

    def __init__(self, service: str, reason: str, *, retryable: bool = False, status: int | None = None) -> None:
        super().__init__(f"{service}: {reason}")
        self.service = service
        self.reason = reason
        self.retryable = retryable
        self.status = status


@dataclass(frozen=True)
class WrappedKey:
    """A data key wrapped under a party key (`cloud`: whose key service unwraps it) or to an output
    recipient's public key (`cloud` = `recipient`): which key, which algorithm, and the blob."""

    cloud: Cloud | Literal["recipient"]
    key_id: str
    algorithm: str
    blob: bytes

    def __post_init__(self) -> None:
        if self.cloud not in (*CLOUDS, RECIPIENT):
            raise ValueError(f"wrapped key cloud {self.cloud!r} is not one of {[*CLOUDS, RECIPIENT]}")
        if not self.key_id or not self.blob:
            raise ValueError("a wrapped key needs a key id and a non-empty blob")

    def to_json(self) -> dict[str, Any]:
        return {
            "cloud": self.cloud,
            "keyId": self.key_id,
            "algorithm": self.algorithm,
            "blob": base64.b64encode(self.blob).decode(),
        }

    @classmethod
    def from_json(cls, data: Any) -> "WrappedKey":
        if not isinstance(data, dict):
            raise ValueError(f"wrapped key must be a JSON object, got {type(data).__name__}")
        missing = sorted({"cloud", "keyId", "algorithm", "blob"} - set(data))
        if missing:
            raise ValueError(f"wrapped key is missing {missing}")
        return cls(data["cloud"], data["keyId"], data["algorithm"], base64.b64decode(data["blob"], validate=True))

    def canonical(self) -> bytes:
        """Stable bytes of this wrapped key (what a sealed header authenticates and the cache keys on)."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":")).encode()


class Wrapper(Protocol):
    """Party side: wraps a data key under the party key with the party's own credentials."""

    cloud: Cloud

    def wrap(self, data_key: bytes) -> WrappedKey: ...


class Releaser(Protocol):
    """Workload side: unwraps a data key inside the TEE, presenting fresh evidence on every call."""

    cloud: Cloud

    def unwrap(self, wrapped: WrappedKey) -> bytes: ...
