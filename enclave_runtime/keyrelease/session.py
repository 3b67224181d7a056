"""Released data keys, held in memory for one workload session.

The request path must not wait on a key service, so a data key is released once and kept here; it is
never written anywhere (no pickling, no repr of the material) and is dropped with the session.
"""

from __future__ import annotations

import hashlib
import threading

from .base import Releaser, WrappedKey


class KeySession:
    def __init__(self, releasers: dict[str, Releaser]) -> None:
        self._releasers = releasers
        self._keys: dict[bytes, bytes] = {}
        self._lock = threading.Lock()
        self.releases = 0  # key-service round trips made (a test and the bench read it)

    def data_key(self, wrapped: WrappedKey) -> bytes:
        """The plaintext data key, released on first use only."""
        ident = hashlib.sha256(wrapped.canonical()).digest()
        with self._lock:
            cached = self._keys.get(ident)
            if cached is not None:
                return cached
            releaser = self._releasers.get(wrapped.cloud)
            if releaser is None:
                raise LookupError(f"no key-release client for cloud {wrapped.cloud!r} in this session")
            key = releaser.unwrap(wrapped)
            self.releases += 1
            self._keys[ident] = key
            return key

    def close(self) -> None:
        with self._lock:
            self._keys.clear()

    def __repr__(self) -> str:
        return f"KeySession(clouds={sorted(self._releasers)}, cached={len(self._keys)})"

    def __reduce__(self) -> object:
        raise TypeError("a KeySession holds released key material and cannot be pickled")
