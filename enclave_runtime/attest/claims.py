"""Typed claims: what `verify` vouches for, and the one JSON shape the CLI and the key services read.

Each kind defines a frozen dataclass subclass with its own fields; `as_dict` gives the claim names of the
CLI contract (bytes as lowercase hex). Fields marked `internal()` carry verified material a caller may
need (e.g. the vTPM attestation key) but are not claims.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, ClassVar


def internal(**kwargs: Any) -> Any:
    """A dataclass field kept out of `as_dict` (verified material, not a claim)."""
    return dataclasses.field(metadata={"claim": False}, **kwargs)


def _plain(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _plain(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.metadata.get("claim", True)
        }
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclasses.dataclass(frozen=True)
class Claims:
    """Common to every kind: which trust anchor the evidence chains to.

    `anchor` names a pinned vendor root (e.g. `amd-ark-milan`) or `simulation`; `simulated` is what a
    production policy refuses.
    """

    kind: ClassVar[str] = ""
    anchor: str

    @property
    def simulated(self) -> bool:
        return self.anchor == "simulation"

    @property
    def debug(self) -> bool:
        """Whether the TEE runs in a mode whose memory the host can read. Each kind defines it."""
        raise NotImplementedError

    def as_dict(self) -> dict[str, Any]:
        data = _plain(self)
        data["debug"] = self.debug
        data["simulated"] = self.simulated
        return data
