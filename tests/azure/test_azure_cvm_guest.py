"""The Azure CVM workload path (issue 12, item 1): the collaboration's own MAA policy over the guest's vTPM PCRs
and the release policy that pins it, judged against Microsoft's DOCUMENTED policy and token shapes (quoted below
with their source), not against the generator's own output."""

from __future__ import annotations

import base64
import copy
import hashlib
import re
from typing import Any

import pytest

from components.attestation.azure_guest_policy import PCR_CLAIM, maa_policy, policy_hash, release_claims
from components.attestation.azure_release_policy import decode_release_policy, release_policy
from components.azure.options import AzureOptions
from enclave_runtime.measurements import ApprovedMeasurements, AzureCvmMeasurements
from policies.review.key_release import azure, maa
from policies.review.mocks import unwrap
from stacks import config

from tests.azure.test_attestation_isolation import SIGNER_PEM
from tests.azure.test_azure_site import build, props, with_hosts
from tests.support import read_stack

PCRS = {"4": "4c833b1c361fceffd8dc0f81eec76081b71e1a0eb2193caed0b6e1c7735ec33e",
        "7": "8c25e3be6ad6f5bd33c9ae40d5d5461e88c1a7366df0c9ee5c7e5ff40d3d1d0e",
        "11": "3d458cfe55cc03ea1f443f1562beec8df51c75e14a9fcf9a7234a13f198e7969"}
APPROVED = AzureCvmMeasurements(pcrs=PCRS)
MAA = "https://ccpcollabwesteurope.weu.attest.azure.net"
CVM_HOST = {"cloud": "azure", "region": "westeurope", "tee": "sev-snp", "instanceType": "Standard_DC4as_v5"}

# "Attestation policy to authorize only those TPMs that match known PCR hashes", verbatim (two of its four rules),
# https://learn.microsoft.com/azure/attestation/tpm-attestation-sample-policies
DOCUMENTED_PCR_POLICY = """version=1.2;

authorizationrules
{
    c:[type == "pcrs", issuer=="AttestationService"] =>  add(type="pcr0Validated", value=JsonToClaimValue(JmesPath(c.value, "PCRs[? Index == `0`].Digests.SHA256 | @[0] =='4c833b1c361fceffd8dc0f81eec76081b71e1a0eb2193caed0b6e1c7735ec33e' ")));
    c:[type == "pcrs", issuer=="AttestationService"] =>  add(type="pcr1Validated", value=JsonToClaimValue(JmesPath(c.value, "PCRs[? Index == `1`].Digests.SHA256 | @[0] =='8c25e3be6ad6f5bd33c9ae40d5d5461e88c1a7366df0c9ee5c7e5ff40d3d1d0e' ")));

    [type=="pcr0Validated", value==true] &&
    [type=="pcr1Validated", value==true] => permit();
};

issuancerules
{
};
"""
DOCUMENTED_PCR_RULE = DOCUMENTED_PCR_POLICY.splitlines()[4].strip()

# The guest-attestation token Microsoft documents for a confidential VM ("JSON web token",
# https://learn.microsoft.com/azure/confidential-computing/guest-attestation-confidential-vms), `<value>`s filled
# in; Linux values from the CVM attestation sample's token (Azure/confidential-computing-cvm-guest-attestation).
DOCUMENTED_GUEST_TOKEN: dict[str, Any] = {
    "exp": 1653021894, "iat": 1652993094, "iss": MAA, "jti": "j", "nbf": 1652993094,
    "secureboot": True,
    "x-ms-attestation-type": "azurevm",
    "x-ms-azurevm-attestation-protocol-ver": "2.0",
    "x-ms-azurevm-attested-pcrs": [0, 1, 2, 3, 4, 5, 6, 7],
    "x-ms-azurevm-bootdebug-enabled": False,
    "x-ms-azurevm-dbvalidated": True,
    "x-ms-azurevm-dbxvalidated": True,
    "x-ms-azurevm-debuggersdisabled": True,
    "x-ms-azurevm-default-securebootkeysvalidated": True,
    "x-ms-azurevm-elam-enabled": False,
    "x-ms-azurevm-flightsigning-enabled": False,
    "x-ms-azurevm-hvci-policy": 0,
    "x-ms-azurevm-hypervisordebug-enabled": False,
    "x-ms-azurevm-is-windows": False,
    "x-ms-azurevm-kerneldebug-enabled": False,
    "x-ms-azurevm-osbuild": "NotApplication",
    "x-ms-azurevm-osdistro": "Ubuntu",
    "x-ms-azurevm-ostype": "Linux",
    "x-ms-azurevm-signingdisabled": True,
    "x-ms-azurevm-testsigning-enabled": False,
    "x-ms-azurevm-vmid": "A80B7FE7-5B93-4027-9971-6CCEE468C2B3",
    "x-ms-isolation-tee": {
        "x-ms-attestation-type": "sevsnpvm",
        "x-ms-compliance-status": "azure-compliant-cvm",
        "x-ms-sevsnpvm-is-debuggable": False,
        "x-ms-sevsnpvm-launchmeasurement": "ad6de16ac59ee52351c6038df58d1be5aeaf41cd0f7c81b2279ecca0df6ef43a2b69d663ad6973d6dbb9db0ffd7a9023",
        "x-ms-sevsnpvm-vmpl": 0,
    },
    "x-ms-policy-hash": "wm9mHlvTU82e8UqoOy1Yj1FBRSNkfe99-69IYDq9eWs",
    "x-ms-ver": "1.0",
}


def _squash(rule: str) -> str:
    return re.sub(r"\s+", "", rule)


def _token(issued: dict[str, Any], policy_text: str, **over: Any) -> dict[str, Any]:
    """The documented token as MAA issues it under `policy_text`: its hash and the claims it issues."""
    token = copy.deepcopy(DOCUMENTED_GUEST_TOKEN) | {"x-ms-policy-hash": policy_hash(policy_text)} | issued
    return token | over


# --- the attestation policy: the documented rule shape -------------------------------------------


def test_each_pcr_rule_is_the_documented_rule_with_our_index_and_digest() -> None:
    documented = _squash(DOCUMENTED_PCR_RULE)
    generated = [line.strip() for line in maa_policy(APPROVED).splitlines() if line.strip().startswith("c:[")]
    assert len(generated) == 2 * len(PCRS)  # authorization and issuance
    for index, digest in PCRS.items():
        expected = (
            documented.replace('"pcr0Validated"', f'"ccp-pcr{index}-validated"')
            .replace("`0`", f"`{index}`")
            .replace("4c833b1c361fceffd8dc0f81eec76081b71e1a0eb2193caed0b6e1c7735ec33e", digest)
        )
        assert [_squash(g) for g in generated].count(expected) == 2, (index, expected)


def test_the_evaluator_reads_microsofts_documented_sample() -> None:
    """The review's MAA evaluator, on Microsoft's own sample: it permits exactly the PCRs the sample names."""
    good = {"0": "4c833b1c361fceffd8dc0f81eec76081b71e1a0eb2193caed0b6e1c7735ec33e",
            "1": "8c25e3be6ad6f5bd33c9ae40d5d5461e88c1a7366df0c9ee5c7e5ff40d3d1d0e"}
    assert maa.evaluate(DOCUMENTED_PCR_POLICY, good) == {}
    assert maa.evaluate(DOCUMENTED_PCR_POLICY, good | {"1": "00" * 32}) is None
    assert maa.evaluate(DOCUMENTED_PCR_POLICY, {"0": good["0"]}) is None  # a PCR the quote lacks never matches


def test_unreadable_policy_is_an_error_not_a_pass() -> None:
    with pytest.raises(Exception, match="not one the review evaluates"):
        maa.evaluate(DOCUMENTED_PCR_POLICY.replace("=> permit();", "=> permit(); [type==\"x\"] => deny();"), PCRS)


def test_our_policy_issues_the_pinned_claim_only_for_the_approved_pcrs() -> None:
    text = maa_policy(APPROVED)
    issued = maa.evaluate(text, PCRS)
    assert issued is not None and set(issued) == {PCR_CLAIM}
    for index in PCRS:
        assert maa.evaluate(text, PCRS | {index: "ee" * 32}) is None


def test_policy_hash_is_the_documented_formula() -> None:
    """claim-sets: x-ms-policy-hash = BASE64URL(SHA256(UTF8(BASE64URL(UTF8(policy text)))))."""
    text = maa_policy(APPROVED)
    inner = base64.urlsafe_b64encode(text.encode()).rstrip(b"=")
    assert policy_hash(text) == base64.urlsafe_b64encode(hashlib.sha256(inner).digest()).rstrip(b"=").decode()


# --- the release policy: judged on the documented token --------------------------------------------


def _cvm_policy() -> dict[str, Any]:
    measurements = ApprovedMeasurements(version="t1", azure_cvm=APPROVED)
    return release_policy(measurements, tee="sev-snp", authority=MAA)


def test_every_pinned_microsoft_claim_is_in_the_documented_token() -> None:
    for condition in release_claims(APPROVED):
        if condition["claim"] == PCR_CLAIM:
            continue
        assert azure.claim_value(DOCUMENTED_GUEST_TOKEN, condition["claim"]) is not azure._MISSING, condition


def test_documented_token_under_our_policy_is_released() -> None:
    text = maa_policy(APPROVED)
    issued = maa.evaluate(text, PCRS)
    assert issued is not None
    assert azure.evaluate(_cvm_policy(), _token(issued, text))


@pytest.mark.parametrize(
    ("over", "why"),
    [
        ({"x-ms-azurevm-debuggersdisabled": False}, "debuggers enabled"),
        ({"x-ms-azurevm-kerneldebug-enabled": True}, "kernel debugger"),
        ({"secureboot": False}, "no secure boot"),
        ({"x-ms-policy-hash": "wm9mHlvTU82e8UqoOy1Yj1FBRSNkfe99-69IYDq9eWs"}, "another attestation policy"),
        ({"iss": "https://sharedweu.weu.attest.azure.net"}, "the shared endpoint (default policy)"),
    ],
)
def test_documented_token_is_refused_when(over: dict[str, Any], why: str) -> None:
    text = maa_policy(APPROVED)
    issued = maa.evaluate(text, PCRS) or {}
    assert not azure.evaluate(_cvm_policy(), _token(issued, text, **over)), why


def test_default_policy_token_without_the_pcr_claim_is_refused() -> None:
    """Microsoft's own documented token (default policy: no PCR check, no custom claim) gets nothing."""
    assert not azure.evaluate(_cvm_policy(), DOCUMENTED_GUEST_TOKEN)


# --- config: opt-in, typed, fail closed ----------------------------------------------------------


def _stack(**options: Any) -> dict[str, Any]:
    raw = with_hosts(read_stack(), [CVM_HOST], azureCvm={"pcrs": PCRS})
    if options:
        raw["ccp-azure"] = options
    return raw


def _problems(raw: dict[str, Any]) -> str:
    with pytest.raises(config.ConfigError) as error:
        config.parse(raw)
    return str(error.value)


def test_cvm_path_needs_isolated_mode() -> None:
    found = _problems(_stack())
    assert "ccp-azure:attestationPolicySigningCertificates: is empty but measurements.azureCvm" in found


def test_cvm_path_refuses_a_shared_endpoint() -> None:
    found = _problems(_stack(attestationPolicySigningCertificates=[SIGNER_PEM],
                             sharedAttestationEndpoint="https://sharedweu.weu.attest.azure.net"))
    assert "ccp-azure:sharedAttestationEndpoint: 'https://sharedweu.weu.attest.azure.net' cannot attest" in found


def test_cvm_without_pcrs_is_refused_with_the_fix() -> None:
    raw = with_hosts(read_stack(), [CVM_HOST])
    assert "or keep the CVM and add measurements.azureCvm.pcrs" in _problems(raw)


def test_pcrs_without_a_cvm_host_are_refused() -> None:
    raw = copy.deepcopy(read_stack())
    raw["collaboration"]["measurements"]["azureCvm"] = {"pcrs": PCRS}
    assert "measurements.azureCvm: is set but no workload host is an Azure SEV-SNP confidential VM" in _problems(raw)


@pytest.mark.parametrize(("pcrs", "needle"), [({"24": "ab" * 32}, "'24' is not a vTPM PCR index"),
                                              ({"4": "AB" * 32}, "64 lowercase hex"), ({}, "at least 1")])
def test_bad_pcrs_are_refused(pcrs: dict[str, str], needle: str) -> None:
    raw = with_hosts(read_stack(), [CVM_HOST], azureCvm={"pcrs": pcrs})
    raw["ccp-azure"] = {"attestationPolicySigningCertificates": [SIGNER_PEM]}
    assert needle in _problems(raw)


# --- the site declares it: the recorded policy, the key's pins, a closed VM ------------------------


def test_site_records_the_policy_the_keys_pin_and_a_closed_vm() -> None:
    rec = build(
        _stack(attestationPolicySigningCertificates=[SIGNER_PEM]),
        AzureOptions(attestation_policy_signing_certificates=(SIGNER_PEM,)),
    )
    (recorded,) = [unwrap(r.properties) for r in rec.of_type("ccp:azure:AttestationPolicy")]
    assert recorded["attestationType"] == "AzureGuest"
    assert recorded["policyHash"] == policy_hash(recorded["policy"])
    (provider,) = rec.of_type("azure-native:attestation:AttestationProvider")
    assert props(provider)["properties"]["policySigningCertificates"]["keys"]
    for key in rec.of_type("azure-native:keyvault:Key"):
        data = (props(key).get("properties") or {}).get("releasePolicy", {}).get("data")
        if not data or "confidential-disk" in str(props(key).get("tags")):
            continue
        (entry,) = [e for e in decode_release_policy(data)["anyOf"] if {"claim": "x-ms-attestation-type", "equals": "azurevm"} in e["allOf"]]
        assert entry["authority"] == recorded["authority"]
        assert {"claim": "x-ms-policy-hash", "equals": recorded["policyHash"]} in entry["allOf"]
    (vm,) = rec.of_type("azure-native:compute:VirtualMachine")
    os_profile = props(vm)["osProfile"]
    assert os_profile["allowExtensionOperations"] is False
    assert os_profile["linuxConfiguration"]["provisionVMAgent"] is False
    assert os_profile["linuxConfiguration"]["disablePasswordAuthentication"] is True
    assert "adminPassword" not in os_profile


def test_cvm_path_refuses_an_operator_ssh_key() -> None:
    found = _problems(_stack(attestationPolicySigningCertificates=[SIGNER_PEM],
                             adminSshPublicKey="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOperatorKey op@laptop"))
    assert "ccp-azure:adminSshPublicKey: is an operator key but measurements.azureCvm" in found


# --- the platform's confidential OS-disk key under Microsoft's published policy --------------------


def _disk_key(entries: list[dict[str, Any]], purpose: str) -> dict[str, Any]:
    import json

    policy = {"version": "1.0.0", "anyOf": entries}
    data = base64.urlsafe_b64encode(json.dumps(policy).encode()).decode().rstrip("=")
    return {
        "properties": {"kty": "RSA-HSM", "attributes": {"exportable": True},
                       "releasePolicy": {"contentType": "application/json; charset=utf-8", "data": data}},
        "tags": {"environment": "prod", "ccp-key-purpose": purpose},
    }


@pytest.mark.parametrize("rule", ["azure-keyvault-key-enforce-workload-claim", "azure-keyvault-key-disallow-debuggable-release"])
def test_microsofts_disk_policy_is_not_judged_as_a_workload_release_but_only_on_a_disk_key(rule: str) -> None:
    """Microsoft's skr-policy.json (Azure/confidential-computing-cvm, cvm_deployment/key/skr-policy.json) on a
    confidential-disk key: released by the platform to the paravisor, no workload claim exists to pin. The same
    document on a party data key, or another shape on a disk key, is judged (and refused)."""
    from tests.azure.test_cvm_disk_key import DEWC, microsoft_entry
    from tests.policies.test_policy_rules import RESOURCE_RULES, violations

    policy = RESOURCE_RULES[rule]
    microsoft = [microsoft_entry(DEWC), microsoft_entry("https://sharedweu.weu.attest.azure.net/")]
    assert violations(policy, "azure-native:keyvault:Key", _disk_key(microsoft, "confidential-disk")) == []
    assert violations(policy, "azure-native:keyvault:Key", _disk_key(microsoft, "party-data"))
    own_authority = [microsoft_entry("https://ccpcollab.weu.attest.azure.net/")]
    assert violations(policy, "azure-native:keyvault:Key", _disk_key(own_authority, "confidential-disk"))
    type_only = [{"authority": DEWC, "allOf": [{"claim": "x-ms-attestation-type", "equals": "sevsnpvm"}]}]
    assert violations(policy, "azure-native:keyvault:Key", _disk_key(type_only, "confidential-disk"))


def test_the_no_access_key_opens_no_login_but_any_other_key_does() -> None:
    from components.azure.options import NO_ACCESS_SSH_PUBLIC_KEY
    from policies.review import reachability

    def paths(key: str) -> list[str]:
        props = {"osProfile": {"adminUsername": "ccpadmin", "allowExtensionOperations": False, "linuxConfiguration": {
            "provisionVMAgent": False, "disablePasswordAuthentication": True,
            "ssh": {"publicKeys": [{"path": "/home/ccpadmin/.ssh/authorized_keys", "keyData": key}]}}}}
        vm = type("VM", (), {"name": "vm", "urn": "urn:vm", "outputs": {}})()
        index = reachability._Index([])
        return [p["kind"] for p in reachability._azure_operator_paths(index, vm, props)]

    assert paths(NO_ACCESS_SSH_PUBLIC_KEY) == []
    assert paths("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOperatorKey op@laptop") == ["operator-ssh"]
