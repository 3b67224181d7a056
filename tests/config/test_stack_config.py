"""Stack config validation: every invalid value is reported, by config key, before anything is declared."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import pytest

from stacks.config import ConfigError, parse, read_stack_file

ROOT = Path(__file__).resolve().parents[2]
DEV = read_stack_file(ROOT / "Pulumi.dev.yaml")
PROD = read_stack_file(ROOT / "Pulumi.prod.yaml")


def problems(base: dict[str, Any], edit: Callable[[dict[str, Any]], None]) -> list[str]:
    raw = copy.deepcopy(base)
    edit(raw)
    with pytest.raises(ConfigError) as caught:
        parse(raw)
    return caught.value.problems


def test_shipped_stacks_are_valid() -> None:
    dev, prod = parse(DEV), parse(PROD)
    assert dev.environment == "dev" and prod.environment == "prod"
    assert [p.cloud for p in prod.collaboration.parties] == ["aws", "azure", "gcp"]
    assert prod.collaboration.measurements.nitro.pinned() == {
        "pcr0": prod.collaboration.measurements.nitro.pcr0,
        "pcr8": prod.collaboration.measurements.nitro.pcr8,
    }
    assert dev.collaboration.measurements.fingerprint() != prod.collaboration.measurements.fingerprint()


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(raw: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = raw
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value

    return edit


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("environment", "staging", "ccp:environment: 'staging' is not allowed: 'dev' or 'prod'"),
        ("collaboration.name", "X", "ccp:collaboration.name: 'X' is not a valid name"),
        ("collaboration.parties.1.region", "mars-1",
         "ccp:collaboration.parties[1].region: 'mars-1' is not an Azure region"),
        ("collaboration.parties.0.region", "westeurope",
         "ccp:collaboration.parties[0].region: 'westeurope' is not an AWS region"),
        ("collaboration.parties.2.cloud", "oracle", "ccp:collaboration.parties[2].cloud: 'oracle' is not allowed"),
        ("collaboration.parties.0.allowedRegions", ["eu-west-1"],
         "ccp:collaboration.parties[0]: region 'eu-central-1' is not in allowedRegions ['eu-west-1']"),
        ("collaboration.parties.0.dataClassification", "secret",
         "ccp:collaboration.parties[0].dataClassification: 'secret' is not allowed"),
        ("collaboration.parties.0.datasets", [], "ccp:collaboration.parties[0].datasets: [] is invalid"),
        ("collaboration.parties.0.ownerDecrypt", True,
         "ccp:collaboration.parties[0]: ownerDecrypt is true but ownerPrincipal is not set"),
        ("collaboration.workload.hosts.0.tee", "sgx",
         "ccp:collaboration.workload.hosts[0]: tee 'sgx' does not run on AWS: it runs on azure"),
        ("collaboration.measurements.nitro.pcr0", "ABC",
         "ccp:collaboration.measurements.nitro.pcr0: 'ABC' is not a SHA-384 measurement: expected 96 lowercase hex"),
        ("collaboration.measurements.nitro.pcr0", "A" * 96,
         "ccp:collaboration.measurements.nitro.pcr0: '" + "A" * 96 + "' is not a SHA-384 measurement"),
        ("collaboration.measurements.nitro.pin", ["pcr1"],
         "ccp:collaboration.measurements.nitro: pin lists 'pcr1' but pcr1 is not set"),
        ("collaboration.measurements.confidentialSpace.imageDigests", ["sha256:xyz"],
         "ccp:collaboration.measurements.confidentialSpace.imageDigests[0]: 'sha256:xyz' is not an image digest"),
        ("collaboration.measurements.sevSnp", {},
         "ccp:collaboration.measurements.sevSnp: sevSnp needs launchMeasurement (96 hex) or hostData (64 hex)"),
        ("collaboration.measurements.version", "", "ccp:collaboration.measurements.version: '' is invalid"),
        ("collaboration.outputs.0.recipients", ["clinic-aws", "nobody"],
         "ccp:collaboration.outputs[0].recipients[1]: 'nobody' is not a party of this collaboration"),
        ("logRetentionDays", 0, "ccp:logRetentionDays: 0 is invalid"),
        ("collaboration.colour", "blue", "ccp:collaboration.colour: unknown key"),
    ],
)
def test_each_field_error_names_key_value_and_fix(path: str, value: Any, expected: str) -> None:
    found = problems(PROD, _set(path, value))
    assert any(p.startswith(expected) for p in found), found


def test_missing_required_keys_are_named() -> None:
    found = problems(PROD, lambda raw: raw["collaboration"].pop("measurements"))
    assert found == ["ccp:collaboration.measurements: is required but missing"]


def test_all_problems_are_reported_at_once() -> None:
    def edit(raw: dict[str, Any]) -> None:
        raw["collaboration"]["parties"][0]["region"] = "mars-1"
        raw["collaboration"]["parties"][1]["region"] = "venus-2"
        raw["collaboration"]["measurements"]["nitro"]["pcr8"] = "zz"

    assert len(problems(PROD, edit)) == 3


def test_all_zero_measurement_refused_in_prod_but_allowed_in_dev() -> None:
    zero = _set("collaboration.measurements.nitro.pcr0", "0" * 96)
    assert problems(PROD, zero) == [
        "ccp:collaboration.measurements.nitro.pcr0: 0000000000000000... is all zeros, which is what a "
        "debug-mode TEE reports: production keys are never released to debug workloads; use the release "
        "build's measurement"
    ]
    raw = copy.deepcopy(DEV)
    zero(raw)
    assert parse(raw).collaboration.measurements.nitro.pcr0 == "0" * 96


def test_missing_environment_is_treated_as_prod_for_debug_checks() -> None:
    def edit(raw: dict[str, Any]) -> None:
        raw.pop("environment")
        raw["collaboration"]["measurements"]["confidentialSpace"]["imageDigests"] = ["sha256:" + "0" * 64]

    found = problems(PROD, edit)
    assert "ccp:environment: is required but missing" in found
    assert any("confidentialSpace.imageDigests[0]" in p and "all zeros" in p for p in found)


def test_party_without_key_release_path_is_refused() -> None:
    def edit(raw: dict[str, Any]) -> None:
        raw["collaboration"]["workload"]["hosts"] = [h for h in raw["collaboration"]["workload"]["hosts"]
                                                    if h["cloud"] != "aws"]

    assert problems(PROD, edit) == [
        "ccp:collaboration.parties[0].cloud: 'aws' has no workload host its key can be released to: AWS KMS "
        "releases keys to attested Nitro Enclaves only (kms:RecipientAttestation); add a workload host on aws "
        "with tee nitro"
    ]


def test_host_tee_without_measurements_is_refused() -> None:
    found = problems(PROD, lambda raw: raw["collaboration"]["measurements"].pop("sevSnp"))
    assert found == [
        "ccp:collaboration.workload.hosts[1].tee: 'confidential-containers' has no approved measurements: add "
        "measurements.sevSnp"
    ]


def test_duplicate_party_names_are_refused() -> None:
    found = problems(PROD, _set("collaboration.parties.1.name", "clinic-aws"))
    assert "ccp:collaboration.parties[1].name: 'clinic-aws' is used by another party: names must be unique" in found
