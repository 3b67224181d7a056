"""`ccp:collaboration.privacy`: the collaboration's DP budget, typed and checked with the rest of the stack."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from stacks.config import ConfigError, parse, read_stack_file

ROOT = Path(__file__).resolve().parents[2]
DEV = read_stack_file(ROOT / "Pulumi.dev.yaml")
HOSPITALS = read_stack_file(ROOT / "Pulumi.hospitals.yaml")


def with_privacy(privacy: Any, base: dict[str, Any] = DEV) -> dict[str, Any]:
    """The stack with this budget and no federated job (whose DP spend is checked against the budget in
    tests/config/test_federated.py)."""
    raw = copy.deepcopy(base)
    raw["collaboration"]["privacy"] = privacy
    raw["collaboration"].pop("federated", None)
    return raw


def problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(raw)
    return caught.value.problems


def test_shipped_stacks_declare_a_budget_on_declared_outputs() -> None:
    dev = parse(DEV).collaboration
    assert dev.privacy is not None
    assert (dev.privacy.epsilon, dev.privacy.delta, dev.privacy.outputs) == (10.0, 1e-6, ["global-model"])
    hospitals = read_stack_file(ROOT / "Pulumi.hospitals.yaml")["collaboration"]
    assert hospitals["privacy"] == {"epsilon": 10.0, "delta": 1e-6, "outputs": ["validation-metrics", "sepsis-model"]}
    assert {"validation-metrics"} <= {o["name"] for o in hospitals["outputs"]}


def test_a_compliant_budget_is_typed_and_the_section_is_optional() -> None:
    settings = parse(with_privacy({"epsilon": 0.5, "delta": 1e-9, "outputs": ["global-model"]}))
    assert settings.collaboration.privacy is not None
    assert settings.collaboration.privacy.epsilon == 0.5 and settings.collaboration.privacy.delta == 1e-9
    raw = copy.deepcopy(DEV)
    del raw["collaboration"]["privacy"], raw["collaboration"]["federated"]  # a DP job needs a budget to charge
    assert parse(raw).collaboration.privacy is None


@pytest.mark.parametrize(("privacy", "expected"), [
    ({"epsilon": 0, "delta": 1e-6, "outputs": ["global-model"]},
     "ccp:collaboration.privacy.epsilon: 0.0 is not a usable total epsilon: give a finite number above 0"),
    ({"epsilon": -1, "delta": 1e-6, "outputs": ["global-model"]},
     "ccp:collaboration.privacy.epsilon: -1.0 is not a usable total epsilon"),
    ({"epsilon": float("inf"), "delta": 1e-6, "outputs": ["global-model"]},
     "ccp:collaboration.privacy.epsilon: inf is not a usable total epsilon"),
    ({"epsilon": "lots", "delta": 1e-6, "outputs": ["global-model"]},
     "ccp:collaboration.privacy.epsilon: 'lots' is invalid"),
    ({"epsilon": 3, "delta": 1, "outputs": ["global-model"]},
     "ccp:collaboration.privacy.delta: 1.0 is not a usable total delta: give a number above 0 and below 1"),
    ({"epsilon": 3, "delta": 0, "outputs": ["global-model"]},
     "ccp:collaboration.privacy.delta: 0.0 is not a usable total delta"),
    ({"epsilon": 3, "delta": -1e-6, "outputs": ["global-model"]},
     "ccp:collaboration.privacy.delta: -1e-06 is not a usable total delta"),
    ({"epsilon": 3, "delta": 1e-6, "outputs": []},
     "ccp:collaboration.privacy.outputs: [] is invalid"),
    ({"epsilon": 3, "delta": 1e-6, "outputs": ["per-site-means"]},
     "ccp:collaboration.privacy.outputs[0]: 'per-site-means' is not a declared output (outputs: global-model)"),
    ({"epsilon": 3, "delta": 1e-6, "outputs": ["global-model", "global-model"]},
     "ccp:collaboration.privacy.outputs[1]: 'global-model' is listed twice"),
    ({"epsilon": 3, "outputs": ["global-model"]}, "ccp:collaboration.privacy.delta: is required but missing"),
    ({"epsilon": 3, "delta": 1e-6, "outputs": ["global-model"], "epsilonPerJob": 1},
     "ccp:collaboration.privacy.epsilonPerJob: unknown key"),
])
def test_each_invalid_budget_is_named_by_its_config_key(privacy: dict[str, Any], expected: str) -> None:
    found = problems(with_privacy(privacy))
    assert any(p.startswith(expected) for p in found), found


def test_every_privacy_problem_is_reported_at_once() -> None:
    found = problems(with_privacy({"epsilon": -1, "delta": 2, "outputs": ["global-model"]}))
    assert [p.split(":")[1] for p in found] == ["collaboration.privacy.epsilon", "collaboration.privacy.delta"]
