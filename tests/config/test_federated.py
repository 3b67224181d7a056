"""`ccp:collaboration.federated`: the federated job the parties approve, typed and checked with the stack."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from stacks.config import ConfigError, parse, read_stack_file

ROOT = Path(__file__).resolve().parents[2]
DEV = read_stack_file(ROOT / "Pulumi.dev.yaml")
HOSPITALS = read_stack_file(ROOT / "Pulumi.hospitals.yaml")


def edited(change: dict[str, Any], base: dict[str, Any] = DEV) -> dict[str, Any]:
    """The stack with `change` merged into its federated section (a None value deletes the key)."""
    raw = copy.deepcopy(base)
    federated = raw["collaboration"]["federated"]
    for path, value in change.items():
        *parents, leaf = path.split(".")
        node = federated
        for key in parents:
            node = node[key]
        if value is None:
            del node[leaf]
        else:
            node[leaf] = value
    return raw


def problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(raw)
    return caught.value.problems


def test_shipped_stacks_declare_the_demo_job() -> None:
    for raw, output in ((DEV, "global-model"), (HOSPITALS, "sepsis-model")):
        job = parse(raw).collaboration.federated
        assert job is not None and (job.rounds, job.clients_per_round) == (5, 3)
        assert (job.sec_agg.num_shares, job.sec_agg.reconstruction_threshold) == (3, 2)
        assert job.dp is not None and (job.dp.clipping_norm, job.dp.epsilon, job.dp.delta, job.dp.output) == (1.0, 8.0, 1e-6, output)
    raw = copy.deepcopy(DEV)
    del raw["collaboration"]["federated"]
    assert parse(raw).collaboration.federated is None


def test_the_ml_runtime_reads_the_same_section() -> None:
    """What the demo hands the job (by alias) is what `enclave_runtime.ml.config.FederatedJob` takes."""
    dumped = parse(DEV).collaboration.federated.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert dumped == {"rounds": 5, "clientsPerRound": 3, "secAgg": {"numShares": 3, "reconstructionThreshold": 2},
                      "dp": {"clippingNorm": 1.0, "epsilon": 8.0, "delta": 1e-6, "output": "global-model"},
                      "standardizer": {"epsilon": 1.0, "maxRows": 2000}}


def test_noise_multiplier_instead_of_epsilon_is_accepted() -> None:
    job = parse(edited({"dp.epsilon": None, "dp.noiseMultiplier": 8.0})).collaboration.federated
    assert job is not None and job.dp is not None and job.dp.noise_multiplier == 8.0


@pytest.mark.parametrize(("change", "expected"), [
    ({"rounds": 0}, "ccp:collaboration.federated.rounds: 0 is invalid: Input should be greater than or equal to 1"),
    ({"rounds": "many"}, "ccp:collaboration.federated.rounds:"),
    ({"clientsPerRound": 2}, "ccp:collaboration.federated.clientsPerRound: 2 but the collaboration has 3 parties"),
    ({"secAgg.numShares": 2}, "ccp:collaboration.federated.secAgg.numShares: 2 shares is too few: SecAgg+ needs at least 3"),
    ({"secAgg.numShares": 4}, "ccp:collaboration.federated.secAgg.numShares: 4 shares but only 3 parties"),
    ({"secAgg.reconstructionThreshold": 3},
     "ccp:collaboration.federated.secAgg.reconstructionThreshold: 3 must be below numShares (3)"),
    ({"secAgg.reconstructionThreshold": 1},
     "ccp:collaboration.federated.secAgg.reconstructionThreshold: 1 is too low: with a threshold of 1 any one share"),
    ({"secAgg": None}, "ccp:collaboration.federated.secAgg: is required but missing"),
    ({"dp.clippingNorm": 0}, "ccp:collaboration.federated.dp.clippingNorm: 0.0 is not a usable clipping norm"),
    ({"dp.clippingNorm": float("inf")}, "ccp:collaboration.federated.dp.clippingNorm: inf is not a usable clipping norm"),
    ({"dp.epsilon": -1}, "ccp:collaboration.federated.dp.epsilon: -1.0 is not a usable epsilon"),
    ({"dp.epsilon": None}, "ccp:collaboration.federated.dp: give exactly one of epsilon"),
    ({"dp.noiseMultiplier": 1.1}, "ccp:collaboration.federated.dp: give exactly one of epsilon"),
    ({"dp.noiseMultiplier": 0, "dp.epsilon": None}, "ccp:collaboration.federated.dp.noiseMultiplier: 0.0 is not a usable noise multiplier"),
    ({"dp.delta": 0}, "ccp:collaboration.federated.dp.delta: 0.0 is not a usable delta"),
    ({"dp.delta": 1}, "ccp:collaboration.federated.dp.delta: 1.0 is not a usable delta"),
    ({"dp.delta": 1e-5}, "ccp:collaboration.federated.dp.delta: 1e-05 exceeds the collaboration's total privacy.delta"),
    ({"dp.epsilon": 11.0}, "ccp:collaboration.federated.dp.epsilon: 11.0 exceeds the collaboration's total privacy.epsilon"),
    ({"dp.output": "per-site-means"},
     "ccp:collaboration.federated.dp.output: 'per-site-means' is not an output the budget declares (privacy.outputs: global-model)"),
    ({"dp.output": None}, "ccp:collaboration.federated.dp.output: is required but missing"),
    ({"epochs": 3}, "ccp:collaboration.federated.epochs: unknown key"),
    ({"standardizer.epsilon": 2.5},
     "ccp:collaboration.federated.standardizer.epsilon: 2.5 plus federated.dp.epsilon (8.0) exceeds the collaboration's total"),
    ({"standardizer.epsilon": 0}, "ccp:collaboration.federated.standardizer.epsilon: 0.0 is not a usable epsilon"),
    ({"dp": None}, "ccp:collaboration.federated.standardizer: it is charged with the model to federated.dp.output"),
])
def test_each_invalid_federated_job_is_named_by_its_config_key(change: dict[str, Any], expected: str) -> None:
    found = problems(edited(change))
    assert any(p.startswith(expected) for p in found), found


def test_dp_output_must_be_a_budgeted_output_of_the_hospitals_study() -> None:
    found = problems(edited({"dp.output": "validation-metrics-x"}, HOSPITALS))
    assert any("federated.dp.output: 'validation-metrics-x' is not an output the budget declares" in p for p in found), found


def test_dp_without_a_privacy_budget_is_refused() -> None:
    raw = copy.deepcopy(DEV)
    del raw["collaboration"]["privacy"]
    found = problems(raw)
    assert any(p.startswith("ccp:collaboration.federated.dp.output: 'global-model' cannot be charged: the collaboration "
                            "declares no privacy budget") for p in found), found


def test_secure_aggregation_with_fewer_than_three_parties_is_refused_and_says_why() -> None:
    raw = copy.deepcopy(DEV)
    raw["collaboration"]["parties"] = raw["collaboration"]["parties"][:2]
    for output in raw["collaboration"]["outputs"]:
        output["recipients"] = [r for r in output["recipients"] if r in {p["name"] for p in raw["collaboration"]["parties"]}]
    found = problems(raw)
    assert any(p.startswith("ccp:collaboration.federated.secAgg: secure aggregation needs at least 3 parties, this "
                            "collaboration has 2: with 2, each party learns the other's update") for p in found), found


def test_even_share_count_below_the_parties_is_refused_with_an_odd_alternative() -> None:
    """flwr 1.42 breaks on it (every party fails at key sharing: tests/ml/test_fl.py shows it); 5 parties here."""
    raw = edited({"secAgg.numShares": 4, "clientsPerRound": 5})
    parties = raw["collaboration"]["parties"]
    for source in parties[1:3]:
        party = copy.deepcopy(source)
        party["name"] += "-b"
        for dataset in party["datasets"]:
            dataset["name"] += "-b"
        parties.append(party)
    assert problems(raw) == [
        "ccp:collaboration.federated.secAgg.numShares: 4 is even and below the 5 parties: Flower's SecAgg+ builds "
        "its neighbour ring with 5 shares but gives the parties 4, and every party fails at key sharing; use an odd "
        "number, e.g. 5"
    ]
    raw["collaboration"]["federated"]["secAgg"]["numShares"] = 5  # odd: accepted
    raw["collaboration"]["federated"]["secAgg"]["reconstructionThreshold"] = 3
    assert parse(raw).collaboration.federated.sec_agg.num_shares == 5
