"""The collaboration's job inside one TEE host: unseal each party's dataset, compute, seal the outputs.

This is the placeholder computation the demo runs end to end (the privacy-preserving ML of a later
issue replaces `summarize`): each host streams the datasets whose keys its cloud released to it and
computes a partial aggregate (row count and sum of the `value` column); partials are combined into the
joint result. Plaintext never leaves this process: outputs are sealed to the declared recipients only,
and every unseal and output is written to the audit log.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, ContextManager, Iterable, Iterator, Mapping

from .audit import AuditLog
from .keyrelease.base import WrappedKey, Wrapper


@dataclass(frozen=True)
class SealedInput:
    """One party's sealed dataset and how to stream it (a local file, a bucket object)."""

    party: str
    dataset: str
    open: Callable[[], ContextManager[BinaryIO]]

    @classmethod
    def file(cls, party: str, dataset: str, path: Path) -> "SealedInput":
        return cls(party, dataset, lambda: path.open("rb"))


@dataclass(frozen=True)
class Partial:
    """One dataset's contribution: counts and sums only, never rows."""

    party: str
    dataset: str
    rows: int
    total: float


class WorkloadError(ValueError):
    """The job cannot run as declared (an undeclared recipient, a malformed dataset)."""


class _Measured:
    """Plaintext chunks passed through while their size and SHA-256 are taken (for the audit entry)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks
        self.size = 0
        self._digest = hashlib.sha256()

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self.size += len(chunk)
            self._digest.update(chunk)
            yield chunk

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()


def lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Text lines from a stream of plaintext chunks, without joining the whole stream."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield line.decode()
    if pending:
        yield pending.decode()


def summarize(party: str, dataset: str, text_lines: Iterable[str]) -> Partial:
    """Count the rows and sum the `value` column of a CSV dataset (header row first)."""
    reader = csv.DictReader(text_lines)
    if reader.fieldnames is None or "value" not in reader.fieldnames:
        raise WorkloadError(f"dataset {party}/{dataset}: no `value` column in the header {reader.fieldnames}")
    rows, total = 0, 0.0
    for number, row in enumerate(reader, start=2):
        try:
            total += float(row["value"])
        except (TypeError, ValueError):
            raise WorkloadError(f"dataset {party}/{dataset} line {number}: `value` {row['value']!r} is not a number") from None
        rows += 1
    return Partial(party, dataset, rows, total)


def unseal_and_summarize(
    item: SealedInput,
    *,
    collaboration: str,
    data_key_for: Callable[[WrappedKey], bytes],
    audit: AuditLog,
) -> Partial:
    """Stream one sealed dataset into `summarize`; the audit entry names the plaintext's size and hash."""
    from .seal import open_sealed

    expect = {"collaboration": collaboration, "party": item.party, "dataset": item.dataset}
    with item.open() as source, open_sealed(source, data_key_for=data_key_for, expect=expect) as chunks:
        measured = _Measured(chunks)
        partial = summarize(item.party, item.dataset, lines(measured))
    audit.unseal(collaboration, item.party, item.dataset, measured.size, measured.sha256)
    return partial


def joint_result(partials: Iterable[Partial]) -> dict[str, Any]:
    parts = sorted(partials, key=lambda p: (p.party, p.dataset))
    rows = sum(p.rows for p in parts)
    total = sum(p.total for p in parts)
    return {
        "parties": sorted({p.party for p in parts}),
        "rows": rows,
        "mean_value": round(total / rows, 6) if rows else None,
    }


def seal_outputs(
    result: Mapping[str, Any],
    *,
    collaboration: str,
    outputs: Mapping[str, list[str]],
    recipients: Mapping[str, Wrapper],
    out_dir: Path,
    audit: AuditLog,
) -> list[Path]:
    """Seal `result` once per (declared output, declared recipient); a recipient without a key is an error.

    `outputs` is the stack's `outputs[].recipients`; `recipients` the public-key wrappers the recipients
    registered. Nothing is written for anyone the stack does not declare.
    """
    from .seal import seal

    payload = json.dumps(result, sort_keys=True).encode()
    written: list[Path] = []
    for name, declared in outputs.items():
        for recipient in declared:
            wrapper = recipients.get(recipient)
            if wrapper is None:
                raise WorkloadError(f"output {name!r}: recipient {recipient!r} registered no public key")
            path = out_dir / f"{name}.{recipient}.sealed"
            tmp = path.with_suffix(".partial")
            with tmp.open("wb") as sink:
                seal(io.BytesIO(payload), sink, collaboration=collaboration, party=recipient, dataset=name, wrapper=wrapper)
            tmp.replace(path)
            sealed = path.read_bytes()
            audit.output(f"{name} to {recipient}", len(sealed), hashlib.sha256(sealed).hexdigest())
            written.append(path)
    return written
