"""Prod config of the Azure slice: the collaboration's attestation provider in isolated mode (policy
signing certificates from `ccp-azure:attestationPolicySigningCertificates`), and no placeholder
Confidential VM Orchestrator object id (Microsoft Learn, Azure Attestation basic concepts:
a provider without policy signing certificates is in AAD mode, where Azure RBAC write on it is enough
to replace its attestation policy)."""

from __future__ import annotations

import base64
import copy
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from components.azure.options import AzureOptions
from components.azure.site import Site
from policies.review.mocks import run, unwrap

from tests.support import read_stack, stack_site_args, with_tdx_cvm_host

ORCHESTRATOR = "0b0b0b0b-0000-4000-8000-00000000000e"
SIGNER_PEM = (Path(__file__).parent / "policy_signer.pem").read_text()
COMMAND = "az ad sp show --id bf7b6499-ff71-4aa2-97a4-f372087be7f0 --query id -o tsv"


def prod_options(**over: Any) -> AzureOptions:
    values: dict[str, Any] = {
        "cvm_orchestrator_object_id": ORCHESTRATOR,
        "attestation_policy_signing_certificates": (SIGNER_PEM,),
    }
    return AzureOptions(**(values | over))


def cvm_prod() -> dict[str, Any]:
    """Prod with its Azure host as a TDX confidential VM and no Azure party (no Azure data key is ever
    released to a CVM pinned by MRTD: components/azure/checks.TDX_CVM_REFUSED)."""
    raw = copy.deepcopy(read_stack("prod"))
    with_tdx_cvm_host(raw["collaboration"])
    return raw


def declare(raw: dict[str, Any], options: AzureOptions):
    args = stack_site_args(raw, "azure")
    return run(lambda: Site("t-azure", replace(args, options=options)))


def test_prod_provider_is_isolated_with_the_configured_certificates() -> None:
    rec = declare(read_stack("prod"), prod_options())
    provider = unwrap(rec.one("azure-native:attestation:AttestationProvider").properties)
    (key,) = provider["properties"]["policySigningCertificates"]["keys"]
    der = base64.b64decode("".join(SIGNER_PEM.strip().splitlines()[1:-1]))
    assert key["kty"] == "EC" and key["x5C"] == [base64.b64encode(der).decode()]


def test_prod_with_a_shared_endpoint_needs_no_certificates() -> None:
    rec = declare(
        read_stack("prod"),
        prod_options(attestation_policy_signing_certificates=(), shared_attestation_endpoint="https://shareddewc.dewc.attest.azure.net"),
    )
    assert rec.of_type("azure-native:attestation:AttestationProvider") == []


def test_dev_provider_may_stay_in_aad_mode() -> None:
    rec = declare(read_stack("dev"), AzureOptions())
    provider = unwrap(rec.one("azure-native:attestation:AttestationProvider").properties)
    assert "policySigningCertificates" not in provider["properties"]


@pytest.mark.parametrize("stack", ["prod", "hospitals"])
def test_example_prod_stacks_carry_no_placeholder_and_valid_certificates(stack: str) -> None:
    import yaml

    from components.azure.options import is_placeholder_guid

    config = yaml.safe_load((Path(__file__).parents[2] / f"Pulumi.{stack}.yaml").read_text())["config"]
    assert not is_placeholder_guid(config.get("ccp-azure:cvmOrchestratorObjectId"))
    certificates = config["ccp-azure:attestationPolicySigningCertificates"]
    assert AzureOptions(attestation_policy_signing_certificates=certificates).attestation_policy_signing_certificates


def test_prod_cvm_with_a_real_looking_id_is_declared() -> None:
    rec = declare(cvm_prod(), prod_options())
    assert rec.of_type("azure-native:compute:DiskEncryptionSet")
