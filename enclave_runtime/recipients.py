"""Outputs leave the workload sealed to a declared recipient's own public key, and to no one else.

A recipient is a party named in `ccp:collaboration.outputs[].recipients`; it holds an RSA key pair
outside the TEE. The workload wraps each output's data key with RSA-OAEP-256 to the recipient's public
key (the same `WrappedKey` the sealed-file header carries), so only that recipient can open it and no
cloud key service is involved after release.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .keyrelease.base import RECIPIENT, KeyReleaseError, WrappedKey

ALGORITHM = "RSA-OAEP-256"
_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def key_id(name: str, public_key: rsa.RSAPublicKey) -> str:
    """`recipient:<name>:<sha256 of the SPKI>`, so a header names exactly which key can open it."""
    digest = hashes.Hash(hashes.SHA256())
    digest.update(public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))
    return f"{RECIPIENT}:{name}:{digest.finalize().hex()}"


@dataclass(frozen=True)
class RecipientWrapper:
    """Wraps an output's data key to one recipient's public key."""

    name: str
    public_key: rsa.RSAPublicKey
    cloud: str = RECIPIENT

    def wrap(self, data_key: bytes) -> WrappedKey:
        return WrappedKey(RECIPIENT, key_id(self.name, self.public_key), ALGORITHM, self.public_key.encrypt(data_key, _OAEP))


@dataclass(frozen=True)
class RecipientOpener:
    """The recipient's side: unwraps only what was wrapped to its own key."""

    name: str
    private_key: rsa.RSAPrivateKey
    cloud: str = RECIPIENT

    def unwrap(self, wrapped: WrappedKey) -> bytes:
        mine = key_id(self.name, self.private_key.public_key())
        if wrapped.cloud != RECIPIENT or wrapped.key_id != mine or wrapped.algorithm != ALGORITHM:
            raise KeyReleaseError(
                "recipient", f"sealed for {wrapped.key_id!r} ({wrapped.algorithm}), not for this recipient's key {mine!r}"
            )
        return self.private_key.decrypt(wrapped.blob, _OAEP)
