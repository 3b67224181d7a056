"""Attestation-bound key release: one interface (`base`), three clouds' clients (`aws`, `azure`, `gcp`).

Each client module imports its cloud SDK, so importing this package loads none of them.
"""

from .base import CLOUDS, Cloud, KeyReleaseError, Releaser, WrappedKey, Wrapper
from .session import KeySession

__all__ = ["CLOUDS", "Cloud", "KeyReleaseError", "KeySession", "Releaser", "WrappedKey", "Wrapper"]
