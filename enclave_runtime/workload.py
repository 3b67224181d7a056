"""The collaboration's job inside one TEE host: unseal each party's dataset, compute, seal the outputs.

`unseal` streams one sealed dataset (after attested key release) into memory and logs its size and hash;
`run_private_job` hands the unsealed datasets to the privacy-preserving job (`enclave_runtime.ml.job`,
federated learning with SecAgg+ and DP statistics against the collaboration's budget), which runs in its own
environment (`.venv-ml`: flwr needs protobuf 6) as a child process: the plaintext crosses a pipe, never a
file. `record_privacy_spends` mirrors every charge the job reports into the signed audit log
(`privacy-spend`), and `seal_outputs` seals each output to its declared recipients only.

`summarize`/`joint_result` are the earlier placeholder computation (row count and mean of a `value`
column), kept for datasets of that shape.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import subprocess
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


@contextlib.contextmanager
def _opened(
    item: SealedInput, *, collaboration: str, data_key_for: Callable[[WrappedKey], bytes], audit: AuditLog
) -> Iterator[_Measured]:
    """One sealed dataset's plaintext chunks, streamed; once read, the audit entry names their size and hash."""
    from .seal import open_sealed

    expect = {"collaboration": collaboration, "party": item.party, "dataset": item.dataset}
    with item.open() as source, open_sealed(source, data_key_for=data_key_for, expect=expect) as chunks:
        measured = _Measured(chunks)
        yield measured
    audit.unseal(collaboration, item.party, item.dataset, measured.size, measured.sha256)


def unseal_and_summarize(
    item: SealedInput,
    *,
    collaboration: str,
    data_key_for: Callable[[WrappedKey], bytes],
    audit: AuditLog,
) -> Partial:
    """Stream one sealed dataset into `summarize`, never holding the whole file."""
    with _opened(item, collaboration=collaboration, data_key_for=data_key_for, audit=audit) as measured:
        return summarize(item.party, item.dataset, lines(measured))


def unseal(
    item: SealedInput,
    *,
    collaboration: str,
    data_key_for: Callable[[WrappedKey], bytes],
    audit: AuditLog,
) -> bytes:
    """One sealed dataset's plaintext, in memory only (the ML job reads it whole over a pipe)."""
    with _opened(item, collaboration=collaboration, data_key_for=data_key_for, audit=audit) as measured:
        return b"".join(measured)


REPO_ROOT = Path(__file__).resolve().parents[1]
ML_PYTHON = REPO_ROOT / ".venv-ml" / "bin" / "python"


def ml_process(command: str, request: Mapping[str, Any], *, python: Path = ML_PYTHON, timeout: float = 600) -> Any:
    """Run `python -m enclave_runtime.ml.job COMMAND` in the ML environment: the request goes in on stdin,
    the JSON result comes back on stdout (pipes only: nothing the request carries is written to disk)."""
    if not python.exists():
        raise WorkloadError(f"the ML environment is missing ({python}): build it with `make test-ml` (or `make demo`)")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(
        [str(python), "-m", "enclave_runtime.ml.job", command], input=json.dumps(request).encode(),
        capture_output=True, cwd=REPO_ROOT, env=env, timeout=timeout, check=False,
    )
    if done.returncode != 0:
        last = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["(no message)"]
        raise WorkloadError(f"the privacy-preserving job failed (exit {done.returncode}): {last[0]}")
    return json.loads(done.stdout)


def run_private_job(
    datasets: Mapping[str, bytes], request: Mapping[str, Any], *, python: Path = ML_PYTHON
) -> dict[str, Any]:
    """The privacy-preserving job on the unsealed `datasets` (`party/dataset` -> CSV plaintext)."""
    return ml_process("run", {**request, "datasets": {name: text.decode() for name, text in datasets.items()}}, python=python)


def record_privacy_spends(audit: AuditLog, collaboration: str, spends: Iterable[Mapping[str, Any]]) -> list[int]:
    """Mirror each ledger charge the job reported into the signed audit log (one `privacy-spend` each)."""
    return [
        audit.privacy_spend(collaboration, s["job"], s["output"], s["epsilon"], s["delta"], s["head"])
        for s in spends
    ]


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
