"""Federated learning with SecAgg+: accuracy on real data, the aggregate equals plain FedAvg, nothing
individual crosses the party->server boundary, and an unattested aggregator gets nothing at all."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import pytest
from flwr.common import NDArrays

from enclave_runtime.ml import data, fl
from enclave_runtime.ml.attestation import AggregatorIdentity, AttestationGate
from enclave_runtime.ml.config import ConfigError, FederatedJob, SecAggParams
from enclave_runtime.simulate.nitro import SimulatedNitro
from tests.ml.conftest import CHANNEL_KEY, PARTIES, aggregator

FEATURES = 30


class Observed:
    """The plain updates as each party computed them (recorded inside the party, never sent)."""

    def __init__(self) -> None:
        self.by_round: dict[int, dict[str, tuple[NDArrays, int]]] = defaultdict(dict)

    def __call__(self, party: str, server_round: int, update: NDArrays, examples: int) -> None:
        self.by_round[server_round][party] = (update, examples)


def run(
    job: FederatedJob, dataset: data.Dataset, standardize: data.Standardizer,
    gates: dict[str, AttestationGate], identity: AggregatorIdentity | None, observer: Any = None,
) -> fl.FederatedResult:
    return fl.run_federated(
        job,
        {p: (lambda p=p: dataset.parties[p]) for p in PARTIES},
        standardize, FEATURES, gates, identity, observer,
    )


def float_words(arrays: NDArrays) -> set[bytes]:
    """Every non-zero float64 in `arrays` as its 8 wire bytes."""
    return {v.tobytes() for a in arrays for v in np.asarray(a, dtype=np.float64).ravel() if v != 0.0}


def words_in(blob: bytes, words: set[bytes]) -> set[bytes]:
    return {w for w in words if w in blob}


def from_party(result: fl.FederatedResult) -> bytes:
    return b"".join(w.data for w in result.transcript if w.direction == "from-party")


@pytest.fixture(scope="module")
def secure_run(dataset: data.Dataset, standardize: data.Standardizer, approved: AggregatorIdentity, store: Any, policy: Any) -> tuple[fl.FederatedResult, Observed]:
    observed = Observed()
    gates = {p: AttestationGate(store, policy) for p in PARTIES}
    result = run(FederatedJob(rounds=5, local_epochs=5), dataset, standardize, gates, approved, observed)
    return result, observed


def test_secagg_model_matches_centralized_training_on_real_data(
    secure_run: tuple[fl.FederatedResult, Observed], dataset: data.Dataset, standardize: data.Standardizer
) -> None:
    result, _ = secure_run
    assert result.rounds_completed == 5 and result.parameters is not None and not result.refusals
    x_test = standardize(dataset.test.x)
    federated = fl.auroc(result.parameters, x_test, dataset.test.y)
    centralized = fl.auroc(fl.train_centralized(dataset.parties.values(), standardize, FederatedJob(rounds=5, local_epochs=5)), x_test, dataset.test.y)
    assert federated > 0.97, federated
    assert abs(federated - centralized) < 0.02, (federated, centralized)


def test_the_parties_split_is_non_iid_by_a_feature(dataset: data.Dataset) -> None:
    benign = {p: float(part.y.mean()) for p, part in dataset.parties.items()}
    assert max(benign.values()) - min(benign.values()) > 0.4, benign
    texture = dataset.feature_names.index(data.SPLIT_FEATURE)
    tops = [part.x[:, texture].max() for part in dataset.parties.values()]
    lows = [part.x[:, texture].min() for part in dataset.parties.values()]
    assert tops[0] <= lows[1] and tops[1] <= lows[2]  # disjoint texture ranges, in party order
    assert sum(len(p) for p in dataset.parties.values()) + len(dataset.test) == 569


def test_aggregate_equals_plain_fedavg_of_the_updates(secure_run: tuple[fl.FederatedResult, Observed]) -> None:
    result, observed = secure_run
    assert sorted(observed.by_round) == [1, 2, 3, 4, 5]
    for server_round, received in enumerate(result.strategy.seen, start=1):
        updates = observed.by_round[server_round]
        assert sorted(updates) == sorted(PARTIES)
        expected = fl.fedavg([update for update, _ in updates.values()])
        # SecAgg+ hands the strategy one result per party for compatibility, each carrying the same sum.
        for arrays in received:
            for got, want in zip(arrays, expected, strict=True):
                np.testing.assert_allclose(got, want, atol=1e-4)
    np.testing.assert_allclose(result.parameters[0], result.strategy.seen[-1][0][0])


def test_the_server_strategy_and_the_wire_see_no_individual_update(secure_run: tuple[fl.FederatedResult, Observed]) -> None:
    result, observed = secure_run
    wire = from_party(result)
    for server_round, received in enumerate(result.strategy.seen, start=1):
        for party, (update, _) in observed.by_round[server_round].items():
            for arrays in received:  # what the strategy got is never one party's update
                assert not all(np.allclose(a, u, atol=1e-3) for a, u in zip(arrays, update, strict=True)), party
            assert words_in(wire, float_words(update)) == set(), f"round {server_round}: {party}'s update left it"


def test_the_check_finds_updates_when_aggregation_is_plain(
    dataset: data.Dataset, standardize: data.Standardizer, gates: dict[str, AttestationGate], approved: AggregatorIdentity
) -> None:
    """Positive control: without SecAgg+ the same check finds every update on the wire and in the strategy."""
    observed = Observed()
    result = run(FederatedJob(rounds=2, secure_aggregation=False), dataset, standardize, gates, approved, observed)
    wire = from_party(result)
    for server_round in (1, 2):
        for party, (update, _) in observed.by_round[server_round].items():
            assert words_in(wire, float_words(update)) == float_words(update), party
        assert len({a[0].tobytes() for a in result.strategy.seen[server_round - 1]}) == len(PARTIES)


def test_no_raw_row_leaves_a_party(
    secure_run: tuple[fl.FederatedResult, Observed], dataset: data.Dataset, standardize: data.Standardizer
) -> None:
    result, _ = secure_run
    wire = from_party(result)
    for party, part in dataset.parties.items():
        raw = float_words([part.x]) | float_words([standardize(part.x)])
        assert words_in(wire, raw) == set(), party
        assert all(row.tobytes() not in wire for row in part.x)


def test_parties_send_nothing_to_an_unattested_or_unapproved_aggregator(
    sim: SimulatedNitro, dataset: data.Dataset, standardize: data.Standardizer,
    gates: dict[str, AttestationGate], approved: AggregatorIdentity,
) -> None:
    other_pki = SimulatedNitro()  # genuine-looking documents under a root nobody pinned
    cases = {
        "no evidence": (None, "presented no attestation"),
        "unknown root": (aggregator(other_pki, CHANNEL_KEY), "did not verify"),
        "unapproved image": (aggregator(sim, CHANNEL_KEY, {0: b"\xee" * 48}), "pcr0"),
        "debug enclave": (aggregator(sim, CHANNEL_KEY, debug=True), "debug"),
        # the approved aggregator's genuine evidence, replayed on a channel with another key (a relay)
        "evidence for another channel": (AggregatorIdentity("aws-nitro", approved.evidence, b"\x01" * 32), "user_data"),
    }
    for case, (identity, reason) in cases.items():
        case_gates = {p: AttestationGate(g.store, g.policy, at=g.at) for p, g in gates.items()}
        result = run(FederatedJob(rounds=2), dataset, standardize, case_gates, identity)
        assert result.parameters is None and result.rounds_completed == 0, case
        assert result.loaded == set(), f"{case}: a party opened its data"
        replies = [w for w in result.transcript if w.direction == "from-party"]
        assert replies and all(w.error for w in replies), case
        assert all(not w.message().has_content() for w in replies), case
        assert sorted(result.refusals) == sorted(PARTIES), case
        assert all(reason in why for why in result.refusals.values()), (case, result.refusals)


def test_a_job_secagg_cannot_honour_is_refused_before_any_party_trains(
    dataset: data.Dataset, standardize: data.Standardizer, gates: dict[str, AttestationGate], approved: AggregatorIdentity
) -> None:
    with pytest.raises(ValueError, match="reconstructionThreshold is 3 but must be below secAgg.numShares"):
        SecAggParams(num_shares=3, reconstruction_threshold=3)
    with pytest.raises(ConfigError, match="numShares is 4 but only 3 parties"):
        run(FederatedJob(sec_agg=SecAggParams(num_shares=4)), dataset, standardize, gates, approved)


def test_even_share_count_below_the_parties_is_refused_because_flower_cannot_run_it(
    store: Any, policy: Any, approved: AggregatorIdentity
) -> None:
    """Five parties, numShares 4: the pinned flwr itself trains nothing (its workflow uses 5 shares for the
    ring and tells the parties 4, and each party's key sharing fails), so the job refuses it up front. If
    a future flwr fixes this, the first half fails and the refusal can go."""
    names = [f"site-{i}" for i in range(5)]
    five = data.load(names)
    standardize = data.Standardizer.pooled(five.parties)
    loaders = {p: (lambda p=p: five.parties[p]) for p in names}
    job = FederatedJob(rounds=1, sec_agg=SecAggParams(num_shares=4, reconstruction_threshold=3))

    def gates() -> dict[str, AttestationGate]:
        return {p: AttestationGate(store, policy) for p in names}

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FederatedJob, "check_parties", lambda self, parties: None)
        unchecked = fl.run_federated(job, loaders, standardize, FEATURES, gates(), approved)
    assert unchecked.parameters is None and unchecked.rounds_completed == 0
    with pytest.raises(ConfigError, match="numShares: 4 is even and below the 5 parties.*use an odd number, e.g. 5"):
        fl.run_federated(job, loaders, standardize, FEATURES, gates(), approved)
    odd = job.model_copy(update={"sec_agg": SecAggParams(num_shares=5, reconstruction_threshold=3)})
    assert fl.run_federated(odd, loaders, standardize, FEATURES, gates(), approved).rounds_completed == 1
