"""The Confidential Space attribute condition, mapping and principal sets, evaluated with cel-python."""

from __future__ import annotations

import copy
from typing import Any

import celpy
import pytest

from components.attestation.gcp_condition import (
    attribute_condition,
    attribute_mapping,
    cel_string,
    digest_principal_set,
    evaluate_cel,
    evaluate_condition,
)
from enclave_runtime.measurements import ApprovedMeasurements

DIGEST = "sha256:" + "a0e2148f2794b7790dc9c775028636b025312d42873cff16847ef9ec0e42af08"
OTHER_DIGEST = "sha256:" + "60904cc3323bc0ae4cffe810b03710481e4fc7a07312ff12382dcd261a4505da"
UNAPPROVED = "sha256:" + "1" * 64
SA = "ccp-cs-dev-demo@ccp-mock-project.iam.gserviceaccount.com"
MEASUREMENTS = ApprovedMeasurements.model_validate(
    {"version": "t1", "confidentialSpace": {"imageDigests": [OTHER_DIGEST, DIGEST]}}
)
EXPECTED = (
    "assertion.swname == 'CONFIDENTIAL_SPACE' && assertion.dbgstat == 'disabled-since-boot' && "
    "'STABLE' in assertion.submods.confidential_space.support_attributes && "
    "assertion.hwmodel in ['GCP_AMD_SEV', 'GCP_INTEL_TDX'] && assertion.secboot == true && "
    f"assertion.submods.container.image_digest in ['{OTHER_DIGEST}', '{DIGEST}'] && "
    f"'{SA}' in assertion.google_service_accounts"
)


def production_claims(**changes: Any) -> dict[str, Any]:
    """A production Confidential Space token's claims, shaped as in Google's token-claims reference."""
    claims: dict[str, Any] = {
        "aud": "https://sts.googleapis.com",
        "iss": "https://confidentialcomputing.googleapis.com",
        "sub": "https://www.googleapis.com/compute/v1/projects/ccp-mock-project/zones/europe-west4-a/instances/cs-0",
        "exp": 1767225600,
        "iat": 1767222000,
        "nbf": 1767222000,
        "eat_profile": "https://cloud.google.com/confidential-computing/confidential-space/docs/reference/token-claims",
        "secboot": True,
        "oemid": 11129,
        "hwmodel": "GCP_AMD_SEV",
        "swname": "CONFIDENTIAL_SPACE",
        "swversion": ["250301"],
        "dbgstat": "disabled-since-boot",
        "submods": {
            "confidential_space": {"support_attributes": ["LATEST", "STABLE", "USABLE"]},
            "container": {
                "image_reference": f"europe-docker.pkg.dev/ccp-dev/workloads/fl-trainer@{DIGEST}",
                "image_digest": DIGEST,
                "restart_policy": "Never",
                "image_id": "sha256:" + "b" * 64,
                "env": {"HOSTNAME": "cs-0"},
                "args": ["/trainer"],
            },
            "gce": {
                "zone": "europe-west4-a",
                "project_id": "ccp-mock-project",
                "project_number": "123456789012",
                "instance_name": "cs-0",
                "instance_id": "18446744073709551615",
            },
        },
        "google_service_accounts": [SA],
    }
    claims.update(changes)
    return claims


def test_condition_is_exactly_the_strict_form() -> None:
    assert attribute_condition(MEASUREMENTS, workload_service_account=SA) == EXPECTED


def test_condition_parses_with_cel_python() -> None:
    environment = celpy.Environment()
    environment.compile(attribute_condition(MEASUREMENTS, workload_service_account=SA))


def test_condition_admits_production_image_with_approved_digest() -> None:
    condition = attribute_condition(MEASUREMENTS, workload_service_account=SA)
    assert evaluate_condition(condition, production_claims()) is True
    tdx = production_claims(hwmodel="GCP_INTEL_TDX")
    assert evaluate_condition(condition, tdx) is True


def _with(path: list[str], value: Any) -> dict[str, Any]:
    claims = production_claims()
    node = claims
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return claims


def _debug_claims() -> dict[str, Any]:
    claims = production_claims(dbgstat="enabled")
    del claims["submods"]["confidential_space"]
    return claims


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param(_debug_claims(), id="debug-image"),
        pytest.param(production_claims(dbgstat="enabled"), id="debug-status-only"),
        pytest.param(
            _with(["submods", "confidential_space", "support_attributes"], ["LATEST"]), id="not-stable"
        ),
        pytest.param(_with(["submods", "container", "image_digest"], UNAPPROVED), id="unapproved-digest"),
        pytest.param(
            production_claims(google_service_accounts=["other@ccp-mock-project.iam.gserviceaccount.com"]),
            id="other-service-account",
        ),
        pytest.param(production_claims(swname="GCE"), id="plain-gce"),
        pytest.param(production_claims(swname="CONFIDENTIAL_SPACE_X"), id="other-swname"),
        pytest.param(production_claims(hwmodel="GCP_SHIELDED_VM"), id="not-confidential-hardware"),
        pytest.param(production_claims(secboot=False), id="no-secure-boot"),
        pytest.param(production_claims(secboot="true"), id="secboot-string"),
        pytest.param(
            {k: v for k, v in production_claims().items() if k != "google_service_accounts"}, id="no-sa"
        ),
        pytest.param({}, id="empty"),
    ],
)
def test_condition_rejects(claims: dict[str, Any]) -> None:
    condition = attribute_condition(MEASUREMENTS, workload_service_account=SA)
    assert evaluate_condition(condition, claims) is False


def test_hardware_models_narrow_the_condition() -> None:
    condition = attribute_condition(
        MEASUREMENTS, workload_service_account=SA, hardware_models=["GCP_AMD_SEV"]
    )
    assert "assertion.hwmodel in ['GCP_AMD_SEV'] &&" in condition
    assert evaluate_condition(condition, production_claims(hwmodel="GCP_INTEL_TDX")) is False


def test_absent_confidential_space_section_fails_closed() -> None:
    nothing = ApprovedMeasurements.model_validate({"version": "t1", "tdx": {"mrtd": "ab" * 48}})
    with pytest.raises(ValueError, match="confidentialSpace is absent"):
        attribute_condition(nothing, workload_service_account=SA)


@pytest.mark.parametrize(
    "account",
    [
        "x' in assertion.google_service_accounts || 'a",
        "123456789012-compute@developer.gserviceaccount.com",
        "service-123@gs-project-accounts.iam.gserviceaccount.com",
        "ccp-cs@ccp-mock-project.iam.gserviceaccount.com\n",
        "",
    ],
)
def test_service_account_must_be_a_user_managed_email(account: str) -> None:
    with pytest.raises(ValueError, match="service account"):
        attribute_condition(MEASUREMENTS, workload_service_account=account)


@pytest.mark.parametrize("models", [["GCP_SHIELDED_VM"], ["GCP_AMD_SEV_SNP"], ["gcp_amd_sev"], []])
def test_hardware_models_must_be_confidential_space_values(models: list[str]) -> None:
    with pytest.raises(ValueError, match="hardware model"):
        attribute_condition(MEASUREMENTS, workload_service_account=SA, hardware_models=models)


def test_condition_length_limit() -> None:
    many = ApprovedMeasurements.model_validate(
        {"version": "t1", "confidentialSpace": {"imageDigests": [f"sha256:{i:064x}" for i in range(1, 60)]}}
    )
    with pytest.raises(ValueError, match="over the provider limit of 4096"):
        attribute_condition(many, workload_service_account=SA)


def test_cel_string_escapes_quotes_and_backslashes() -> None:
    literal = cel_string("a'b\\c\nd")
    assert literal == "'a\\'b\\\\c\\nd'"
    assert evaluate_cel(f"{literal} == assertion.v", {"v": "a'b\\c\nd"}) == True  # noqa: E712


def test_attribute_mapping_subject_fits_127_bytes() -> None:
    mapping = attribute_mapping()
    assert mapping == {
        "google.subject": "'gcpcs::' + assertion.submods.container.image_digest + '::' + "
        "assertion.submods.gce.project_number + '::' + assertion.submods.gce.instance_id",
        "attribute.image_digest": "assertion.submods.container.image_digest",
    }
    subject = str(evaluate_cel(mapping["google.subject"], production_claims()))
    assert subject == f"gcpcs::{DIGEST}::123456789012::18446744073709551615"
    assert len(subject.encode()) <= 127  # the longest instance id (uint64) and a 12-digit number
    assert str(evaluate_cel(mapping["attribute.image_digest"], production_claims())) == DIGEST


def test_digest_principal_set() -> None:
    assert digest_principal_set("123456789012", "ccp-dev-demo", DIGEST) == (
        "principalSet://iam.googleapis.com/projects/123456789012/locations/global/"
        f"workloadIdentityPools/ccp-dev-demo/attribute.image_digest/{DIGEST}"
    )


@pytest.mark.parametrize(
    ("number", "pool", "digest"),
    [
        ("ccp-mock-project", "ccp-dev-demo", DIGEST),
        ("123456789012", "Pool_With_Caps", DIGEST),
        ("123456789012", "ccp-dev-demo", "sha256:ABC"),
        ("123456789012", "ccp-dev-demo", DIGEST.removeprefix("sha256:")),
    ],
)
def test_digest_principal_set_rejects_bad_parts(number: str, pool: str, digest: str) -> None:
    with pytest.raises(ValueError):
        digest_principal_set(number, pool, digest)


def test_evaluate_condition_fails_closed_on_errors() -> None:
    assert evaluate_condition("assertion.swname == 'a", production_claims()) is False  # parse error
    assert evaluate_condition("assertion.missing.deeper == 'x'", production_claims()) is False
    assert evaluate_condition("1 + 1", production_claims()) is False  # not a bool
    assert evaluate_condition("assertion.secboot", production_claims()) is True


def test_claims_are_not_mutated() -> None:
    claims = production_claims()
    before = copy.deepcopy(claims)
    evaluate_condition(attribute_condition(MEASUREMENTS, workload_service_account=SA), claims)
    assert claims == before
