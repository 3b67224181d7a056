"""Differential privacy with a budget the runtime enforces: an append-only, hash-chained ledger of spends,
and OpenDP statistics that are charged to it *before* the data is touched.

Ledger file: one canonical JSON object per line (sorted keys, no spaces, ASCII), each with `seq` (from 0),
`prev` (SHA-256 hex of the previous line's bytes; 64 zeros for the first) and `time`. Line 0 is the
`budget` entry (collaboration, total epsilon and delta, the outputs allowed to spend); every later line is
a `spend` (job, its queries, their epsilon and delta, the output it feeds). Amounts are decimal strings
and are summed exactly (`decimal.Decimal`), under basic sequential composition.

What the ledger guarantees:
- a job is admitted only if the spent total plus the job's whole cost stays within the budget; a refused
  job writes nothing and its data loader is never called (so splitting a job into smaller ones gains
  nothing: every spend counts against the same running total);
- the spend is on disk (`fsync`) before the data is loaded or any result computed: a crash after the spend
  cannot release an uncharged result;
- on open, the whole chain is re-verified (seq, prev, canonical form, entry shapes, the budget entry equal to
  the configured budget) and every edited, inserted, deleted or reordered line is reported as tampering;
  given the head published elsewhere (e.g. in the signed audit log or the released output), a rollback
  (lines cut from the end, or the file replaced by an older copy) is detected too;
- several processes may share the file: charges take an exclusive `flock` and first read what others
  appended (verifying it).

What it does not do: a chain is not a signature. Someone who can write the file can rebuild a consistent
chain with smaller spends; pinning the published head (`expected_head`), or checking the ledger against the
`privacy-spend` entries mirrored into the signed `AuditLog` (`audited_spends`, `check_mirrored`), is what
makes that detectable. Why two logs: the ledger is what admits a charge *before* data is touched, under a
file lock shared by concurrent jobs, in the ML process (which holds no audit signing key); the audit log is
signed by the workload's attested key but is per workload run (a restarted workload starts a new one), so
it cannot be the running total a charge is checked against. It does not account with tighter composition
theorems (Renyi/zCDP) across jobs, so it over-counts rather than under-counts.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np

from .config import PrivacyBudget

GENESIS_PREV: Final = "0" * 64
ENTRY_FIELDS: Final = frozenset({"seq", "time", "event", "data", "prev"})


class LedgerError(Exception):
    """The ledger is tampered with, rolled back, or does not belong to this budget: no query may run."""


class BudgetExceeded(Exception):
    """The job would exceed the remaining budget (or spends on an undeclared output); nothing was spent."""


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _amount(value: Any, where: str) -> Decimal:
    if not isinstance(value, str):
        raise LedgerError(f"{where}: amount {value!r} is not a decimal string")
    try:
        number = Decimal(value)
    except ArithmeticError:
        raise LedgerError(f"{where}: amount {value!r} is not a decimal") from None
    if not number.is_finite() or number < 0:
        raise LedgerError(f"{where}: amount {value!r} must be finite and >= 0")
    return number


@dataclass(frozen=True)
class Charge:
    """One query's cost, as the mechanism (not the caller) reports it."""

    query: str
    epsilon: Decimal
    delta: Decimal = Decimal(0)


@dataclass(frozen=True)
class Spend:
    seq: int
    job: str
    output: str
    epsilon: Decimal
    delta: Decimal
    queries: tuple[str, ...]
    head: str  # SHA-256 of this entry's line: publish it to pin the ledger


class PrivacyLedger:
    """The collaboration's privacy ledger: open (create or verify) it, then `charge` jobs against it."""

    def __init__(self, path: Path, budget: PrivacyBudget, collaboration: str) -> None:
        self.path = path
        self.budget = budget
        self.collaboration = collaboration
        self._lock = threading.Lock()
        self._seq = 0
        self._prev = GENESIS_PREV
        self._offset = 0
        self._heads: list[str] = []
        self.spent_epsilon = Decimal(0)
        self.spent_delta = Decimal(0)
        self.spends: list[Spend] = []

    # --- opening -------------------------------------------------------------------------------------

    @classmethod
    def open(
        cls, path: Path | str, budget: PrivacyBudget, collaboration: str, *, expected_head: str | None = None
    ) -> "PrivacyLedger":
        """Create the ledger with its budget entry, or read and verify an existing one.

        `expected_head`: a head published earlier (`Spend.head` or `ledger.head`); the ledger must still
        contain that line, else it was rolled back or replaced.
        """
        ledger = cls(Path(path), budget, collaboration)
        created = not ledger.path.exists()
        fd = os.open(ledger.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            ledger._sync(fd)
            if ledger._seq == 0:
                ledger._append(fd, "budget", {
                    "collaboration": collaboration,
                    "epsilon": str(budget.epsilon),
                    "delta": str(budget.delta),
                    "outputs": list(budget.outputs),
                })
        finally:
            os.close(fd)
        if created:  # the file's name must survive a crash too, not only its contents
            directory = os.open(ledger.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        if expected_head is not None and expected_head not in ledger._heads:
            raise LedgerError(
                f"{ledger.path}: the published head {expected_head} is not in the ledger: it was rolled back "
                "(lines removed from its end) or replaced; restore the ledger, do not run queries"
            )
        return ledger

    def _sync(self, fd: int) -> None:
        """Read and verify every complete line appended since the last read (by us or another process)."""
        size = os.fstat(fd).st_size
        if size < self._offset:
            raise LedgerError(f"{self.path}: the file shrank from {self._offset} to {size} bytes: it was truncated")
        data = os.pread(fd, size - self._offset, self._offset)
        if data and not data.endswith(b"\n"):
            line_no = self._seq + data.count(b"\n") + 1
            raise LedgerError(
                f"{self.path}: line {line_no} is cut short (a write was interrupted): no spend on it was "
                "acknowledged; inspect the file and remove the partial line to continue"
            )
        for raw in data.splitlines():
            self._verify_line(raw)
        self._offset = size

    def _verify_line(self, raw: bytes) -> None:
        where = f"{self.path}: line {self._seq + 1}"
        try:
            entry = json.loads(raw)
        except ValueError:
            raise LedgerError(f"{where}: not JSON") from None
        if not isinstance(entry, dict) or set(entry) != ENTRY_FIELDS:
            raise LedgerError(f"{where}: fields are not exactly {sorted(ENTRY_FIELDS)}")
        if _canonical(entry) != raw:
            raise LedgerError(f"{where}: not in canonical form (edited by hand?)")
        if entry["seq"] != self._seq:
            raise LedgerError(f"{where}: seq is {entry['seq']!r}, expected {self._seq} (line deleted, inserted or moved)")
        if entry["prev"] != self._prev:
            raise LedgerError(f"{where}: prev does not match the previous line's hash (a line was edited or removed)")
        data = entry["data"]
        if not isinstance(data, dict):
            raise LedgerError(f"{where}: data is not an object")
        if self._seq == 0:
            self._check_budget(entry, where)
        elif entry["event"] == "spend":
            self._apply_spend(entry, where)
        else:
            raise LedgerError(f"{where}: event {entry['event']!r} is not a spend")
        self._prev = hashlib.sha256(raw).hexdigest()
        self._heads.append(self._prev)
        self._seq += 1

    def _check_budget(self, entry: dict[str, Any], where: str) -> None:
        data = entry["data"]
        if entry["event"] != "budget":
            raise LedgerError(f"{where}: the first entry must be the budget, not {entry['event']!r}")
        recorded = (data.get("collaboration"), _amount(data.get("epsilon"), where), _amount(data.get("delta"), where),
                    tuple(data.get("outputs") or ()))
        configured = (self.collaboration, self.budget.epsilon, self.budget.delta, self.budget.outputs)
        if recorded != configured:
            raise LedgerError(
                f"{where}: the ledger's budget is collaboration={recorded[0]!r} epsilon={recorded[1]} "
                f"delta={recorded[2]} outputs={list(recorded[3])}, the config says collaboration={configured[0]!r} "
                f"epsilon={configured[1]} delta={configured[2]} outputs={list(configured[3])}: a budget cannot be "
                "changed on an existing ledger (a new budget needs a new collaboration and ledger)"
            )

    def _apply_spend(self, entry: dict[str, Any], where: str) -> None:
        data = entry["data"]
        eps, delta = _amount(data.get("epsilon"), where), _amount(data.get("delta"), where)
        queries = data.get("queries")
        if not isinstance(queries, list) or not queries or not all(isinstance(q, dict) for q in queries):
            raise LedgerError(f"{where}: a spend lists its queries as objects")
        parts_eps = sum((_amount(q.get("epsilon"), where) for q in queries), Decimal(0))
        parts_delta = sum((_amount(q.get("delta"), where) for q in queries), Decimal(0))
        if (parts_eps, parts_delta) != (eps, delta):
            raise LedgerError(f"{where}: the spend's total ({eps}, {delta}) is not the sum of its queries")
        self.spent_epsilon += eps
        self.spent_delta += delta
        if self.spent_epsilon > self.budget.epsilon or self.spent_delta > self.budget.delta:
            raise LedgerError(f"{where}: the recorded spends exceed the budget: the ledger was not written by this runtime")
        self.spends.append(Spend(
            entry["seq"], str(data.get("job")), str(data.get("output")), eps, delta,
            tuple(str(q.get("query")) for q in queries), hashlib.sha256(_canonical(entry)).hexdigest(),
        ))

    def _append(self, fd: int, event: str, data: dict[str, Any]) -> str:
        entry = {"seq": self._seq, "time": _now(), "event": event, "data": data, "prev": self._prev}
        line = _canonical(entry)
        payload = line + b"\n"
        written = os.write(fd, payload)
        if written != len(payload):
            raise LedgerError(f"{self.path}: short write ({written} of {len(payload)} bytes): stop and inspect")
        os.fsync(fd)
        self._offset += len(payload)
        self._verify_line(line)  # the same code path as reading: state is only ever derived from lines
        return self._prev

    # --- spending ------------------------------------------------------------------------------------

    def check_mirrored(self, audited: Sequence[Mapping[str, Any]]) -> None:
        """Check the ledger against the `privacy-spend` entries of the signed audit logs (`audited_spends`):
        they must be the ledger's first spends, field for field. A rebuilt chain with smaller spends, or one
        rolled back, fails here although its own chain verifies. Ledger spends after the audited ones are
        charges whose mirror was never written (a crash after the charge): over-counted, never under."""
        if len(audited) > len(self.spends):
            raise LedgerError(f"{self.path}: the audit logs record {len(audited)} spends, the ledger {len(self.spends)}: "
                              "it was rolled back or replaced; restore it, do not run queries")
        for number, (entry, spend) in enumerate(zip(audited, self.spends, strict=False), start=1):
            ours = {"collaboration": self.collaboration, "job": spend.job, "output": spend.output,
                    "epsilon": str(spend.epsilon), "delta": str(spend.delta), "head": spend.head}
            if dict(entry) != ours:
                raise LedgerError(f"{self.path}: spend {number} is {ours}, the signed audit log says {dict(entry)}: "
                                  "the ledger was rewritten; restore it, do not run queries")

    @property
    def remaining(self) -> tuple[Decimal, Decimal]:
        return self.budget.epsilon - self.spent_epsilon, self.budget.delta - self.spent_delta

    @property
    def head(self) -> str:
        return self._prev

    def charge(self, job: str, output: str, charges: Sequence[Charge]) -> Spend:
        """Record the whole job's cost in one entry, or refuse it (`BudgetExceeded`) and write nothing."""
        if not charges:
            raise BudgetExceeded(f"job {job!r} has no queries to charge")
        if self.budget.outputs and output not in self.budget.outputs:
            raise BudgetExceeded(
                f"job {job!r} writes output {output!r}, which privacy.outputs does not declare "
                f"({list(self.budget.outputs)}): declare it in ccp:collaboration.privacy.outputs"
            )
        eps = sum((c.epsilon for c in charges), Decimal(0))
        delta = sum((c.delta for c in charges), Decimal(0))
        if any(c.epsilon < 0 or c.delta < 0 for c in charges):
            raise BudgetExceeded(f"job {job!r}: negative cost in {charges}")
        with self._lock:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._sync(fd)
                rem_eps, rem_delta = self.remaining
                if eps > rem_eps or delta > rem_delta:
                    raise BudgetExceeded(
                        f"job {job!r} costs epsilon={eps} delta={delta}, the remaining budget is "
                        f"epsilon={rem_eps} delta={rem_delta} (of {self.budget.epsilon}, {self.budget.delta}): "
                        "refused before touching data; lower the job's epsilon or drop queries"
                    )
                self._append(fd, "spend", {
                    "job": job,
                    "output": output,
                    "epsilon": str(eps),
                    "delta": str(delta),
                    "queries": [
                        {"query": c.query, "epsilon": str(c.epsilon), "delta": str(c.delta)} for c in charges
                    ],
                })
            finally:
                os.close(fd)
            return self.spends[-1]


def audited_spends(logs: Sequence[Path], collaboration: str, check_evidence: Any = None) -> list[dict[str, Any]]:
    """The collaboration's `privacy-spend` entries from its workload runs' audit logs (oldest first), each
    log verified first (chain, signatures and, with `check_evidence`, the key's attestation); a log that does
    not verify is `LedgerError`: the spends it should pin cannot be trusted."""
    from enclave_runtime import audit

    spends: list[dict[str, Any]] = []
    for log in logs:
        report = audit.verify(log, check_evidence=check_evidence)
        if not report.valid:
            raise LedgerError(f"audit log {log} does not verify ({report.message}): it cannot vouch for the ledger")
        for line in Path(log).read_bytes().splitlines()[:report.entries]:  # a truncated log: its verified entries
            entry = json.loads(line)
            if entry["event"] == "privacy-spend" and entry["data"].get("collaboration") == collaboration:
                spends.append(entry["data"])
    return spends


# --- OpenDP statistics --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """A DP statistic over one column of the joint data. `kind`: count (rows) or mean (clamped to bounds)."""

    name: str
    column: str
    kind: str
    epsilon: float
    bounds: tuple[float, float] | None = None


@dataclass(frozen=True)
class Release:
    name: str
    value: float
    epsilon: Decimal


def _opendp() -> Any:
    import opendp.prelude as dp

    dp.enable_features("contrib")
    return dp


# --- noise for vectors: every DP noise draw of the runtime comes from OpenDP --------------------------
# OpenDP samples its Gaussian and Laplace noise exactly, on a fine lattice, from a CSPRNG (OpenSSL's
# RAND_bytes; in a build without OpenSSL, Rust rand's OS-seeded ChaCha generator). numpy's generator (what
# Flower's DP wrappers use) is a PRNG whose output is predictable from its seed or state, and inverse-CDF
# floating-point sampling leaks through the low bits (Mironov 2012).


def _float_vectors(metric: Literal["l1", "l2"]) -> tuple[Any, Any]:
    dp = _opendp()
    distance = dp.l2_distance(T=float) if metric == "l2" else dp.l1_distance(T=float)
    return dp.vector_domain(dp.atom_domain(T=float, nan=False)), distance


def gaussian_mechanism(sigma: float) -> Any:
    """Adds N(0, sigma^2) to each coordinate; its privacy map is OpenDP's zCDP rho = (d_in / sigma)^2 / 2."""
    return _opendp().m.make_gaussian(*_float_vectors("l2"), scale=sigma)


def laplace_mechanism(epsilon: float, l1_sensitivity: float) -> Any:
    """Adds Laplace noise to each coordinate, its scale calibrated so the privacy map at `l1_sensitivity`
    is at most `epsilon` (pure DP: no delta is spent)."""
    dp = _opendp()
    return dp.binary_search_chain(
        lambda scale: dp.m.make_laplace(*_float_vectors("l1"), scale=scale), d_in=l1_sensitivity, d_out=epsilon
    )


def noised(mechanism: Any, values: np.ndarray) -> np.ndarray:
    """`values` (any shape) released through an OpenDP vector mechanism."""
    flat = [float(v) for v in np.asarray(values, dtype=np.float64).ravel()]
    return np.asarray(mechanism(flat), dtype=np.float64).reshape(np.shape(values))


def _measurement(query: Query) -> tuple[Any, Callable[[Any], float]]:
    """The OpenDP measurement for `query`, calibrated so its privacy map at d_in=1 is <= query.epsilon.

    Privacy unit: one individual is one row of the joint data (symmetric distance 1), i.e. a patient
    appears at one site only. A mean is released as a noisy clamped sum over a noisy count (half of the
    epsilon each), so the row count stays private too.
    """
    dp = _opendp()
    space = dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.symmetric_distance()
    if query.kind == "count":
        count = space >> dp.t.then_count()
        meas = dp.binary_search_chain(lambda s: count >> dp.m.then_laplace(scale=s), d_in=1, d_out=query.epsilon)
        return meas, lambda out: float(out)
    if query.kind == "mean":
        if query.bounds is None or not query.bounds[0] < query.bounds[1]:
            raise ValueError(f"query {query.name!r}: a mean needs bounds (lower < upper), got {query.bounds!r}")
        lo, hi = (float(b) for b in query.bounds)
        half = query.epsilon / 2
        total = space >> dp.t.then_clamp((lo, hi)) >> dp.t.then_sum()
        noisy_sum = dp.binary_search_chain(lambda s: total >> dp.m.then_laplace(scale=s), d_in=1, d_out=half)
        count = space >> dp.t.then_count()
        noisy_count = dp.binary_search_chain(lambda s: count >> dp.m.then_laplace(scale=s), d_in=1, d_out=half)
        meas = dp.c.make_composition([noisy_sum, noisy_count])
        return meas, lambda out: float(out[0]) / max(float(out[1]), 1.0)
    raise ValueError(f"query {query.name!r}: kind {query.kind!r} is not one of count, mean")


def run_job(
    ledger: PrivacyLedger,
    job: str,
    output: str,
    queries: Sequence[Query],
    load: Callable[[], Mapping[str, np.ndarray]],
) -> tuple[list[Release], Spend]:
    """Calibrate every query, charge the job's total as OpenDP's privacy maps state it, then load the data
    and release. A refused job raises `BudgetExceeded` and never calls `load`."""
    if not 0 < len(queries):
        raise ValueError(f"job {job!r} has no queries")
    for q in queries:
        if not (q.epsilon > 0 and np.isfinite(q.epsilon)):
            raise ValueError(f"query {q.name!r}: epsilon is {q.epsilon!r}; give a finite value above 0")
    built = [(q, *_measurement(q)) for q in queries]
    charges = [Charge(q.name, Decimal(str(float(meas.map(1))))) for q, meas, _ in built]
    spend = ledger.charge(job, output, charges)
    data = load()
    releases = []
    for (q, meas, finish), charge in zip(built, charges, strict=True):
        if q.column not in data:
            raise KeyError(f"query {q.name!r}: column {q.column!r} is not in the data ({sorted(data)}); "
                           "its budget is spent: fix the job before rerunning")
        column = [float(v) for v in np.asarray(data[q.column], dtype=np.float64)]
        releases.append(Release(q.name, finish(meas(column)), charge.epsilon))
    return releases, spend
