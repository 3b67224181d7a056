"""SEV-SNP reports through the /dev/sev-guest SNP_GET_REPORT ioctl: for kernels without configfs-tsm.

Layouts are include/uapi/linux/sev-guest.h (`snp_report_req`, `snp_report_resp`,
`snp_guest_request_ioctl`) and the SNP Firmware ABI's MSG_REPORT_RSP inside the 4000-byte response.
This path returns no certificates (the certificate table comes with configfs-tsm's auxblob or the
AMD KDS), so the verifier must be given the VCEK/VLEK chain another way.

`encode_request`, `decode_response` and `describe_failure` are pure and tested; `SevGuest.collect`
adds only the ioctl itself, which runs on SEV-SNP hardware alone.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

from . import ioctl
from .base import Evidence, EvidenceError, fixed_report_data

DEVICE = Path("/dev/sev-guest")
MSG_VERSION = 1  # the only MSG_REPORT_REQ version the firmware defines
REQUEST_SIZE = 96  # user_data[64] + vmpl u32 + rsvd[28]
RESPONSE_SIZE = 4000
_HEADER = 0x20  # MSG_REPORT_RSP: status u32, report_size u32, reserved[24], then the report
MAX_VMPL = 3

# MSG_REPORT_RSP status (SNP Firmware ABI).
_STATUS = {
    0x16: "INVALID_PARAMETERS: the VMPL requested is below the guest's own (ask for the VMPL it runs at)",
    0x27: "INVALID_KEY_SELECTION: the firmware cannot sign with the selected key",
}
# snp_guest_request_ioctl.exitinfo2, bits 31..0: firmware error (psp-sev.h); bits 63..32: VMM error.
_FIRMWARE = {0x15: "UNSUPPORTED", 0x16: "INVALID_PARAM", 0x27: "INVALID_KEY"}
_VMM = {
    1: "INVALID_LEN: the host's certificate buffer size does not match",
    2: "BUSY: the host is throttling guest requests; retry later",
}


class _GuestRequest(ctypes.Structure):
    """struct snp_guest_request_ioctl (natural alignment: 7 bytes of padding after msg_version)."""

    _fields_ = [
        ("msg_version", ctypes.c_uint8),
        ("req_data", ctypes.c_uint64),
        ("resp_data", ctypes.c_uint64),
        ("exitinfo2", ctypes.c_uint64),
    ]


SNP_GET_REPORT = ioctl.iowr(ord("S"), 0x0, ctypes.sizeof(_GuestRequest))


def encode_request(report_data: bytes, vmpl: int) -> bytes:
    """struct snp_report_req: the 64-byte user data, the VMPL to report at, 28 zero bytes."""
    if not 0 <= vmpl <= MAX_VMPL:
        raise EvidenceError(f"vmpl is {vmpl}: SNP privilege levels are 0..{MAX_VMPL}")
    return fixed_report_data(report_data) + vmpl.to_bytes(4, "little") + bytes(28)


def decode_response(response: bytes) -> bytes:
    """The attestation report inside the 4000-byte snp_report_resp; a firmware failure is an error."""
    if len(response) != RESPONSE_SIZE:
        raise EvidenceError(f"snp_report_resp is {len(response)} bytes, not {RESPONSE_SIZE}")
    status = int.from_bytes(response[0:4], "little")
    if status:
        meaning = _STATUS.get(status, "not a status the SNP ABI defines")
        raise EvidenceError(
            f"SNP firmware refused the report request: MSG_REPORT_RSP status {status:#x} ({meaning})"
        )
    size = int.from_bytes(response[4:8], "little")
    if not 0 < size <= RESPONSE_SIZE - _HEADER:
        raise EvidenceError(
            f"MSG_REPORT_RSP report_size is {size}; it must be 1..{RESPONSE_SIZE - _HEADER} "
            "(the response is corrupt)"
        )
    return response[_HEADER : _HEADER + size]


def describe_failure(device: Path, error: OSError, exitinfo2: int) -> str:
    """A failed SNP_GET_REPORT in words: errno, then what the firmware and the VMM reported."""
    firmware, vmm = exitinfo2 & 0xFFFFFFFF, exitinfo2 >> 32
    parts = [f"SNP_GET_REPORT on {device} failed: {error.strerror}"]
    if firmware:
        parts.append(f"firmware error {firmware:#x} ({_FIRMWARE.get(firmware, 'see psp-sev.h')})")
    if vmm:
        parts.append(f"VMM error {vmm} ({_VMM.get(vmm, 'not defined by sev-guest.h')})")
    return "; ".join(parts)


class SevGuest:
    """SNP reports via the ioctl; `vmpl` is the privilege level the report states (0 = most privileged)."""

    def __init__(self, device: Path | str = DEVICE, *, vmpl: int = 0) -> None:
        self.device = Path(device)
        self.vmpl = vmpl

    def collect(self, report_data: bytes) -> Evidence:
        request = ctypes.create_string_buffer(encode_request(report_data, self.vmpl), REQUEST_SIZE)
        response = ctypes.create_string_buffer(RESPONSE_SIZE)
        argument = _GuestRequest(MSG_VERSION, ctypes.addressof(request), ctypes.addressof(response), 0)
        try:
            ioctl.call(self.device, SNP_GET_REPORT, argument)  # hardware only
        except OSError as exc:
            raise EvidenceError(describe_failure(self.device, exc, argument.exitinfo2)) from None
        return Evidence("amd-sev-snp", decode_response(response.raw))
