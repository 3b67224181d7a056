"""SEV-SNP and TDX reports through the kernel's configfs-tsm interface (Linux 6.7+).

The flow is the one Documentation/ABI/testing/configfs-tsm describes: create a report instance
(`mkdir`), note `generation`, write `inblob`, read `outblob` (and, for SEV-SNP, `auxblob`: the
host's certificate table), then re-read `generation`. If it moved by more than our own writes,
another writer changed the inputs between our write and our read, and the outblob may be theirs:
retry, a bounded number of times. A unique instance per call keeps such races rare; the check makes
them harmless. The instance is removed afterwards whatever happens.

`mkdir`/`rmdir` are parameters for one reason: on configfs they are what makes the kernel create
and destroy the attribute files. A test substitutes a "kernel" that does the same on a plain
directory; every attribute read and write below is the code that runs on hardware.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Callable
from pathlib import Path

from .base import Evidence, EvidenceError, Kind, fixed_report_data

REPORTS = Path("/sys/kernel/config/tsm/report")

# The `provider` attribute names the outblob format.
PROVIDER_KINDS: dict[str, Kind] = {"sev_guest": "amd-sev-snp", "tdx_guest": "intel-tdx"}

# GHCB specification (AMD 56421) §4.1.8.1, as in google/go-sev-guest abi.go. The ASK GUID also
# tags the ASVK when the report is VLEK-signed; `certificate_table` names it accordingly.
VCEK_GUID = uuid.UUID("63da758d-e664-4564-adc5-f4b93be8accd")
VLEK_GUID = uuid.UUID("a8074bc2-a25a-483e-aae6-39c045a0b8a1")
ASK_GUID = uuid.UUID("4ab7b379-bbac-4fe4-a02f-05aef327c782")
ARK_GUID = uuid.UUID("c0b406a4-a803-4952-9743-3fb6014cd0ae")
_ENTRY_SIZE = 24  # GUID(16) + offset u32 LE + length u32 LE


class ConfigfsTsm:
    """Collects an SNP or TDX report through configfs-tsm; the kind follows the `provider` attribute."""

    def __init__(
        self,
        reports: Path | str = REPORTS,
        *,
        privlevel: int | None = None,
        attempts: int = 3,
        mkdir: Callable[[Path], None] = os.mkdir,
        rmdir: Callable[[Path], None] = os.rmdir,
    ) -> None:
        if attempts < 1:
            raise EvidenceError(f"attempts is {attempts}: at least one attempt is needed")
        self.reports = Path(reports)
        self.privlevel = privlevel  # SNP VMPL to report at; None leaves the kernel's default
        self.attempts = attempts
        self._mkdir = mkdir
        self._rmdir = rmdir

    def collect(self, report_data: bytes) -> Evidence:
        inblob = fixed_report_data(report_data)
        report = self.reports / f"ccp-{os.getpid()}-{secrets.token_hex(8)}"
        try:
            self._mkdir(report)
        except OSError as exc:
            raise EvidenceError(
                f"cannot create report instance {report}: {exc.strerror}; configfs must be mounted at "
                "/sys/kernel/config, the guest driver (sev-guest or tdx-guest) loaded, and the caller root"
            ) from None
        try:
            kind = _kind(report)
            for _ in range(self.attempts):
                evidence = self._attempt(report, kind, inblob)
                if evidence is not None:
                    return evidence
            raise EvidenceError(
                f"{report}/generation changed under us on each of {self.attempts} attempts: another "
                "process writes to this report instance; stop it, or raise attempts"
            )
        finally:
            try:
                self._rmdir(report)
            except OSError as exc:
                raise EvidenceError(
                    f"cannot remove report instance {report}: {exc.strerror}; rmdir it by hand"
                ) from None

    def _attempt(self, report: Path, kind: Kind, inblob: bytes) -> Evidence | None:
        """One write-then-read; None if another writer raced us (generation moved too far)."""
        before = _generation(report)
        writes = 0
        if self.privlevel is not None:
            _write(report / "privlevel", str(self.privlevel).encode())
            writes += 1
        _write(report / "inblob", inblob)
        writes += 1
        outblob = _read(report / "outblob")
        auxblob = _read(report / "auxblob") if kind == "amd-sev-snp" else b""  # TDX has no auxblob
        if _generation(report) != before + writes:
            return None
        if not outblob:
            raise EvidenceError(f"{report}/outblob is empty: the {kind} driver produced no report")
        return Evidence(kind, outblob, certificate_table(auxblob))


def certificate_table(auxblob: bytes) -> list[tuple[str, bytes]]:
    """The SNP certificate table (GHCB spec MSG_REPORT_REQ `cert_table`) → named DER certificates.

    Entries are GUID(16) + offset(u32 LE) + length(u32 LE), ended by an all-zero entry; offsets are
    from the start of the table. Entries with other GUIDs (e.g. extra platform info) are not
    certificates and are left out. A malformed table is refused rather than half-read: the
    certificates are what the verifier chains the report to.
    """
    if not auxblob:
        return []  # the host supplied no certificates: the verifier must be given them otherwise
    entries: list[tuple[uuid.UUID, int, int]] = []
    position = 0
    while True:
        entry = auxblob[position : position + _ENTRY_SIZE]
        if len(entry) < _ENTRY_SIZE:
            raise EvidenceError(
                f"SNP certificate table ends at byte {len(auxblob)} inside entry {len(entries)} "
                "without the all-zero terminator: the host's certificate blob is truncated"
            )
        position += _ENTRY_SIZE
        if entry == bytes(_ENTRY_SIZE):
            break
        guid = uuid.UUID(bytes=entry[:16])
        offset = int.from_bytes(entry[16:20], "little")
        length = int.from_bytes(entry[20:24], "little")
        entries.append((guid, offset, length))
    has_vlek = any(guid == VLEK_GUID for guid, _, _ in entries)
    names = {VCEK_GUID: "vcek", VLEK_GUID: "vlek", ASK_GUID: "asvk" if has_vlek else "ask", ARK_GUID: "ark"}
    certificates: list[tuple[str, bytes]] = []
    for guid, offset, length in entries:
        if offset < position or offset + length > len(auxblob) or length == 0:
            raise EvidenceError(
                f"SNP certificate table entry {guid} points at bytes {offset}..{offset + length}, "
                f"outside the certificate data ({position}..{len(auxblob)}): the host's table is corrupt"
            )
        if guid in names:
            certificates.append((names[guid], auxblob[offset : offset + length]))
    return certificates


def _kind(report: Path) -> Kind:
    provider = _read(report / "provider").decode("ascii", "replace").strip()
    kind = PROVIDER_KINDS.get(provider)
    if kind is None:
        raise EvidenceError(
            f"{report}/provider is {provider!r}; this runtime reads {sorted(PROVIDER_KINDS)} reports only"
        )
    return kind


def _generation(report: Path) -> int:
    text = _read(report / "generation").strip()
    if not text.isdigit():
        raise EvidenceError(f"{report}/generation holds {text[:32]!r}, not a counter: is this configfs-tsm?")
    return int(text)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise EvidenceError(f"cannot read {path}: {exc.strerror}") from None


def _write(path: Path, data: bytes) -> None:
    """One open-write-close: configfs commits a binary attribute when the file is released."""
    try:
        fd = os.open(path, os.O_WRONLY)  # no O_CREAT: a missing attribute is an error, not a new file
        try:
            written = os.write(fd, data)
        finally:
            os.close(fd)
    except OSError as exc:
        raise EvidenceError(f"cannot write {len(data)} bytes to {path}: {exc.strerror}") from None
    if written != len(data):
        raise EvidenceError(f"{path} took {written} of {len(data)} bytes: the attribute refused the rest")
