"""Each attested connection asks for evidence on a fresh random nonce (tools/mutations.py: client-nonce-fixed):
a fixed or reused nonce would let recorded evidence be replayed by a relay."""

from __future__ import annotations

import pytest

from typing import Any

from enclave_runtime.client import AttestedClient

from test_serve import _url, approved, sim, verifier  # noqa: F401 - the module's fixtures, reused


class _Recording:
    """Delegates to the real verifier and keeps the nonce of each check."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.nonces = inner, []

    def check(self, certificate_der: bytes, nonce: bytes, body: bytes) -> Any:
        self.nonces.append(nonce)
        return self.inner.check(certificate_der, nonce, body)


def test_every_connection_uses_a_fresh_random_nonce(approved: Any, verifier: Any) -> None:  # noqa: F811
    recording = _Recording(verifier)
    for _ in range(3):
        with AttestedClient(_url(approved), recording) as client:  # type: ignore[arg-type]
            client.connect()
    assert len(recording.nonces) == 3 and len(set(recording.nonces)) == 3, recording.nonces
    assert all(len(n) >= 32 and any(n) for n in recording.nonces)


@pytest.mark.parametrize("kind", ["aws-nitro", "amd-sev-snp"])
def test_a_relay_is_named_even_when_the_bound_digest_ends_in_zero_bytes(kind: str) -> None:
    """Regression: the relay diagnosis compared with the zero padding stripped, so a digest ending in 0x00
    (1 in 256 connections) was misreported as a replay. It must say `tls-binding` whatever the digest."""
    import hashlib
    from types import SimpleNamespace

    from enclave_runtime.client import BOUND_FIELD, AttestationRefused, Verifier
    from enclave_runtime.serve.tls import report_data

    relay_spki, tee_spki = b"relay-spki", b"tee-spki"
    nonce = next(
        n for n in (i.to_bytes(4, "big") for i in range(1 << 16)) if hashlib.sha256(tee_spki + n).digest()[-1] == 0
    )
    name, size = BOUND_FIELD[kind]
    bound = report_data(tee_spki, nonce)
    claims = SimpleNamespace(**{name: bound.ljust(size, b"\0") if size else bound})
    with pytest.raises(AttestationRefused) as refused:
        Verifier._check_binding(kind, claims, relay_spki, tee_spki, nonce)  # type: ignore[arg-type]
    assert refused.value.check == "tls-binding"
