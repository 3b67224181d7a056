"""`make bench` (part 3): key-release latency per cloud against the local stand-ins.

For each party key of the dev stack, the approved workload's full release (fresh ephemeral key and
evidence, the official SDK's request, the stand-in's verification and policy evaluation, the unwrap)
is timed `RUNS` times; p50 and p99 are printed with their ratio to a bare loopback HTTPS/HTTP round trip
on the same server harness in the same run (the floor any stand-in call pays), since only same-run
ratios mean anything on shared machines. Run inside a session, a workload pays this once per key
(`KeySession` caches), never per request. Most of a release is the client's fresh RSA-2048 key (every
release proves possession of a new key, so it is not cached) and, on Azure, the stand-in's RSA-3072
release and the MAA round trip.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import requests

from enclave_runtime.attest.collateral import AMD_SERIAL_ZERO_WARNING
from policies.review import project
from policies.review.run import REPO_ROOT, ccp_settings, run_review
from standins.demo import _start
from standins.server import Running, json_response
from standins.stack import load, party_keys

RUNS = int(os.environ.get("CCP_BENCH_RELEASES", "50"))


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _floor() -> float:
    """Median of a bare round trip to the stand-ins' server harness (keep-alive session)."""
    with Running(lambda request: json_response(200, {})) as server, requests.Session() as session:
        samples = []
        for _ in range(max(RUNS, 50)):
            start = time.perf_counter()
            session.post(server.url + "/", data=b"{}").raise_for_status()
            samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    warnings.filterwarnings("ignore", message=AMD_SERIAL_ZERO_WARNING)
    with tempfile.TemporaryDirectory() as out:
        review = run_review(REPO_ROOT, "dev", Path(out), packs=[])
        if review.exit_code != 0:
            raise SystemExit(f"the dev review failed: {review.problems}")
        recording = load(Path(out) / "review-dev.json")
    settings = ccp_settings(project.load(REPO_ROOT, "dev"))
    floor = _floor()
    print(f"key release against the stand-ins, {RUNS} releases per key (bare loopback round trip: {floor * 1e3:.2f} ms)")
    print(f"{'party':<14} {'cloud':<6} {'p50 ms':>8} {'p99 ms':>8} {'p50/floor':>10}")
    for key in party_keys(recording):
        services = _start(key.cloud, recording, settings)
        try:
            wrapped = services.wrapper(key).wrap(os.urandom(32))
            releaser = services.releaser(key, "approved")
            releaser.unwrap(wrapped)  # warm the SDK client and the stand-in's caches
            samples = []
            for _ in range(RUNS):
                start = time.perf_counter()
                releaser.unwrap(wrapped)
                samples.append(time.perf_counter() - start)
        finally:
            services.stop()
        p50, p99 = statistics.median(samples), _percentile(samples, 0.99)
        print(f"{key.party:<14} {key.cloud:<6} {p50 * 1e3:>8.1f} {p99 * 1e3:>8.1f} {p50 / floor:>9.1f}x")


if __name__ == "__main__":
    main()
