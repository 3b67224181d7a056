"""DP-FedAvg: the accountant against independent references and against the noise actually added, the noise
drawn by OpenDP (not numpy's generator), clipping before SecAgg+ masking, the charge made to the ledger before
training, and the privacy/utility curve at epsilon 1, 3, 8 (on the seeded public split only)."""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm

from enclave_runtime.ml import accountant, dp, fl, job
from enclave_runtime.ml.config import ConfigError, DPFedAvg, FederatedJob, MLConfig
from tests.ml.conftest import APPROVED_PCR0, PARTIES


def test_accountant_matches_opendp_and_the_closed_forms() -> None:
    import opendp.prelude as odp

    odp.enable_features("contrib")
    # one Gaussian with sigma = sensitivity (z = 1): rho = 1/2 zCDP; OpenDP's zCDP -> (eps, delta) conversion
    space = odp.atom_domain(T=float, nan=False), odp.absolute_distance(T=float)
    curve = odp.c.make_zCDP_to_approxDP(odp.m.make_gaussian(*space, scale=1.0)).map(1.0)
    assert accountant.epsilon(1.0, 1, 1e-5) == pytest.approx(curve.epsilon(1e-5), abs=1e-3)  # 4.7284
    # T rounds at z compose to one Gaussian at z / sqrt(T)
    assert accountant.epsilon(2.0, 4, 1e-6) == pytest.approx(accountant.epsilon(1.0, 1, 1e-6), rel=1e-9)
    # never below the exact (tight) analytic Gaussian (Balle & Wang 2018, Thm. 8) and never far above it;
    # and below Mironov's plain conversion rho + 2 sqrt(rho log(1/delta)) (Bun & Steinke 2016, Prop. 1.3)
    for z, rounds, delta in [(1.0, 1, 1e-5), (10.131355, 5, 1e-6), (1.541332, 5, 1e-6)]:
        eps = accountant.epsilon(z, rounds, delta)
        mu = math.sqrt(rounds) / z
        exact_delta = norm.cdf(mu / 2 - eps / mu) - math.exp(eps) * norm.cdf(-mu / 2 - eps / mu)
        assert exact_delta <= delta
        rho = rounds / (2 * z * z)
        assert eps <= rho + 2 * math.sqrt(rho * math.log(1 / delta))


@pytest.mark.parametrize("target", [1.0, 3.0, 8.0])
def test_calibrated_noise_meets_the_target(target: float) -> None:
    z = accountant.noise_multiplier(target, 5, 1e-6)
    assert accountant.epsilon(z, 5, 1e-6) <= target < accountant.epsilon(z * 0.999, 5, 1e-6)


def test_dp_config_is_one_of_epsilon_or_noise() -> None:
    with pytest.raises(ConfigError, match="exactly one of epsilon"):
        MLConfig.load({"name": "c", "federated": {"dp": {"clippingNorm": 1.0}}})
    with pytest.raises(ConfigError, match="exactly one of epsilon"):
        MLConfig.load({"name": "c", "federated": {"dp": {"epsilon": 1.0, "noiseMultiplier": 2.0}}})
    job_ = MLConfig.load({"name": "c", "federated": {"dp": {"epsilon": 3.0, "clippingNorm": 0.5}}}).federated
    assert job_.dp is not None and job_.dp.spent_epsilon(job_.rounds) <= 3.0


def test_the_noise_added_is_the_noise_the_accountant_charges() -> None:
    """The Gaussian the aggregator adds has sigma = z (C + rounding slack) / m, and OpenDP's own privacy map of
    it at that sensitivity is rho = 1 / (2 z^2) per round: exactly the RDP the accountant composes."""
    job_ = FederatedJob(rounds=5, dp=DPFedAvg(epsilon=1.0, delta=1e-6))
    z = job_.dp.resolved_noise_multiplier(5)
    sensitivity = fl.dp_fedavg_sensitivity(job_, 30, 3)
    assert 1.0 / 3 < sensitivity < 1.0001 / 3  # C / m, raised by SecAgg+'s rounding (~4e-5 relative)
    rho = float(fl.dp_fedavg_mechanism(job_, 30, 3).map(sensitivity))
    assert rho == pytest.approx(1 / (2 * z * z), rel=1e-9)
    for alpha in (1.5, 8.0, 64.0):
        assert accountant.rdp(z, 5, alpha) == pytest.approx(5 * alpha * rho, rel=1e-9)


def test_dp_noise_is_not_numpy_s_and_has_the_calibrated_spread(monkeypatch: pytest.MonkeyPatch) -> None:
    """numpy's generator is never asked for noise (its sampler raises here), reseeding it does not repeat the
    noise, and 20000 draws have the calibrated standard deviation (loose bounds: ~6 standard errors)."""

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("DP noise drawn from numpy's generator")

    monkeypatch.setattr(np.random, "normal", forbidden)
    monkeypatch.setattr(np.random, "laplace", forbidden)
    gauss = dp.gaussian_mechanism(2.5)
    draws = []
    for _ in range(2):
        np.random.seed(7)
        draws.append(dp.noised(gauss, np.zeros(10_000)))
    assert not np.array_equal(draws[0], draws[1])
    noise = np.concatenate(draws)
    assert abs(noise.mean()) < 0.11 and abs(noise.std() / 2.5 - 1) < 0.03
    laplace = dp.laplace_mechanism(1.0, 61.0)  # the standardizer's: scale 61 / epsilon, std sqrt(2) x scale
    noise = dp.noised(laplace, np.zeros(20_000))
    assert abs(noise.std() / (math.sqrt(2) * 61.0) - 1) < 0.05


def test_a_dp_fedavg_run_never_draws_from_numpy(dataset, standardize, gates, approved, monkeypatch: pytest.MonkeyPatch) -> None:
    """Flower's wrapper would call numpy's normal sampler (flwr.supercore.differential_privacy); the run must not."""
    calls: list[object] = []
    real = np.random.normal
    monkeypatch.setattr(np.random, "normal", lambda *a, **k: calls.append(a) or real(*a, **k))
    job_ = FederatedJob(rounds=2, dp=DPFedAvg(clipping_norm=1.0, noise_multiplier=1.0))
    loaders = {p: (lambda p=p: dataset.parties[p]) for p in PARTIES}
    result = fl.run_federated(job_, loaders, standardize, 30, gates, approved)
    assert result.rounds_completed == 2 and calls == []
    # the released model differs from the un-noised mean by noise of the calibrated size (sigma ~ 0.33)
    unnoised = np.concatenate([a.ravel() for a in result.strategy.seen[-1][0]])
    released = np.concatenate([a.ravel() for a in result.parameters])
    assert 0.1 < np.std(released - unnoised) < 1.0


def test_each_party_update_is_clipped_before_masking(dataset, standardize, gates, approved) -> None:
    """With DP the observer inside the party sees the raw update; what SecAgg+ sums (the strategy's single
    result before noise) is the mean of the updates each clipped to C: checked with zero noise."""
    seen: list[tuple[str, int, list]] = []
    job_ = FederatedJob(rounds=1, dp=DPFedAvg(clipping_norm=0.05, noise_multiplier=1e-9))
    result = fl.run_federated(
        job_, {p: (lambda p=p: dataset.parties[p]) for p in PARTIES},
        standardize, 30, gates, approved, observer=lambda party, r, update, n: seen.append((party, r, update)),
    )
    clipped = []
    for _, _, update in seen:
        flat = np.concatenate([a.ravel() for a in update])
        assert np.linalg.norm(flat) > 0.05  # the raw update is larger than C: clipping does something
        clipped.append(flat * min(1.0, 0.05 / np.linalg.norm(flat)))
    # SecAgg+ hands the strategy one result per party, each carrying the same (unmasked) aggregate
    for arrays in result.strategy.seen[0]:
        assert np.allclose(np.concatenate([a.ravel() for a in arrays]), np.mean(clipped, axis=0), atol=1e-4)
    assert np.linalg.norm(np.concatenate([a.ravel() for a in result.parameters])) <= 0.05 + 1e-4


def test_job_charges_the_model_and_its_standardizer_before_training_and_releases_nothing_uncharged(tmp_path: Path) -> None:
    datasets = job.partitions([(p, "records") for p in PARTIES])
    request = {
        "collaboration": "c", "datasets": datasets, "ledger": str(tmp_path / "ledger.jsonl"),
        "measurements": {"version": "1", "nitro": {"pcr0": APPROVED_PCR0}},
        "budget": {"epsilon": "3.0", "delta": "1e-06", "outputs": ["metrics"]},
        "federated": {"rounds": 5, "clientsPerRound": 3, "secAgg": {"numShares": 3, "reconstructionThreshold": 2},
                      "dp": {"clippingNorm": 1.0, "epsilon": 1.0, "delta": 1e-6, "output": "metrics"},
                      "standardizer": {"epsilon": 0.5}},
        "he_batch": 64, "mpc": {"column": "mean radius"},
    }
    result = job.run(request)
    flr, dp_ = result["fl"], result["dp"]
    assert flr["released"]["dp"] and flr["released"]["epsilon"] == "1" and flr["released"]["noise_multiplier"] > 1
    assert Decimal("0.499") <= Decimal(flr["released"]["standardizer_epsilon"]) <= Decimal("0.5")
    # one spend for the model and its standardizer, both queries charged before anything ran
    assert [(s["job"], s["queries"]) for s in dp_["spends"]] == [("federated-model", ["dp-standardizer", "dp-fedavg"])]
    assert Decimal(dp_["spent"]["epsilon"]) == 1 + Decimal(flr["released"]["standardizer_epsilon"])
    # no figure about the parties' data leaves uncharged: no baseline or sweep, no plaintext standardizer, no MPC
    # totals; the AUROC is the recipient's, on the held-out rows no party holds
    assert set(flr) == {"clients", "rounds", "secagg", "sec_agg", "released", "auroc_holdout", "model"}
    model = flr["model"]
    assert set(model) == {"features", "preprocessing", "center", "scale", "weights", "bias"}
    assert model["preprocessing"] == "dp-standardizer" and min(model["scale"]) > 0 and 0 <= flr["auroc_holdout"] <= 1
    assert result["he"]["rows"] == 64 and result["he"]["max_rel_error"] < 1e-6 and result["he"]["same_classes"]
    assert result["mpc"] == {"column": "mean radius", "parties": 3, "equal": True}
    # a second run on the same ledger is refused before training: epsilon is left, delta is not
    request.pop("he_batch"), request.pop("mpc")
    before = (tmp_path / "ledger.jsonl").read_bytes()
    with pytest.raises(Exception, match=r"remaining budget is epsilon=1\.50* delta=0\.0+"):
        job.run(request)
    assert (tmp_path / "ledger.jsonl").read_bytes() == before


def seeded_gaussian(seed: int):
    """A numpy stand-in for OpenDP's Gaussian with the same sigma: only the utility curve uses it, so that its
    medians are reproducible; the runtime's noise is never seedable."""
    rng = np.random.default_rng(seed)
    return lambda sigma: (lambda values: list(np.asarray(values) + rng.normal(0.0, sigma, len(values))))


def test_the_privacy_utility_curve_on_the_seeded_public_split(dataset, standardize, gates, approved, monkeypatch) -> None:
    """Utility at epsilon 1, 3, 8 (median of 12 runs) against non-private FedAvg: measured here, on scikit-learn's
    public breast-cancer split with its pooled standardizer, never on a collaboration's data (the job refuses
    `dp_sweep`). The noise is a seeded stand-in of the same sigma, so the medians are reproducible."""
    monkeypatch.setattr(dp, "gaussian_mechanism", seeded_gaussian(7))
    loaders = {p: (lambda p=p: dataset.parties[p]) for p in PARTIES}
    x_test, features = standardize(dataset.test.x), len(dataset.feature_names)

    def auroc(trial: FederatedJob) -> float:
        result = fl.run_federated(trial, loaders, standardize, features, gates, approved)
        return fl.auroc(result.parameters, x_test, dataset.test.y)
    plain = auroc(FederatedJob(rounds=5))
    assert plain > 0.95
    curve = {eps: float(np.median([auroc(FederatedJob(rounds=5, dp=DPFedAvg(epsilon=eps))) for _ in range(12)]))
             for eps in (1.0, 3.0, 8.0)}
    assert curve[1.0] <= curve[3.0] + 0.1 <= curve[8.0] + 0.2 and curve[3.0] <= curve[8.0] + 0.05
    assert abs(curve[8.0] - plain) <= 0.05
