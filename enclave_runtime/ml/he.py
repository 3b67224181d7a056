"""HE inference: a recipient scores its own rows on the trained model without showing them to the enclave.

TenSEAL CKKS. The recipient (`HEClient`) makes the context and keeps the secret key; it sends the enclave
only the public context (no secret key, no Galois or relinearisation keys: none are needed) and its
features encrypted *column by column* (one ciphertext per feature holding that feature for up to
`poly_modulus_degree / 2` rows). The enclave (`HEScorer`) computes the linear model's logit for every row
as sum_j w_j * column_j + b: plaintext-scalar multiplications and additions only, multiplicative depth 1,
no rotations. The recipient decrypts the logits and applies the sigmoid itself.

Guarantees: the enclave never holds a key that decrypts the rows or the scores (`HEScorer` refuses a
context that carries a secret key). CKKS is approximate: results match the plaintext logits to about
1e-6 at these parameters (tests require < 1e-3). Not hidden: the number of rows and features, and the
model weights, which the enclave uses in plaintext (the recipient is a declared output recipient of the
model anyway); encrypted weights would need relinearisation keys and more depth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .data import Array

POLY_MODULUS_DEGREE = 8192
COEFF_MOD_BIT_SIZES = (60, 40, 40, 60)
SCALE_BITS = 40


class HEError(Exception):
    """A ciphertext or context the scorer must not use (e.g. one that carries a secret key)."""


@dataclass(frozen=True)
class EncryptedBatch:
    """What the recipient sends: the public context and one serialized CKKS vector per feature."""

    context: bytes
    columns: tuple[bytes, ...]
    rows: int


class HEClient:
    """The recipient's side: owns the secret key; encrypts features, decrypts scores."""

    def __init__(self) -> None:
        import tenseal as ts

        self._ts = ts
        self._context = ts.context(
            ts.SCHEME_TYPE.CKKS, poly_modulus_degree=POLY_MODULUS_DEGREE, coeff_mod_bit_sizes=list(COEFF_MOD_BIT_SIZES)
        )
        self._context.global_scale = 2**SCALE_BITS

    @property
    def slots(self) -> int:
        return POLY_MODULUS_DEGREE // 2

    def public_context(self) -> bytes:
        return bytes(self._context.serialize(
            save_public_key=True, save_secret_key=False, save_galois_keys=False, save_relin_keys=False
        ))

    def encrypt(self, x: Array) -> EncryptedBatch:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or not 0 < x.shape[0] <= self.slots:
            raise HEError(f"encrypt takes a (rows, features) array with 1..{self.slots} rows, got shape {x.shape}")
        columns = tuple(bytes(self._ts.ckks_vector(self._context, x[:, j].tolist()).serialize()) for j in range(x.shape[1]))
        return EncryptedBatch(self.public_context(), columns, int(x.shape[0]))

    def decrypt(self, scores: bytes, rows: int) -> Array:
        vector = self._ts.ckks_vector_from(self._context, scores)
        return np.asarray(vector.decrypt()[:rows], dtype=np.float64)


class HEScorer:
    """The enclave's side: the trained linear model in plaintext, scoring ciphertexts it cannot read."""

    def __init__(self, weights: Sequence[float] | Array, bias: float) -> None:
        self.weights = [float(w) for w in np.asarray(weights, dtype=np.float64).ravel()]
        self.bias = float(bias)
        if not all(np.isfinite(self.weights)) or not np.isfinite(self.bias):
            raise HEError("model weights and bias must be finite")

    def score(self, batch: EncryptedBatch) -> bytes:
        import tenseal as ts

        if len(batch.columns) != len(self.weights):
            raise HEError(
                f"the batch has {len(batch.columns)} encrypted features, the model takes {len(self.weights)}"
            )
        context = ts.context_from(batch.context)
        if context.is_private():
            raise HEError("the recipient sent a context with its secret key: refusing to hold it; send public_context()")
        total = None
        for column, weight in zip(batch.columns, self.weights, strict=True):
            if weight == 0.0:  # SEAL refuses a product that is transparent (all zero); it adds nothing anyway
                continue
            term = ts.ckks_vector_from(context, column) * weight
            total = term if total is None else total + term
        if total is None:
            raise HEError("every model weight is zero: the score is the bias alone, nothing to compute on ciphertext")
        return bytes((total + self.bias).serialize())
