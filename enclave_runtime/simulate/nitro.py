"""A simulated Nitro Secure Module: attestation documents in AWS's exact layout, signed under a local root.

The shape follows AWS: an ECDSA P-384 self-signed root, a chain of P-384 intermediates, and a short-lived
P-384 leaf per document that signs an untagged COSE_Sign1 (ES384) whose payload lists the map keys in
the NSM's order, with null for the optional fields not requested.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping
from typing import Any

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from pycose.algorithms import Es384
from pycose.headers import Algorithm
from pycose.keys import EC2Key
from pycose.keys.curves import P384
from pycose.messages import Sign1Message

from .ca import Issued, ec_key, issue

# AWS's Root-G1 is valid 2019-10-28 .. 2049-10-28; the simulated authorities cover the same years so a
# document can be simulated at any time a real one could exist.
AUTHORITY_VALIDITY = (
    dt.datetime(2019, 10, 28, tzinfo=dt.timezone.utc),
    dt.datetime(2049, 10, 28, tzinfo=dt.timezone.utc),
)
# A real leaf is issued seconds before the document and lives three hours.
LEAF_BEFORE = dt.timedelta(minutes=1)
LEAF_AFTER = dt.timedelta(hours=3)
PCR_COUNT = 16  # the NSM reports PCR0..PCR15
PCR_SIZE = 48  # SHA-384
IMAGE_PCRS = (0, 1, 2)  # image, kernel+bootstrap, application: non-zero in a production enclave
MODULE_ID = "i-0000000000000000-enc0000000000000000"
P384_SIZE = 48  # bytes of a P-384 coordinate or scalar
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def sign(payload: Mapping[str, Any], key: ec.EllipticCurvePrivateKey) -> bytes:
    """Encode and sign `payload` as the NSM does: untagged COSE_Sign1, protected {1: -35}, unprotected {}."""
    numbers = key.private_numbers()
    public = numbers.public_numbers
    message = Sign1Message(phdr={Algorithm: Es384}, payload=cbor2.dumps(payload))
    message.key = EC2Key(
        crv=P384,
        x=public.x.to_bytes(P384_SIZE, "big"),
        y=public.y.to_bytes(P384_SIZE, "big"),
        d=numbers.private_value.to_bytes(P384_SIZE, "big"),
    )
    encoded: bytes = message.encode(tag=False)
    return encoded


class SimulatedNitro:
    """One simulated Nitro PKI: root, regional/zonal/instance intermediates, and a fresh leaf per document.

    A verifier trusts its documents only with `TrustStore(simulation_roots=[sim.root])`.
    """

    def __init__(self) -> None:
        not_before, not_after = AUTHORITY_VALIDITY
        root = issue(
            "sim.nitro-enclaves",
            ec_key(ec.SECP384R1()),
            None,
            ca=True,
            not_before=not_before,
            not_after=not_after,
        )
        self.authorities: list[Issued] = [root]
        for subject in (
            "region.sim.nitro-enclaves",
            "zone.region.sim.nitro-enclaves",
            "instance.zone.region.sim",
        ):
            self.authorities.append(
                issue(
                    subject,
                    ec_key(ec.SECP384R1()),
                    self.authorities[-1],
                    ca=True,
                    not_before=not_before,
                    not_after=not_after,
                )
            )

    @property
    def root(self) -> x509.Certificate:
        return self.authorities[0].certificate

    def leaf(self, at: dt.datetime) -> Issued:
        """The signing certificate of a document made at `at`."""
        return issue(
            f"{MODULE_ID}.sim",
            ec_key(ec.SECP384R1()),
            self.authorities[-1],
            ca=False,
            not_before=at - LEAF_BEFORE,
            not_after=at + LEAF_AFTER,
        )

    def attest(
        self,
        *,
        pcrs: Mapping[int, bytes] | None = None,
        debug: bool = False,
        user_data: bytes | None = None,
        nonce: bytes | None = None,
        public_key: bytes | None = None,
        at: dt.datetime,
    ) -> bytes:
        """A signed attestation document made at `at` (timezone-aware).

        `pcrs` overrides the defaults (PCR0..2 fixed non-zero values, the rest zero); `debug` zeroes every
        PCR, as the NSM does for an enclave started in debug mode.
        """
        leaf = self.leaf(at)
        measured = {} if debug else image_pcrs() | dict(pcrs or {})
        payload = {
            "module_id": MODULE_ID,
            "digest": "SHA384",
            "timestamp": (at - EPOCH) // dt.timedelta(milliseconds=1),
            "pcrs": {index: bytes(PCR_SIZE) for index in range(PCR_COUNT)} | measured,
            "certificate": leaf.der(),
            "cabundle": [authority.der() for authority in self.authorities],
            "public_key": public_key,
            "user_data": user_data,
            "nonce": nonce,
        }
        return sign(payload, leaf.key)  # type: ignore[arg-type]  # leaf keys are EC


def image_pcrs() -> dict[int, bytes]:
    return {index: hashlib.sha384(f"ccp simulated PCR{index}".encode()).digest() for index in IMAGE_PCRS}


class SimulatedNitroEnclave:
    """One simulated enclave: fixed PCRs (or debug mode) under a `SimulatedNitro` PKI, answering the
    key-release clients' `attest(public_key)` with a fresh document binding that key, as the NSM does
    for the Nitro Enclaves SDK (aws/aws-nitro-enclaves-sdk-c `source/attestation.c`).

    `pcrs` maps PCR index to its 48-byte value (hex strings are accepted); `clock` gives the document
    time (default: now, UTC) so a test can make a stale document.
    """

    def __init__(
        self,
        sim: SimulatedNitro,
        pcrs: Mapping[int, bytes | str] | None = None,
        *,
        debug: bool = False,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.sim = sim
        self.debug = debug
        self.pcrs: dict[int, bytes] = {}
        for index, value in (pcrs or {}).items():
            raw = bytes.fromhex(value) if isinstance(value, str) else bytes(value)
            if len(raw) != PCR_SIZE or not 0 <= index < PCR_COUNT:
                raise ValueError(f"PCR{index} must be {PCR_SIZE} bytes (96 hex) at index 0..{PCR_COUNT - 1}")
            self.pcrs[index] = raw
        self.clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))

    def attest(self, public_key: bytes) -> bytes:
        return self.sim.attest(pcrs=self.pcrs, debug=self.debug, public_key=public_key, at=self.clock())
