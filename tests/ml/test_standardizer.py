"""The DP standardizer: each party's moments summed by SecAgg+ (the sum exact, no party's vector on the wire),
one row's L1 sensitivity bounded by the public clamping ranges, the Laplace noise calibrated to it, and the
utility it buys on the seeded public split: raw-feature federated training is lost, the DP standardizer
recovers most of what a plaintext pooled standardizer gives."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from enclave_runtime.ml import data, dp, fl
from enclave_runtime.ml.attestation import AggregatorIdentity, AttestationGate
from enclave_runtime.ml.config import DPStandardizer, FederatedJob
from tests.ml.conftest import PARTIES
from tests.ml.test_fl import float_words, from_party, words_in

FEATURES = 30
JOB = FederatedJob(rounds=5, standardizer=DPStandardizer(epsilon=1.0))


def loaders(dataset: data.Dataset) -> dict[str, fl.Loader]:
    return {p: (lambda p=p: dataset.parties[p]) for p in PARTIES}


def test_the_secure_sum_of_moments_is_the_plaintext_sum_and_no_party_vector_leaves(
    dataset: data.Dataset, gates: dict[str, AttestationGate], approved: AggregatorIdentity
) -> None:
    bounds = data.Bounds.of(dataset.feature_names)
    result = fl.run_moments(JOB, loaders(dataset), bounds, lambda values: values, gates, approved)  # no noise
    vectors = {p: data.Moments.of(bounds.unit(dataset.parties[p].x)).vector() for p in PARTIES}
    # SecAgg+ quantizes each coordinate of vector / maxRows to 2 * 8 / 2^22: ~0.004 per party after scaling back
    np.testing.assert_allclose(result.parameters[0], sum(vectors.values()), atol=0.03)
    assert result.parameters[0][0] == pytest.approx(426, abs=0.03)
    wire = from_party(result)
    for party, vector in vectors.items():
        assert words_in(wire, float_words([vector / JOB.standardizer.max_rows])) == set(), party


def test_the_aggregator_noises_the_scaled_back_sum_before_anything_leaves(
    dataset: data.Dataset, gates: dict[str, AttestationGate], approved: AggregatorIdentity,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bounds = data.Bounds.of(dataset.feature_names)
    seen: list[list[float]] = []
    returned: list[Any] = []
    aggregate = fl.NoisySum.aggregate_fit

    def recording(self: fl.NoisySum, *args: Any) -> Any:
        returned.append(aggregate(self, *args))
        return returned[-1]

    monkeypatch.setattr(fl.NoisySum, "aggregate_fit", recording)

    def shifted(values: list[float]) -> list[float]:  # a stand-in mechanism whose "noise" is visible
        seen.append(values)
        return [v + 1000.0 for v in values]

    result = fl.run_moments(JOB, loaders(dataset), bounds, shifted, gates, approved)
    plain = sum(data.Moments.of(bounds.unit(dataset.parties[p].x)).vector() for p in PARTIES)
    (noised_input,) = seen  # one release, of the sum (not the mean SecAgg+ hands the aggregator)
    np.testing.assert_allclose(noised_input, plain, atol=0.03)
    np.testing.assert_allclose(result.parameters[0], np.asarray(noised_input) + 1000.0)
    # what Flower gets back as the round's global parameters is the noised sum as well
    (parameters, _metrics), = returned
    np.testing.assert_allclose(fl.parameters_to_ndarrays(parameters)[0], result.parameters[0])


def test_one_row_moves_the_sum_by_at_most_the_declared_sensitivity(dataset: data.Dataset) -> None:
    """Clamped to the public ranges, a row adds at most 1 to each of the 2d + 1 coordinates: an outlier far
    beyond every bound adds exactly 61, no more; the sensitivity charged adds only SecAgg+'s rounding."""
    bounds = data.Bounds.of(dataset.feature_names)
    x = dataset.parties[PARTIES[0]].x
    outlier = np.vstack([x, np.full((1, FEATURES), 1e9)])
    moved = data.Moments.of(bounds.unit(outlier)).vector() - data.Moments.of(bounds.unit(x)).vector()
    assert np.abs(moved).sum() == pytest.approx(2 * FEATURES + 1)
    assert 61 < fl.standardizer_sensitivity(JOB, FEATURES) < 62
    laplace = dp.laplace_mechanism(1.0, fl.standardizer_sensitivity(JOB, FEATURES))
    assert 0.999 < float(laplace.map(fl.standardizer_sensitivity(JOB, FEATURES))) <= 1.0


def test_noisy_moments_give_a_usable_standardizer() -> None:
    """Noise can make the count, mean or variance impossible; each is clamped to what [0, 1] values allow."""
    bounds = data.Bounds(np.zeros(2), np.array([10.0, 100.0]))
    noisy = data.Moments(-3.0, np.array([-5.0, 2.0]), np.array([1.0, -4.0]))
    standardize = data.Standardizer.from_noisy_moments(noisy, bounds)
    np.testing.assert_allclose(standardize.center, [0.0, 100.0])  # mean clamped to [0, 1] of each range
    np.testing.assert_allclose(standardize.scale, [np.sqrt(0.25) * 10, np.sqrt(data.VARIANCE_FLOOR) * 100])


def test_a_standardizer_needs_secure_aggregation() -> None:
    with pytest.raises(ValueError, match="standardizer needs secure aggregation"):
        FederatedJob(secure_aggregation=False, standardizer=DPStandardizer(epsilon=1.0))


def test_auroc_with_the_dp_standardizer_on_the_seeded_public_split(
    dataset: data.Dataset, standardize: data.Standardizer, gates: dict[str, AttestationGate], approved: AggregatorIdentity
) -> None:
    """Federated (SecAgg+, no DP-FedAvg) test AUROC: raw features, the plaintext pooled standardizer (a
    baseline no collaboration may release), and the DP standardizer at epsilon 1 (median of 5 runs: its
    noise is OpenDP's CSPRNG, unseedable, so the bound is loose; observed ~0.98)."""
    bounds = data.Bounds.of(dataset.feature_names)

    def auroc(scaling: data.Standardizer) -> float:
        result = fl.run_federated(JOB, loaders(dataset), scaling, FEATURES, gates, approved)
        return fl.auroc(result.parameters, scaling(dataset.test.x), dataset.test.y)

    def dp_scaling() -> data.Standardizer:
        mechanism = dp.laplace_mechanism(1.0, fl.standardizer_sensitivity(JOB, FEATURES))
        noisy = fl.run_moments(JOB, loaders(dataset), bounds, mechanism, gates, approved).parameters[0]
        return data.Standardizer.from_noisy_moments(data.Moments.from_vector(noisy), bounds)

    raw = auroc(data.Standardizer.identity(FEATURES))
    pooled = auroc(standardize)
    private = float(np.median([auroc(dp_scaling()) for _ in range(5)]))
    # raw features (areas ~1e3) take steps that overflow SecAgg+'s clipping range (+-8): the model is lost
    assert raw < 0.9 < pooled
    assert private > 0.95 and pooled - private < 0.04, (raw, private, pooled)
