"""`make bench` (in `.venv-ml`): what the privacy-preserving computations cost against their plain baselines.

All in one run, so the ratios hold on a shared, noisy machine:
- federated learning: seconds per round with SecAgg+ against plain FedAvg, for 3, 10 and 30 simulated
  parties (the breast-cancer training split cut into that many non-IID parts), each party behind its
  attestation gate as in the job. SecAgg+ shares each party's mask keys with a few neighbours only
  (`numShares`, grown like log2 of the party count here), so its cost per party should stay nearly flat as
  the collaboration grows, where the original SecAgg's grows linearly
  (Bell et al., CCS 2020, https://eprint.iacr.org/2020/704);
- HE inference: ms per scored row under TenSEAL CKKS (encrypt, score, decrypt) against the plaintext dot
  product, on the 143 held-out rows;
- MPC statistic: the cohort sums across 3 MPyC parties (local processes) against the plaintext sum.

Medians of RUNS runs after one warm-up each. Prints ratios; never asserts a time.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Callable

from enclave_runtime.ml import data, fl, he, mpc
from enclave_runtime.ml.config import FederatedJob, SecAggParams
from enclave_runtime.ml.job import simulated_aggregator
from enclave_runtime.simulate.nitro import image_pcrs

RUNS = 3
ROUNDS = 2
PARTY_COUNTS = (3, 10, 30)


def _median(action: Callable[[], object], runs: int = RUNS) -> float:
    action()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def _shares(parties: int) -> SecAggParams:
    """numShares ~ log2(parties) + 1, odd (flwr's SecAgg+ picks numShares - 1 neighbours, half on each side
    of a party in its ring, and fails on an even count), at least 3 and at most the parties; the threshold
    a majority of them."""
    shares = max(3, math.ceil(math.log2(parties)) + 1)
    shares = min(parties, shares + 1 - shares % 2)
    return SecAggParams(num_shares=shares, reconstruction_threshold=shares // 2 + 1)


class Federation:
    """The job's own attestation setup (`job.simulated_aggregator`): a simulated aggregator image the
    parties' gates approve; each timed run admits it, as the job does."""

    measurements = {"version": "1", "nitro": {"pcr0": image_pcrs()[0].hex()}}

    def round_seconds(self, parties: int, secure: bool) -> float:
        names = [f"party-{i:02d}" for i in range(parties)]
        dataset = data.load(names)
        standardize = data.Standardizer.pooled(dataset.parties)
        job = FederatedJob(rounds=ROUNDS, local_epochs=1, secure_aggregation=secure, sec_agg=_shares(parties))

        def train() -> None:
            identity, gates = simulated_aggregator(self.measurements, names)
            result = fl.run_federated(job, {p: (lambda p=p: dataset.parties[p]) for p in names}, standardize,
                                      len(dataset.feature_names), gates, identity)
            if result.rounds_completed != ROUNDS or result.refusals:
                raise SystemExit(f"{parties} parties: {result.rounds_completed} rounds, refusals {result.refusals}")

        return _median(train) / ROUNDS


def federated() -> None:
    federation = Federation()
    print(f"{'parties':>7} {'numShares':>9} {'FedAvg s/round':>15} {'SecAgg+ s/round':>16} {'ratio':>7} "
          f"{'SecAgg+ ms/party':>17}")
    for parties in PARTY_COUNTS:
        plain = federation.round_seconds(parties, secure=False)
        secure = federation.round_seconds(parties, secure=True)
        print(f"{parties:>7} {_shares(parties).num_shares:>9} {plain:>15.3f} {secure:>16.3f} "
              f"{secure / plain:>6.1f}x {1000 * secure / parties:>17.1f}")


def homomorphic(dataset: data.Dataset) -> None:
    standardize = data.Standardizer.pooled(dataset.parties)
    model = fl.train_centralized(dataset.parties.values(), standardize, FederatedJob(rounds=3))
    x = standardize(dataset.test.x)
    rows = len(x)

    def encrypted() -> None:
        client = he.HEClient()
        batch = client.encrypt(x)
        client.decrypt(he.HEScorer(model[0], float(model[1][0])).score(batch), batch.rows)

    secure = _median(encrypted)
    plain = _median(lambda: fl.scores(model, x), runs=100)
    print(f"HE inference (CKKS, {rows} rows, encrypt+score+decrypt): {1000 * secure / rows:.2f} ms/row, "
          f"plaintext {1000 * plain / rows:.5f} ms/row ({secure / plain:,.0f}x)")


def multiparty(dataset: data.Dataset) -> None:
    column, scale = dataset.feature_names.index("mean radius"), 1000
    inputs = {p: mpc.cohort_vector(part.x, part.y, column, scale) for p, part in dataset.parties.items()}

    def plaintext() -> list[int]:
        return [sum(values) for values in zip(*inputs.values())]

    secure = _median(lambda: mpc.secure_sum(inputs))
    plain = _median(plaintext, runs=100)
    print(f"MPC cohort sums ({len(inputs)} MPyC parties, {len(plaintext())} values): {secure:.2f} s, "
          f"plaintext {1e6 * plain:.1f} us ({secure / plain:,.0f}x; mostly starting the party processes)")


def main() -> int:
    print(f"privacy-preserving ML (median of {RUNS} runs after one warm-up; {ROUNDS} rounds per FL run)")
    federated()
    dataset = data.load(("hospital-aws", "hospital-azure", "hospital-gcp"))
    homomorphic(dataset)
    multiparty(dataset)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
