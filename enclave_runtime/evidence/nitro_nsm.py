"""AWS Nitro attestation documents from the Nitro Secure Module (/dev/nsm).

The protocol is aws-nitro-enclaves-nsm-api's: one ioctl (`_IOWR(0x0A, 0, struct nsm_message)`) whose
argument holds two iovecs, a CBOR request and a buffer the driver fills with a CBOR response and
shrinks to its length. Requests and responses are serde's externally tagged enums:
`{"Attestation": {"user_data", "nonce", "public_key"}}` in, `{"Attestation": {"document"}}` or
`{"Error": "<ErrorCode>"}` out.

`encode_request` and `decode_response` are pure and tested (the decode end to end with a simulated
document); `NitroNsm.collect` adds only the ioctl, which runs inside a Nitro Enclave alone.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

import cbor2

from . import ioctl
from .base import Evidence, EvidenceError

DEVICE = Path("/dev/nsm")
RESPONSE_MAX = 0x3000  # NSM_RESPONSE_MAX_SIZE
# The attestation document specification bounds these fields; the NSM refuses larger ones.
LIMITS = {"user_data": 512, "nonce": 512, "public_key": 1024}

# nsm-api ErrorCode, with what to do about each.
_ERRORS = {
    "InvalidArgument": "the request's arguments are invalid",
    "InvalidIndex": "a PCR index is out of range",
    "InvalidResponse": "the response does not match the request; retry",
    "ReadOnlyIndex": "the PCR is locked",
    "InvalidOperation": "the NSM lacks the capability for this request",
    "BufferTooSmall": f"the response exceeded the {RESPONSE_MAX}-byte buffer",
    "InputTooLarge": f"user_data and nonce are at most {LIMITS['nonce']} bytes, public_key {LIMITS['public_key']}",
    "InternalError": "the NSM failed internally; retry",
}


class _Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _NsmMessage(ctypes.Structure):
    """struct nsm_raw / NsmMessage: the request iovec, then the response iovec."""

    _fields_ = [("request", _Iovec), ("response", _Iovec)]


NSM_IOCTL = ioctl.iowr(0x0A, 0, ctypes.sizeof(_NsmMessage))


def encode_request(
    user_data: bytes | None, nonce: bytes | None = None, public_key: bytes | None = None
) -> bytes:
    """The CBOR Attestation request, fields in nsm-api's order; oversized fields are refused here."""
    fields = {"user_data": user_data, "nonce": nonce, "public_key": public_key}
    for name, value in fields.items():
        if value is not None and len(value) > LIMITS[name]:
            raise EvidenceError(
                f"Nitro attestation {name} is {len(value)} bytes; the NSM takes at most {LIMITS[name]}: "
                "pass a hash of what you want bound"
            )
    return cbor2.dumps({"Attestation": {k: None if v is None else bytes(v) for k, v in fields.items()}})


def decode_response(response: bytes) -> bytes:
    """The COSE_Sign1 attestation document from an NSM response; an NSM `Error` becomes EvidenceError."""
    try:
        message: Any = cbor2.loads(response)
    except (cbor2.CBORDecodeError, ValueError) as exc:
        raise EvidenceError(f"NSM response ({len(response)} bytes) is not CBOR: {exc}") from None
    if isinstance(message, dict) and set(message) == {"Error"}:
        code = message["Error"]
        raise EvidenceError(
            f"NSM refused the attestation request: {code} ({_ERRORS.get(code, 'unknown NSM error code')})"
        )
    body = (
        message.get("Attestation") if isinstance(message, dict) and set(message) == {"Attestation"} else None
    )
    document = body.get("document") if isinstance(body, dict) else None
    if not isinstance(document, bytes) or not document:
        raise EvidenceError(
            f"NSM response is not {{'Attestation': {{'document': bytes}}}}: got {_shape(message)}"
        )
    return document


def _shape(value: Any) -> str:
    """The keys and types of a response, for an error message (never the values)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {_shape(v)}" for k, v in value.items()) + "}"
    return type(value).__name__


class NitroNsm:
    """Attestation documents from the NSM: `collect` binds report data as `user_data`; `attest` binds a
    public key as `public_key` (what KMS encrypts a `Recipient` answer to)."""

    def __init__(self, device: Path | str = DEVICE) -> None:
        self.device = Path(device)

    def collect(self, report_data: bytes) -> Evidence:
        return Evidence("aws-nitro", self._document(encode_request(report_data)))

    def attest(self, public_key: bytes) -> bytes:
        return self._document(encode_request(None, None, public_key))

    def _document(self, encoded: bytes) -> bytes:
        request = ctypes.create_string_buffer(encoded, len(encoded))
        response = ctypes.create_string_buffer(RESPONSE_MAX)
        message = _NsmMessage(
            _Iovec(ctypes.addressof(request), len(encoded)), _Iovec(ctypes.addressof(response), RESPONSE_MAX)
        )
        try:
            ioctl.call(self.device, NSM_IOCTL, message)  # hardware only
        except OSError as exc:
            raise EvidenceError(
                f"NSM attestation ioctl on {self.device} failed: {exc.strerror} "
                "(is this process inside a Nitro Enclave with /dev/nsm?)"
            ) from None
        return decode_response(response.raw[: message.response.iov_len])
