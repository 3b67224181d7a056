"""The one system call configfs cannot replace: `ioctl` on /dev/nsm and /dev/sev-guest.

Through libc rather than `fcntl.ioctl`: the kernel writes results (response lengths, firmware error
codes) into the argument struct even when the call fails, and `fcntl.ioctl` copies a mutable buffer
back only on success. `call` is exercised only on hardware; everything it carries is encoded and
decoded by pure functions the tests drive.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

_IOC_READ_WRITE = 3  # _IOC_WRITE | _IOC_READ


def iowr(kind: int, number: int, size: int) -> int:
    """Linux `_IOWR(kind, number, size)`: direction(2) | size(14) | type(8) | number(8) bits."""
    return (_IOC_READ_WRITE << 30) | (size << 16) | (kind << 8) | number


def call(device: Path, request: int, argument: ctypes.Structure) -> None:
    """`ioctl(open(device), request, &argument)`; raises OSError with the kernel's errno on failure."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
    libc.ioctl.restype = ctypes.c_int
    fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    try:
        if libc.ioctl(fd, request, ctypes.addressof(argument)) < 0:
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno), str(device))
    finally:
        os.close(fd)
