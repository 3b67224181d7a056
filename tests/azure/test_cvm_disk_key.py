"""The confidential OS-disk key of a prod CVM, judged against Microsoft's documented shapes.

The platform (not the guest) releases a CVM's confidential OS-disk key when the VM starts, with a
platform attestation token whose claims are top level, issued by Microsoft's shared regional
attestation authority. Microsoft publishes the release policy such a key needs
(Azure/confidential-computing-cvm, cvm_deployment/key/skr-policy.json): one entry per shared
authority, `x-ms-compliance-status` = `azure-compliant-cvm` and `x-ms-attestation-type` in
{`tdxvm`, `sevsnpvm`}. The expectations below are written from that document, never from ccp's
generator; auto-rotation is not supported for confidential-VM disk keys (Microsoft Learn,
"Rotate customer-managed keys for confidential VMs").
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest

from components.attestation.azure_release_policy import decode_release_policy
from components.azure.options import AzureOptions
from components.azure.site import Site
from policies.review.key_release import azure as skr
from policies.review.mocks import Recording, RecordedResource, run, unwrap

from tests.support import read_stack, stack_site_args, with_tdx_cvm_host

SITE = "t-azure"
ORCHESTRATOR = "0b0b0b0b-0000-4000-8000-00000000000e"
DEWC = "https://shareddewc.dewc.attest.azure.net/"  # Germany West Central, prod's host region


def microsoft_entry(authority: str) -> dict[str, Any]:
    """One authority entry of Microsoft's skr-policy.json, verbatim."""
    return {
        "allOf": [
            {"claim": "x-ms-compliance-status", "equals": "azure-compliant-cvm"},
            {
                "anyOf": [
                    {"claim": "x-ms-attestation-type", "equals": "tdxvm"},
                    {"claim": "x-ms-attestation-type", "equals": "sevsnpvm"},
                ]
            },
        ],
        "authority": authority,
    }


def platform_token(issuer: str, attestation_type: str = "sevsnpvm", **over: Any) -> dict[str, Any]:
    """The platform's token at VM start: top-level claims (what Microsoft's policy reads)."""
    return {
        "iss": issuer.rstrip("/"),
        "x-ms-ver": "1.0",
        "x-ms-attestation-type": attestation_type,
        "x-ms-compliance-status": "azure-compliant-cvm",
        **over,
    }


def guest_token(issuer: str) -> dict[str, Any]:
    """A CVM guest (vTPM) token, the shape a data key's policy reads: hardware claims nested."""
    return {
        "iss": issuer.rstrip("/"),
        "x-ms-ver": "1.0",
        "x-ms-attestation-type": "azurevm",
        "x-ms-isolation-tee": {
            "x-ms-attestation-type": "sevsnpvm",
            "x-ms-compliance-status": "azure-compliant-cvm",
            "x-ms-sevsnpvm-is-debuggable": False,
        },
    }


def options() -> AzureOptions:
    from tests.azure.test_attestation_isolation import prod_options

    return prod_options(cvm_orchestrator_object_id=ORCHESTRATOR)


MRTD = "5d" * 48
HOST = "tdx-germanywestcentral-0"


def cvm_stack() -> dict[str, Any]:
    """The prod stack with its Azure workload host as a confidential VM (TDX, measured by MRTD): the host
    kind whose OS disk is encrypted under a confidential disk key in prod. It has no Azure party: no Azure
    data key is released to a CVM pinned by MRTD (components/azure/checks.TDX_CVM_REFUSED)."""
    raw = copy.deepcopy(read_stack("prod"))
    with_tdx_cvm_host(raw["collaboration"], MRTD)
    return raw


@pytest.fixture(scope="module")
def prod() -> Recording:
    args = stack_site_args(cvm_stack(), "azure")
    return run(lambda: Site(SITE, replace(args, options=options())))


def _custom(rec: Recording, name: str) -> RecordedResource:
    (found,) = [r for r in rec.resources if r.custom and r.name == name]
    return found


def disk_policy(rec: Recording) -> dict[str, Any]:
    key = unwrap(_custom(rec, f"{SITE}-{HOST}-disk-key").properties)
    return decode_release_policy(key["properties"]["releasePolicy"]["data"])


def _normalized(entry: dict[str, Any]) -> dict[str, Any]:
    return {**entry, "authority": entry["authority"].rstrip("/")}


def test_disk_key_policy_is_microsofts_platform_policy_for_the_host_region(prod: Recording) -> None:
    policy = disk_policy(prod)
    assert policy["version"] == "1.0.0"
    assert [_normalized(e) for e in policy["anyOf"]] == [_normalized(microsoft_entry(DEWC))]


def test_disk_key_policy_has_no_data_key_claims_and_no_private_authority(prod: Recording) -> None:
    text = str(disk_policy(prod))
    assert "x-ms-isolation-tee" not in text
    assert "launchmeasurement" not in text
    assert all(a.startswith("https://shared") for a in skr.authorities(disk_policy(prod)))


@pytest.mark.parametrize("attestation_type", ["sevsnpvm", "tdxvm"])
def test_platform_token_at_vm_start_is_released(prod: Recording, attestation_type: str) -> None:
    assert skr.evaluate(disk_policy(prod), platform_token(DEWC, attestation_type)) is True


@pytest.mark.parametrize(
    "token",
    [
        guest_token(DEWC),  # a data-key-shaped (guest) token
        platform_token(DEWC, "azurevm"),
        platform_token(DEWC, **{"x-ms-compliance-status": "azure-compliant-uvm"}),
        platform_token("https://sharedweu.weu.attest.azure.net/"),  # another region's authority
        platform_token("https://ccpprodstudygermanywes.dewc.attest.azure.net"),  # a private provider
        None,
    ],
    ids=["guest-token", "azurevm-type", "uvm-compliance", "other-region", "private-provider", "no-token"],
)
def test_other_tokens_are_not_released(prod: Recording, token: dict[str, Any] | None) -> None:
    assert skr.evaluate(disk_policy(prod), token) is False


def test_microsofts_published_policy_releases_the_platform_token() -> None:
    """The evaluator reads Microsoft's own document as Key Vault does (nested anyOf, trailing slash)."""
    published = {"anyOf": [microsoft_entry("https://sharedeus.eus.attest.azure.net/"), microsoft_entry(DEWC)], "version": "1.0.0"}
    assert skr.evaluate(published, platform_token(DEWC)) is True
    assert skr.evaluate(published, guest_token(DEWC)) is False


def test_confidential_disk_encryption_set_does_not_auto_rotate(prod: Recording) -> None:
    des = unwrap(prod.one("azure-native:compute:DiskEncryptionSet").properties)
    assert des["encryptionType"] == "ConfidentialVmEncryptedWithCustomerKey"
    assert des["rotationToLatestKeyVersionEnabled"] is False


def test_vault_of_the_disk_key_lets_the_platform_release_path_through(prod: Recording) -> None:
    """Private endpoint for everyone else, trusted Microsoft services (the disk encryption set and the
    platform's release at VM start) through the firewall: Key Vault's trusted-services bypass."""
    (vault,) = [r for r in prod.of_type("azure-native:keyvault:Vault") if "-ops-" in r.name]
    properties = unwrap(vault.properties)["properties"]
    assert properties["publicNetworkAccess"] == "Disabled"
    assert properties["networkAcls"] == {"defaultAction": "Deny", "bypass": "AzureServices"}


def test_simulation_judges_the_disk_key_with_the_platform_token(prod: Recording) -> None:
    """`the platform can release the disk key at VM start` is a simulated case that is released;
    a data-key-shaped (guest) token, another authority or no token is not."""
    from policies.review.key_release.simulate import mismatches, simulate
    from stacks.config import parse

    settings = parse(cvm_stack())
    rows = [r for r in simulate(prod, settings) if r["key_urn"] and r["key_urn"].endswith(f"{HOST}-disk-key")]
    decisions = {r["case"]: r["decision"] for r in rows}
    assert decisions == {
        "platform-releases-disk-key-at-vm-start": "release",
        "data-key-token-at-vm-start": "deny",
        "platform-token-other-authority": "deny",
        "no-attestation": "deny",
    }
    assert {r["party"] for r in rows} == {"shared"} and not mismatches(rows)
