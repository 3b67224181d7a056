"""Bounds-checked reads of fixed binary layouts (SNP report, DCAP quote, TPM structures, HCL report).

Why one reader: every layout parser must turn a short or inconsistent buffer into a named `structure`
failure, never an IndexError or a silently short slice; doing that once keeps the parsers declarative.
"""

from __future__ import annotations

from .errors import VerificationError


class Reader:
    """A cursor over `data`; each read consumes bytes and fails with `structure` if they are not there."""

    def __init__(self, data: bytes, what: str, offset: int = 0) -> None:
        self.data = bytes(data)
        self.what = what
        self.offset = offset

    def take(self, size: int, field: str) -> bytes:
        if size < 0 or self.offset + size > len(self.data):
            raise VerificationError(
                "structure",
                f"{self.what} is truncated: {field} needs {size} bytes at offset {self.offset}, "
                f"{max(len(self.data) - self.offset, 0)} remain",
            )
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def u8(self, field: str) -> int:
        return self.take(1, field)[0]

    def u16le(self, field: str) -> int:
        return int.from_bytes(self.take(2, field), "little")

    def u32le(self, field: str) -> int:
        return int.from_bytes(self.take(4, field), "little")

    def u64le(self, field: str) -> int:
        return int.from_bytes(self.take(8, field), "little")

    def u16be(self, field: str) -> int:
        return int.from_bytes(self.take(2, field), "big")

    def u32be(self, field: str) -> int:
        return int.from_bytes(self.take(4, field), "big")

    def u64be(self, field: str) -> int:
        return int.from_bytes(self.take(8, field), "big")

    def sized_be16(self, field: str) -> bytes:
        """A TPM2B: u16 big-endian size, then that many bytes."""
        return self.take(self.u16be(f"{field}.size"), field)

    def rest(self) -> bytes:
        chunk = self.data[self.offset :]
        self.offset = len(self.data)
        return chunk

    def done(self) -> None:
        """Refuse leftover bytes: inside a length-delimited structure they would be unsigned and unread."""
        if self.remaining:
            raise VerificationError(
                "structure", f"{self.what} has {self.remaining} unexpected bytes after offset {self.offset}"
            )

    @property
    def remaining(self) -> int:
        return len(self.data) - self.offset
