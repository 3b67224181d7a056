"""The SKR grammar on the documented examples ("Secure Key Release policy examples") and the generator."""

from __future__ import annotations

import pytest

from components.attestation.azure_guest_policy import maa_policy
from components.attestation.azure_release_policy import release_policy
from enclave_runtime.measurements import ApprovedMeasurements
from policies.review.key_release import claims
from policies.review.key_release.aws import PolicyError
from policies.review.key_release.azure import evaluate

MAA = "https://sharedeus2.eus2.attest.azure.net"
SIGNER = "9fa48b1629bd246a1de3d38fb7df97f6554cd65d6b3b72e85b86848ae6b578ba"


def sgx_example(*extra: dict) -> dict:
    """Example 1 of the SKR policy examples, optionally with more allOf conditions."""
    return {
        "anyOf": [
            {"authority": MAA, "allOf": [{"claim": "x-ms-sgx-mrsigner", "equals": SIGNER}, *extra]}
        ],
        "version": "1.0.0",
    }


def test_documented_sgx_example_releases_to_the_signer_and_only_from_its_authority() -> None:
    token = {"iss": MAA, "x-ms-sgx-mrsigner": SIGNER}
    assert evaluate(sgx_example(), token)
    assert evaluate(sgx_example(), token | {"iss": MAA + "/"})  # trailing slash is the same URL
    assert not evaluate(sgx_example(), token | {"iss": "https://other.weu.attest.azure.net"})
    assert not evaluate(sgx_example(), token | {"x-ms-sgx-mrsigner": "0" * 64})


def test_missing_claim_denies() -> None:
    assert not evaluate(sgx_example(), {"iss": MAA})


def test_no_attestation_token_denies() -> None:
    assert not evaluate(sgx_example(), None)


def test_greater_or_equals_is_numeric() -> None:
    policy = sgx_example({"claim": "x-ms-sgx-svn", "greaterOrEquals": 2})
    base = {"iss": MAA, "x-ms-sgx-mrsigner": SIGNER}
    assert evaluate(policy, base | {"x-ms-sgx-svn": 2})
    assert evaluate(policy, base | {"x-ms-sgx-svn": 3})
    assert not evaluate(policy, base | {"x-ms-sgx-svn": 1})
    assert not evaluate(policy, base | {"x-ms-sgx-svn": "3"})


def test_equals_compares_json_types() -> None:
    policy = sgx_example({"claim": "x-ms-sgx-is-debuggable", "equals": False})
    base = {"iss": MAA, "x-ms-sgx-mrsigner": SIGNER}
    assert evaluate(policy, base | {"x-ms-sgx-is-debuggable": False})
    assert not evaluate(policy, base | {"x-ms-sgx-is-debuggable": "false"})
    assert not evaluate(policy, base | {"x-ms-sgx-is-debuggable": True})


def test_nested_anyof_allof_and_dotted_claims_as_in_the_cvm_example() -> None:
    # Shape of the confidential-computing-cvm sample policy: compliance AND (tdxvm OR sevsnpvm).
    policy = {
        "version": "1.0.0",
        "anyOf": [
            {
                "authority": MAA,
                "allOf": [
                    {"claim": "x-ms-isolation-tee.x-ms-compliance-status", "equals": "azure-compliant-cvm"},
                    {
                        "anyOf": [
                            {"claim": "x-ms-isolation-tee.x-ms-attestation-type", "equals": "tdxvm"},
                            {"claim": "x-ms-isolation-tee.x-ms-attestation-type", "equals": "sevsnpvm"},
                        ]
                    },
                ],
            }
        ],
    }
    tee = {"x-ms-compliance-status": "azure-compliant-cvm", "x-ms-attestation-type": "sevsnpvm"}
    assert evaluate(policy, {"iss": MAA, "x-ms-isolation-tee": tee})
    assert not evaluate(policy, {"iss": MAA, "x-ms-isolation-tee": tee | {"x-ms-attestation-type": "sgx"}})
    assert not evaluate(policy, {"iss": MAA, **tee})  # top-level claims are not the nested ones


def test_other_operators() -> None:
    def one(condition: dict, token: dict) -> bool:
        return evaluate({"version": "1.0.0", "anyOf": [{"authority": MAA, "allOf": [condition]}]}, {"iss": MAA, **token})

    assert one({"claim": "a", "exists": True}, {"a": 0})
    assert one({"claim": "a", "exists": False}, {})
    assert one({"claim": "a", "notEquals": "x"}, {"a": "y"})
    assert not one({"claim": "a", "notEquals": "x"}, {})
    assert one({"claim": "a", "less": 3}, {"a": 2})
    assert not one({"claim": "a", "greater": 3}, {"a": 3})


@pytest.mark.parametrize(
    "policy",
    [
        {"version": "2.0.0", "anyOf": [{"authority": MAA, "allOf": [{"claim": "a", "equals": 1}]}]},
        {"version": "1.0.0", "anyOf": []},
        {"version": "1.0.0", "anyOf": [{"authority": MAA, "allOf": [{"claim": "a", "matches": "x"}]}]},
        {"version": "1.0.0", "anyOf": [{"authority": MAA, "allOf": []}]},
    ],
)
def test_outside_the_grammar_is_an_error(policy: dict) -> None:
    with pytest.raises(PolicyError):
        evaluate(policy, {"iss": MAA, "a": 1})


MEASUREMENTS = ApprovedMeasurements.model_validate(
    {"version": "1", "sevSnp": {"launchMeasurement": "ab" * 48, "hostData": "cd" * 32},
     "azureCvm": {"pcrs": {"4": "e4" * 32, "7": "e7" * 32}}}
)
# The CVM path's tokens are issued under the attestation policy a stack records for its provider.
GUEST_POLICIES = {MAA: maa_policy(MEASUREMENTS.azure_cvm)}  # type: ignore[arg-type]


@pytest.mark.parametrize("container", [False, True])
def test_generated_policy_against_the_claim_matrix(container: bool) -> None:
    """A container group (hostData) and an Azure CVM on the measured-guest path (its vTPM PCRs)."""
    policy = release_policy(MEASUREMENTS, tee="sev-snp", authority=MAA, container=container)
    workload = claims.AzureWorkload("sev-snp", container, measured_guest=not container)

    def token(variant: str) -> dict | None:
        return claims.maa_token(MEASUREMENTS, workload, MAA, variant, GUEST_POLICIES)

    assert evaluate(policy, token("approved"))
    for variant in ("debug", "other:unapproved", "other:other-collaboration", "other-tee:other-collaboration"):
        assert not evaluate(policy, token(variant)), variant


def test_type_only_policy_would_release_to_another_collaborations_cvm() -> None:
    type_only = {
        "version": "1.0.0",
        "anyOf": [{"authority": MAA, "allOf": [{"claim": "x-ms-isolation-tee.x-ms-attestation-type", "equals": "sevsnpvm"}]}],
    }
    workload = claims.AzureWorkload("sev-snp", False)
    assert evaluate(type_only, claims.maa_token(MEASUREMENTS, workload, MAA, "approved"))
    assert evaluate(type_only, claims.maa_token(MEASUREMENTS, workload, MAA, "other:other-collaboration"))


# --- tokens in the layouts Microsoft documents (hand-written, not produced by the generators) ------

OTHER_ENCLAVE = "5d" * 32
MRTD = "0c" * 48


def test_sgx_product_of_the_same_signer_is_not_released() -> None:
    """Claim sets (https://learn.microsoft.com/azure/attestation/claim-sets): x-ms-sgx-product-id is an
    integer the enclave author assigns to segment the enclaves signed with one MRSIGNER. A policy pinning
    MRSIGNER must release only to the approved product, not to the signer's other products."""
    approved = ApprovedMeasurements.model_validate({"version": "1", "sgx": {"mrsigner": SIGNER, "productId": 1, "minSvn": 2}})
    policy = release_policy(approved, tee="sgx", authority=MAA)
    token = {
        "iss": MAA,
        "x-ms-ver": "1.0",
        "x-ms-attestation-type": "sgx",
        "x-ms-sgx-mrsigner": SIGNER,
        "x-ms-sgx-mrenclave": OTHER_ENCLAVE,
        "x-ms-sgx-product-id": 1,
        "x-ms-sgx-svn": 2,
        "x-ms-sgx-is-debuggable": False,
    }
    assert evaluate(policy, token)
    assert evaluate(policy, token | {"x-ms-sgx-svn": 5})  # the SVN is a floor
    assert not evaluate(policy, token | {"x-ms-sgx-product-id": 2})  # another product of the same signer
    assert not evaluate(policy, token | {"x-ms-sgx-product-id": 0})


def tdx_eat_token(**over: object) -> dict:
    """An MAA TDX token as the TDX EAT profile lays it out: every claim top level
    (https://learn.microsoft.com/azure/attestation/trust-domain-extensions-eat-profile), with the
    attestation type / compliance values of Microsoft's published CVM release policy
    (https://github.com/Azure/confidential-computing-cvm/blob/main/cvm_deployment/key/skr-policy.json)."""
    return {
        "iss": MAA,
        "x-ms-ver": "1.0",
        "x-ms-attestation-type": "tdxvm",
        "x-ms-compliance-status": "azure-compliant-cvm",
        "dbgstat": "disabled",
        "tdx_mrtd": MRTD,
        "tdx_mrseam": "36" * 48,
        "tdx_rtmr0": "00" * 48,
        "tdx_td_attributes": "0000000000000000",
        "tdx_td_attributes_debug": False,
        "tdx_report_data": "31" * 64,
        **over,
    }


def test_tdx_policy_reads_the_documented_top_level_claims() -> None:
    approved = ApprovedMeasurements.model_validate({"version": "1", "tdx": {"mrtd": MRTD}})
    policy = release_policy(approved, tee="tdx", authority=MAA)
    assert evaluate(policy, tdx_eat_token())
    assert not evaluate(policy, tdx_eat_token(tdx_td_attributes_debug=True))
    assert not evaluate(policy, tdx_eat_token(tdx_mrtd="1d" * 48))


def test_simulated_tdx_token_has_the_documented_layout() -> None:
    approved = ApprovedMeasurements.model_validate({"version": "1", "tdx": {"mrtd": MRTD}})
    token = claims.maa_token(approved, claims.AzureWorkload("tdx", False), MAA, "approved")
    assert "x-ms-isolation-tee" not in token
    documented = tdx_eat_token()
    for claim in ("x-ms-attestation-type", "x-ms-compliance-status", "tdx_mrtd", "tdx_td_attributes_debug"):
        assert token[claim] == documented[claim], claim


def test_simulation_presents_another_product_of_the_approved_signer() -> None:
    """The simulation's `unapproved-image` case includes the signer's other product, so a range on the
    product id (the SKR grammar's greaterOrEquals, hand-written here) shows up as a wrong release."""
    approved = ApprovedMeasurements.model_validate({"version": "1", "sgx": {"mrsigner": SIGNER, "productId": 1, "minSvn": 2}})
    other = claims.maa_token(approved, claims.AzureWorkload("sgx", False), MAA, "other-product:unapproved")
    assert other["x-ms-sgx-mrsigner"] == SIGNER and other["x-ms-sgx-product-id"] == 2 and other["x-ms-sgx-svn"] == 2
    ranged = sgx_example(
        {"claim": "x-ms-sgx-product-id", "greaterOrEquals": 1},
        {"claim": "x-ms-sgx-svn", "greaterOrEquals": 2},
        {"claim": "x-ms-sgx-is-debuggable", "equals": False},
    )
    assert evaluate(ranged, other)
    assert not evaluate(release_policy(approved, tee="sgx", authority=MAA), other)
