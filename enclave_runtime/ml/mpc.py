"""MPC statistics with MPyC: cross-party totals (cohort sizes, sums for means) without revealing a site's value.

Each party runs one MPyC process (`python -m enclave_runtime.ml.mpc`, normally in its own TEE) with its
own integer vector. MPyC Shamir-shares every input among the m parties (threshold t = (m - 1) // 2), adds
the shares locally and opens only the totals, so a coalition of up to t parties learns nothing about
another party's vector beyond what the totals imply. Values are integers: a fractional statistic is sent
as fixed point (`scale`), so the secure result equals the plaintext computation exactly.

Limits: t = 0 for two parties (every party would hold every input in the clear), so fewer than three
parties are refused. The protocol is semi-honest (passively secure): a party that deviates from it can
corrupt the totals. The processes talk over local TCP here; between TEEs the channels must be mutually
authenticated (MPyC's `--ssl` with certificates bound to each TEE's attestation), which this module does
not set up. The vector length and the totals are public.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

MIN_PARTIES = 3
BITS = 64
TIMEOUT_SECONDS = 120.0
ROOT = Path(__file__).resolve().parents[2]  # the directory holding the enclave_runtime package


class MPCError(Exception):
    """The computation could not run or its parties disagree; no result is released."""


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def secure_sum(inputs: Mapping[str, Sequence[int]], *, timeout: float = TIMEOUT_SECONDS) -> list[int]:
    """Element-wise sum of every party's integer vector, computed by one MPyC process per party.

    Every party must give a vector of the same length with values within +-2**(BITS - 2). Returns the
    totals every party opened (they must all agree).
    """
    parties = list(inputs)
    if len(parties) < MIN_PARTIES:
        raise MPCError(
            f"{len(parties)} parties: MPC needs at least {MIN_PARTIES} (threshold (m-1)//2 is 0 for fewer, "
            "so every party would see every input)"
        )
    lengths = {len(v) for v in inputs.values()}
    if len(lengths) != 1 or 0 in lengths:
        raise MPCError(f"every party's vector must have the same non-zero length, got {sorted(lengths)}")
    limit = 2 ** (BITS - 2)
    for party, vector in inputs.items():
        for value in vector:
            if not isinstance(value, int) or not -limit < value < limit:
                raise MPCError(f"party {party!r}: value {value!r} is not an integer within +-2**{BITS - 2}")
    ports = _free_ports(len(parties))
    addresses = [arg for port in ports for arg in ("-P", f"localhost:{port}")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    with tempfile.TemporaryDirectory(prefix="ccp-mpc-") as tmp:
        procs = []
        for index, party in enumerate(parties):
            src, dst = Path(tmp, f"in-{index}.json"), Path(tmp, f"out-{index}.json")
            src.write_text(json.dumps([int(v) for v in inputs[party]]))
            cmd = [sys.executable, "-m", "enclave_runtime.ml.mpc", *addresses, "-I", str(index), "--no-log",
                   "--vector-file", str(src), "--result-file", str(dst)]
            procs.append((party, dst, subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)))
        results: dict[str, list[int]] = {}
        failures = []
        for party, dst, proc in procs:
            try:
                out, _ = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                for _, _, other in procs:
                    other.kill()
                raise MPCError(f"party {party!r} did not finish within {timeout:g}s") from None
            if proc.returncode != 0 or not dst.exists():
                failures.append(f"{party} (exit {proc.returncode}): {out.decode(errors='replace')[-500:]}")
                continue
            results[party] = json.loads(dst.read_text())
    if failures:
        raise MPCError("MPC parties failed: " + "; ".join(failures))
    opened = {tuple(v) for v in results.values()}
    if len(opened) != 1:
        raise MPCError(f"the parties opened different totals: {results}")
    return list(opened.pop())


def _party_main() -> None:
    """One party: read its vector, secret-share it, add all parties' shares, open the totals, write them."""
    import argparse

    from mpyc.runtime import mpc  # parses and removes MPyC's own options (-P, -I, --no-log) from sys.argv

    parser = argparse.ArgumentParser(description="one MPyC party of a ccp secure sum")
    parser.add_argument("--vector-file", required=True)
    parser.add_argument("--result-file", required=True)
    args = parser.parse_args()
    vector = json.loads(Path(args.vector_file).read_text())

    async def main() -> list[int]:
        secint = mpc.SecInt(BITS)
        await mpc.start()
        shared = mpc.input([secint(v) for v in vector])  # one list per party, in party order
        totals = [mpc.sum([party[k] for party in shared]) for k in range(len(vector))]
        opened = await mpc.output(totals)
        await mpc.shutdown()
        return [int(v) for v in opened]

    Path(args.result_file).write_text(json.dumps(mpc.run(main())))


if __name__ == "__main__":
    _party_main()


def cohort_vector(x: Sequence[Sequence[float]], y: Sequence[float], column: int, scale: int) -> list[int]:
    """A site's contribution to the joint cohort statistic: [rows, malignant rows (label 0), sum of the
    column in fixed point (each value rounded to 1/scale first, so sums are exact integers)]."""
    return [len(y), sum(1 for label in y if label == 0), sum(round(float(row[column]) * scale) for row in x)]


def cohort_statistics(totals: Sequence[int], scale: int) -> dict[str, float | int]:
    """The released statistic from the opened totals: joint cohort size, malignant count, column mean."""
    rows, malignant, column_sum = totals
    if rows <= 0:
        raise MPCError("the joint cohort is empty")
    return {"rows": rows, "malignant": malignant, "mean": column_sum / scale / rows}
