"""Collecting attestation evidence inside the TEE, in the form `enclave_runtime.attest.verify` takes."""

from .base import Collector, Evidence, EvidenceError, Kind
from .detect import detect

__all__ = ["Collector", "Evidence", "EvidenceError", "Kind", "detect"]
