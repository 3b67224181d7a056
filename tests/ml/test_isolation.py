"""The ML runtime stands alone: no IaC module is loaded, and importing the package loads no ML framework
(so the verify path of enclave_runtime stays as small as before). And the boundary between a party and the
aggregator carries no party's row count (Flower's FitRes `num_examples` is a constant)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

IAC = ("pulumi", "components", "policies", "standins", "stacks")
FRAMEWORKS = ("flwr", "opendp", "tenseal", "mpyc", "sklearn")


def loaded(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sorted(sys.modules)))"],
        check=True, capture_output=True, text=True,
    ).stdout.split()
    return {name.split(".")[0] for name in out}


def test_every_ml_module_loads_without_the_iac() -> None:
    roots = loaded("import enclave_runtime.ml.fl, enclave_runtime.ml.dp, enclave_runtime.ml.he, enclave_runtime.ml.mpc")
    assert roots.isdisjoint(IAC), roots & set(IAC)
    assert {"flwr", "numpy"} <= roots


def test_the_package_and_the_verifier_load_no_ml_framework() -> None:
    roots = loaded("import enclave_runtime.ml, enclave_runtime.ml.attestation, enclave_runtime.ml.config")
    assert roots.isdisjoint(FRAMEWORKS), roots & set(FRAMEWORKS)


# --- no party's row count crosses the client -> server boundary ------------------------------------------

SIZES = {"hospital-aws": 142, "hospital-azure": 101, "hospital-gcp": 77}  # distinct, so each is recognisable


def scalars(value: Any) -> Iterator[float]:
    """Every number in a record value (a scalar or a list); bytes (masked vectors, keys) are not numbers."""
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            yield item


def reported(result: Any) -> tuple[list[float], set[float]]:
    """What parties sent: the num_examples of every fit result, and every number in any record."""
    counts: list[float] = []
    numbers: set[float] = set()
    for wire in result.transcript:
        if wire.direction != "from-party":
            continue
        content = wire.message().content
        for name, record in [*content.metric_records.items(), *content.config_records.items()]:
            for key, value in record.items():
                numbers.update(scalars(value))
                if name == "fitres.num_examples":
                    counts.append(value)
    return counts, numbers


@pytest.fixture
def sized(dataset: Any) -> dict[str, Any]:
    from enclave_runtime.ml.data import Partition

    return {p: (lambda p=p, n=n: Partition(dataset.parties[p].x[:n], dataset.parties[p].y[:n])) for p, n in SIZES.items()}


@pytest.mark.parametrize("secure", [True, False])
def test_no_row_count_crosses_to_the_aggregator(secure: bool, sized: dict[str, Any], standardize: Any, gates: Any, approved: Any) -> None:
    from enclave_runtime.ml import fl
    from enclave_runtime.ml.config import FederatedJob

    job = FederatedJob(rounds=1, secure_aggregation=secure)
    counts, numbers = reported(fl.run_federated(job, sized, standardize, 30, gates, approved))
    assert counts == [job.reported_weight] * 3 and job.reported_weight == 1000
    assert numbers.isdisjoint(SIZES.values()), numbers & set(SIZES.values())


def test_the_count_check_finds_true_counts(
    sized: dict[str, Any], standardize: Any, gates: Any, approved: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Positive control: a client reporting its row count (Flower's default) is caught by the same check."""
    from enclave_runtime.ml import fl
    from enclave_runtime.ml.config import FederatedJob

    fit = fl.PartyClient.fit
    monkeypatch.setattr(fl.PartyClient, "fit", lambda self, p, c: (fit(self, p, c)[0], len(self._rows()[1]), {}))
    counts, numbers = reported(fl.run_federated(FederatedJob(rounds=1), sized, standardize, 30, gates, approved))
    assert sorted(counts) == sorted(SIZES.values()) and set(SIZES.values()) <= numbers


def test_the_standardizer_round_sends_no_count_either(sized: dict[str, Any], gates: Any, approved: Any, dataset: Any) -> None:
    """Each party's count is a coordinate of its masked moments vector, never a number on the wire."""
    from enclave_runtime.ml import data, fl
    from enclave_runtime.ml.config import DPStandardizer, FederatedJob

    job = FederatedJob(standardizer=DPStandardizer(epsilon=1.0))
    bounds = data.Bounds.of(dataset.feature_names)
    counts, numbers = reported(fl.run_moments(job, sized, bounds, lambda values: values, gates, approved))
    assert counts == [job.reported_weight] * 3 and numbers.isdisjoint(SIZES.values())
