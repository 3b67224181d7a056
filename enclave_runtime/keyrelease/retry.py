"""Bounded retries with exponential backoff and full jitter, shared by the three clients.

Only errors the client marks `retryable` (throttling, 5xx, timeouts, dropped connections) are retried;
a policy refusal is final at once. After the last attempt the error names the service, the attempts and
the last reason, so an operator can tell "denied" from "unreachable".
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Callable, TypeVar

from .base import KeyReleaseError

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    attempts: int = 5
    base: float = 0.05
    cap: float = 2.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    jitter: Callable[[], float] = field(default=random.random, repr=False)

    def delay(self, attempt: int) -> float:
        """Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"): uniform in [0, min(cap, base·2^n)]."""
        return self.jitter() * min(self.cap, self.base * (2**attempt))


def call(operation: Callable[[], T], backoff: Backoff = Backoff()) -> T:
    """Run `operation`; retry a retryable `KeyReleaseError` up to `backoff.attempts` times in all."""
    for attempt in range(backoff.attempts):
        try:
            return operation()
        except KeyReleaseError as error:
            if not error.retryable:
                raise
            if attempt + 1 == backoff.attempts:
                raise KeyReleaseError(
                    error.service,
                    f"gave up after {backoff.attempts} attempts; last: {error.reason}",
                    retryable=False,
                    status=error.status,
                ) from error
            backoff.sleep(backoff.delay(attempt))
    raise AssertionError("unreachable: attempts must be >= 1")
