"""A hash-chained, signed audit log that the workload writes inside the TEE.

One JSON object per line, canonical (sorted keys, no spaces, ASCII), each line:

    {"data": {...}, "event": "...", "prev": "<hex SHA-256>", "seq": N, "sig": "<base64>", "time": "...Z"}

- `seq` counts from 0; `prev` is the SHA-256 of the previous line's bytes (without its newline), and 64
  zeros for the first line; `sig` signs the canonical JSON of the entry without `sig` (Ed25519, or ECDSA
  P-256 with SHA-256 as DER), with a key the workload generated in memory at start.
- The first entry is `event: "genesis"`: its data carries the public key (DER SubjectPublicKeyInfo,
  base64), `keyDigest` = SHA-256 of those DER bytes, and the workload's attestation evidence (`kind`,
  base64 `evidence`) whose report data / user data commits to `keyDigest` (its first 32 bytes for the
  64-byte fields of SNP and TDX). That is what makes the log the workload's own: anyone can make a
  well-chained log, only the attested workload holds the key the evidence names.

What verification detects: an edited entry (its signature, or the next line's `prev`), a deleted,
inserted or reordered entry (`seq` and `prev`), a line not in canonical form, a signature by another
key, and a genesis whose evidence does not commit to the key (when `check_evidence` is given). What it
cannot detect alone: the removal of the *last* entries, since a chain has no end marker; a consumer that
needs that compares `Report.head` (the last line's hash) with a head published elsewhere, e.g. in the
workload's output. A line cut short at the end (no newline: the writer was killed mid-write) is reported
as `truncated`: the entries before it verify, the cut one was never acknowledged.

Durability: `AuditLog.append` writes the line with one `write` on an `O_APPEND` descriptor and returns
only after `os.fsync`, so an entry the caller saw acknowledged survives a kill or a power loss.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

GENESIS_PREV: Final = "0" * 64
FIELDS: Final = frozenset({"seq", "time", "event", "data", "prev", "sig"})
# What the runtime logs; `append` refuses anything else, so a typo is not a new kind of event.
# `privacy-spend` mirrors each charge of the privacy ledger (enclave_runtime/ml/dp.py) with the ledger's head
# after it, so the signed log pins the ledger: a ledger rolled back or rewritten no longer contains that head.
EVENTS: Final = frozenset({"verification", "key-release", "unseal", "output", "privacy-spend"})

Signer = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
# check_evidence(kind, evidence, key_digest): raise (or return False) unless the evidence verifies and its
# report data commits to key_digest.
EvidenceCheck = Callable[[str, bytes, bytes], object]


class AuditError(Exception):
    """The log cannot be written, or a file given to `verify` is not a log at all (unusable, not tampered)."""


@dataclass(frozen=True)
class Evidence:
    """The workload's attestation evidence, as `enclave_runtime.attest.verify` takes it."""

    kind: str
    evidence: bytes


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _spki(key: PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_digest(key: PublicKey) -> bytes:
    """SHA-256 of the public key's DER SubjectPublicKeyInfo: what the evidence's report data must commit to."""
    return hashlib.sha256(_spki(key)).digest()


def _sign(signer: Signer, message: bytes) -> bytes:
    if isinstance(signer, ed25519.Ed25519PrivateKey):
        return signer.sign(message)
    return signer.sign(message, ec.ECDSA(hashes.SHA256()))


def _verify(key: PublicKey, signature: bytes, message: bytes) -> None:
    if isinstance(key, ed25519.Ed25519PublicKey):
        key.verify(signature, message)
    else:
        key.verify(signature, message, ec.ECDSA(hashes.SHA256()))


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


class AuditLog:
    """Appends signed, chained entries to a new log file; every acknowledged entry is on disk.

    The file must not exist: the signing key lives only in this process, so a restarted workload starts a
    new log (with new evidence) instead of extending one it cannot prove it wrote.
    """

    def __init__(self, path: Path | str, signer: Signer, evidence: Evidence) -> None:
        if isinstance(signer, ec.EllipticCurvePrivateKey) and not isinstance(signer.curve, ec.SECP256R1):
            raise AuditError(f"audit log keys are Ed25519 or ECDSA P-256, not {signer.curve.name}")
        if not isinstance(signer, (ed25519.Ed25519PrivateKey, ec.EllipticCurvePrivateKey)):
            raise AuditError(f"audit log keys are Ed25519 or ECDSA P-256, not {type(signer).__name__}")
        self.path = Path(path)
        self._signer = signer
        self._lock = threading.Lock()
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        except FileExistsError:
            raise AuditError(f"audit log {self.path} already exists: a new workload run starts a new log") from None
        self._seq = 0
        self._prev = GENESIS_PREV
        public = signer.public_key()
        self.key_digest = key_digest(public)
        self._append_locked("genesis", {
            "publicKey": base64.b64encode(_spki(public)).decode(),
            "algorithm": "Ed25519" if isinstance(signer, ed25519.Ed25519PrivateKey) else "ES256",
            "keyDigest": self.key_digest.hex(),
            "evidence": {"kind": evidence.kind, "evidence": base64.b64encode(evidence.evidence).decode()},
        })
        directory = os.open(self.path.parent, os.O_RDONLY)  # the file's name must survive too
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def append(self, event: str, data: dict[str, Any]) -> int:
        """Append one entry and return its `seq` once it is on disk."""
        if event not in EVENTS:
            raise AuditError(f"event {event!r} is not one of {sorted(EVENTS)}")
        with self._lock:
            return self._append_locked(event, data)

    def _append_locked(self, event: str, data: dict[str, Any]) -> int:
        if self._fd < 0:
            raise AuditError(f"audit log {self.path} is closed")
        entry: dict[str, Any] = {"seq": self._seq, "time": _now(), "event": event, "data": data, "prev": self._prev}
        entry["sig"] = base64.b64encode(_sign(self._signer, _canonical(entry))).decode()
        line = _canonical(entry)
        payload = line + b"\n"
        written = os.write(self._fd, payload)
        if written != len(payload):  # a regular file takes it whole, or the disk is full: stop logging
            raise AuditError(f"audit log {self.path}: short write ({written} of {len(payload)} bytes)")
        os.fsync(self._fd)
        self._prev = hashlib.sha256(line).hexdigest()
        self._seq += 1
        return int(entry["seq"])

    # The events the runtime logs, with the fields a reviewer reads.
    def verification(self, kind: str, verified: bool, detail: str = "") -> int:
        return self.append("verification", {"kind": kind, "verified": verified, "detail": detail})

    def key_release(self, cloud: str, key_id: str, granted: bool, reason: str = "") -> int:
        return self.append("key-release", {"cloud": cloud, "keyId": key_id, "granted": granted, "reason": reason})

    def unseal(self, collaboration: str, party: str, dataset: str, size: int, sha256: str) -> int:
        return self.append("unseal", {
            "collaboration": collaboration, "party": party, "dataset": dataset, "bytes": size, "sha256": sha256,
        })

    def output(self, name: str, size: int, sha256: str) -> int:
        return self.append("output", {"name": name, "bytes": size, "sha256": sha256})

    def privacy_spend(self, collaboration: str, job: str, output: str, epsilon: str, delta: str, head: str) -> int:
        """One job's charge to the privacy budget: amounts as the ledger's exact decimal strings, and the
        ledger's head after the charge."""
        return self.append("privacy-spend", {
            "collaboration": collaboration, "job": job, "output": output, "epsilon": epsilon, "delta": delta,
            "head": head,
        })

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> "AuditLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Report:
    """The verdict on one log. `status`: valid, truncated (valid entries, then a line cut mid-write), tampered."""

    status: Literal["valid", "truncated", "tampered"]
    entries: int  # entries that verified, in order from the genesis
    line: int | None = None  # the 1-based line that failed (tampered) or was cut short (truncated)
    check: str | None = None  # seq, prev, signature, format, genesis, evidence, truncated
    message: str = ""
    head: str | None = None  # hex SHA-256 of the last verified line (compare with a published head)
    key_digest: str | None = None
    evidence_kind: str | None = None
    evidence_checked: bool = False
    events: dict[str, int] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return self.status != "tampered"

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status, "valid": self.valid, "entries": self.entries, "line": self.line,
            "check": self.check, "message": self.message, "head": self.head, "keyDigest": self.key_digest,
            "evidenceKind": self.evidence_kind, "evidenceChecked": self.evidence_checked, "events": self.events,
        }


class _Tampered(Exception):
    def __init__(self, check: str, message: str) -> None:
        super().__init__(message)
        self.check = check
        self.message = message


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise _Tampered("format", f"{what} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _Tampered("format", f"{what} is not valid base64") from None


def _entry(line: bytes, expected_seq: int, prev: str) -> dict[str, Any]:
    try:
        entry = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _Tampered("not-a-log", "not a JSON object") from None
    if not isinstance(entry, dict) or set(entry) != FIELDS:
        keys = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
        raise _Tampered("not-a-log", f"entry fields are {keys}, expected {sorted(FIELDS)}")
    if _canonical(entry) != line:
        raise _Tampered("format", "entry is not in canonical form (sorted keys, no spaces): it was edited")
    if not isinstance(entry["seq"], int) or isinstance(entry["seq"], bool) or entry["seq"] != expected_seq:
        raise _Tampered(
            "seq", f"seq is {entry['seq']!r}, expected {expected_seq}: an entry was deleted, inserted or moved here"
        )
    if entry["prev"] != prev:
        raise _Tampered("prev", "prev does not match the previous line's hash: the previous line was edited or replaced")
    if not isinstance(entry["event"], str) or not isinstance(entry["data"], dict) or not isinstance(entry["time"], str):
        raise _Tampered("format", "event and time must be strings and data an object")
    return entry


def _genesis_key(entry: dict[str, Any], check_evidence: EvidenceCheck | None) -> tuple[PublicKey, str]:
    if entry["event"] != "genesis":
        raise _Tampered("genesis", f"the first entry is {entry['event']!r}, not the genesis: the log's start is missing")
    data = entry["data"]
    spki = _b64(data.get("publicKey"), "genesis publicKey")
    try:
        key = serialization.load_der_public_key(spki)
    except ValueError:
        raise _Tampered("genesis", "genesis publicKey is not a DER public key") from None
    if not isinstance(key, ed25519.Ed25519PublicKey) and not (
        isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)
    ):
        raise _Tampered("genesis", f"genesis publicKey is a {type(key).__name__}, not Ed25519 or P-256")
    digest = hashlib.sha256(spki).digest()
    if data.get("keyDigest") != digest.hex():
        raise _Tampered("genesis", "genesis keyDigest is not the SHA-256 of its publicKey")
    evidence = data.get("evidence")
    if not isinstance(evidence, dict) or not isinstance(evidence.get("kind"), str):
        raise _Tampered("genesis", "genesis evidence must be an object with kind and evidence")
    raw = _b64(evidence.get("evidence"), "genesis evidence")
    if check_evidence is not None:
        try:
            ok = check_evidence(evidence["kind"], raw, digest)
        except Exception as exc:  # the checker's own reason is the message
            raise _Tampered("evidence", f"the genesis evidence was not accepted: {exc}") from None
        if ok is False:
            raise _Tampered("evidence", f"the genesis evidence does not commit to the log key {digest.hex()}")
    return key, evidence["kind"]


def verify(path: Path | str, *, check_evidence: EvidenceCheck | None = None) -> Report:
    """Verify the log at `path` line by line (streaming); stops at the first failure and names its line.

    Raises `AuditError` when the file cannot be read or is empty (unusable, not evidence of tampering).
    Without `check_evidence` the chain and signatures are verified but nothing ties the key to a TEE:
    `Report.evidence_checked` says which.
    """
    path = Path(path)
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise AuditError(f"cannot read audit log {path}: {exc.strerror}") from None
    report = Report("valid", 0, evidence_checked=check_evidence is not None)
    key: PublicKey | None = None
    prev = GENESIS_PREV
    with handle:
        number = 0
        for number, raw in enumerate(handle, start=1):
            if not raw.endswith(b"\n"):  # the last line, cut short: a write that was never acknowledged
                if number == 1:
                    raise AuditError(f"audit log {path} has no complete genesis line: not an audit log, or empty")
                report.status, report.line, report.check = "truncated", number, "truncated"
                report.message = (
                    f"line {number} is incomplete ({len(raw)} bytes, no newline): the writer stopped mid-entry; "
                    f"the {report.entries} entries before it verify"
                )
                return report
            line = raw[:-1]
            try:
                entry = _entry(line, number - 1, prev)
                if key is None:
                    key, report.evidence_kind = _genesis_key(entry, check_evidence)
                    report.key_digest = hashlib.sha256(_spki(key)).hexdigest()
                elif entry["event"] == "genesis":
                    raise _Tampered("genesis", "a second genesis entry: another log was spliced in")
                unsigned = {k: v for k, v in entry.items() if k != "sig"}
                try:
                    _verify(key, _b64(entry["sig"], "sig"), _canonical(unsigned))
                except InvalidSignature:
                    raise _Tampered("signature", "the signature does not verify under the genesis key: the entry was "
                                    "edited or signed by another key") from None
            except _Tampered as exc:
                if exc.check == "not-a-log":
                    if number == 1:  # nothing in this file was ever a log entry
                        raise AuditError(f"{path} is not an audit log: line 1: {exc.message}") from None
                    exc.check = "format"
                report.status, report.line, report.check = "tampered", number, exc.check
                report.message = f"line {number}: {exc.message}"
                return report
            prev = hashlib.sha256(line).hexdigest()
            report.entries += 1
            report.head = prev
            report.events[entry["event"]] = report.events.get(entry["event"], 0) + 1
        if number == 0:
            raise AuditError(f"audit log {path} is empty: no genesis entry")
    return report
