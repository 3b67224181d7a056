"""`make bench` (part 3): what unsealing a dataset costs over the AES-GCM it cannot avoid, and its memory.

In one process and one run (the machines are shared and noisy, so only same-run ratios mean anything):
- throughput: the median of `open_sealed` over a sealed in-memory dataset (1 MiB Tink segments, chunks
  discarded) against `cryptography`'s AES-256-GCM decrypting the same plaintext as 1 MiB messages;
  goal: sealed ≥ 0.8× raw. Printed, not asserted.
- memory: peak RSS (VmHWM, else `resource.getrusage`, in a fresh interpreter each) of unsealing a 1 MiB and a 1 GiB
  file from disk; the 1 GiB file is sealed from a stream of zeros straight into a temp dir, so neither
  side ever holds it. Streaming means the two peaks must be the same to within a few MiB.
"""

from __future__ import annotations

import io
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap, aes_key_wrap

from enclave_runtime.keyrelease.base import WrappedKey
from enclave_runtime.seal import open_sealed, seal

KEK = bytes(32)
EXPECT = {"collaboration": "bench", "party": "party-a", "dataset": "data"}
THROUGHPUT_BYTES, RUNS = 128 << 20, 5
MEMORY_SIZES = {"1 MiB": 1 << 20, "1 GiB": 1 << 30}
CHUNK = 1 << 20


class _Wrapper:
    cloud = "aws"

    def wrap(self, data_key: bytes) -> WrappedKey:
        return WrappedKey("aws", "bench-kek", "AES_KW", aes_key_wrap(KEK, data_key))


def _unwrap(wrapped: WrappedKey) -> bytes:
    return aes_key_unwrap(KEK, wrapped.blob)


class _Zeros(io.RawIOBase):
    """`size` zero bytes, produced on demand."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self._left)
        buffer[:n] = bytes(n)
        self._left -= n
        return n


def _unseal(source: io.BufferedIOBase | io.BytesIO) -> int:
    total = 0
    with open_sealed(source, data_key_for=_unwrap, expect=EXPECT) as chunks:
        for chunk in chunks:
            total += len(chunk)
    return total


def _median(action: object, runs: int = RUNS) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        action()  # type: ignore[operator]
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def throughput() -> None:
    data = os.urandom(THROUGHPUT_BYTES)
    sink = io.BytesIO()
    seal(io.BytesIO(data), sink, wrapper=_Wrapper(), **EXPECT)
    sealed = sink.getvalue()
    assert _unseal(io.BytesIO(sealed)) == len(data)  # warm-up and check
    aead, nonce = AESGCM(os.urandom(32)), os.urandom(12)
    messages = [aead.encrypt(nonce, data[i : i + CHUNK], None) for i in range(0, len(data), CHUNK)]
    unsealed = _median(lambda: _unseal(io.BytesIO(sealed)))
    def decrypt_all() -> None:  # each plaintext dropped before the next, as the unseal loop does
        for message in messages:
            aead.decrypt(nonce, message, None)

    raw = _median(decrypt_all)
    mib = len(data) / (1 << 20)
    print(f"{'unseal (Tink AES256_GCM_HKDF_1MB)':<36} {mib / unsealed:>9.0f} MiB/s")
    print(f"{'raw AES-256-GCM, 1 MiB messages':<36} {mib / raw:>9.0f} MiB/s")
    print(f"{'ratio (goal >= 0.8x)':<36} {raw / unsealed:>9.2f}x")


def _peak_rss_kib() -> int:
    """This process's peak RSS. Linux keeps `ru_maxrss` across fork+exec (the parent's peak leaks into a
    child's), so prefer VmHWM, which belongs to the current address space."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _child(path: str) -> None:
    """Unseal `path`, discarding the plaintext; print bytes and peak RSS in KiB."""
    with open(path, "rb") as source:
        total = _unseal(source)
    print(total, _peak_rss_kib())


def memory() -> None:
    with tempfile.TemporaryDirectory(prefix="bench_seal.") as tmp:
        for label, size in MEMORY_SIZES.items():
            path = Path(tmp) / f"{size}.sealed"
            start = time.perf_counter()
            with open(path, "wb") as sink:
                seal(io.BufferedReader(_Zeros(size), CHUNK), sink, wrapper=_Wrapper(), **EXPECT)
            sealed_in = time.perf_counter() - start
            start = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.bench_seal", "--child", str(path)],
                cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, check=True,
            )
            unsealed_in = time.perf_counter() - start
            total, peak_kib = map(int, out.stdout.split())
            assert total == size, (total, size)
            print(
                f"unseal {label:>6} from disk: peak RSS {peak_kib / 1024:7.1f} MiB "
                f"(sealed in {sealed_in:5.2f} s, unsealed in {unsealed_in:5.2f} s incl. interpreter start)"
            )
            path.unlink()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        _child(argv[1])
        return 0
    memory()  # first, while this process is still small
    throughput()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
