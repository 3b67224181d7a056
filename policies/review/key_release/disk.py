"""The Azure confidential OS-disk key, judged as the platform uses it.

Unlike a party data key, a confidential VM's OS-disk key (purpose `confidential-disk`) is released
by the platform when the VM starts (the Confidential VM Orchestrator, with a platform attestation
token), not by the workload. That token's claims are top level (`x-ms-attestation-type` `sevsnpvm` |
`tdxvm`, `x-ms-compliance-status` `azure-compliant-cvm`) and it is issued by Microsoft's shared
regional attestation authority (`https://shared<code>.<code>.attest.azure.net`), the shape of
Microsoft's published policy (https://github.com/Azure/confidential-computing-cvm/blob/main/cvm_deployment/key/skr-policy.json).
A key whose policy expects a guest (data-key) token never starts the VM.

Cases (one row each, like the party keys' cases):
- `platform-releases-disk-key-at-vm-start` (release): the platform token of every confidential VM
  host whose region holds the key;
- `data-key-token-at-vm-start` (deny): a data key's token — the workload's own token from the
  collaboration's attestation provider, and a CVM guest token in the data-key layout (hardware
  claims nested under `x-ms-isolation-tee`, top-level `azurevm`) from the shared authority;
- `platform-token-other-authority` (deny): the same platform token from another region's shared
  authority or from a private provider;
- `no-attestation` (deny).
"""

from __future__ import annotations

from typing import Any, Final, Iterable, Mapping

from components.attestation.azure_release_policy import decode_release_policy
from components.attestation.maa_regions import attest_uri, shared_endpoint
from components.key_purpose import CONFIDENTIAL_DISK
from policies.review.key_release import azure, claims
from policies.review.mocks import Recording, RecordedResource, UNKNOWN, unwrap

CASES: Final[tuple[str, ...]] = (
    "platform-releases-disk-key-at-vm-start",
    "data-key-token-at-vm-start",
    "platform-token-other-authority",
    "no-attestation",
)
EXPECTED: Final[dict[str, str]] = {case: "deny" for case in CASES} | {
    "platform-releases-disk-key-at-vm-start": "release"
}
ATTESTATION_TYPES: Final = {"sev-snp": "sevsnpvm", "tdx": "tdxvm"}


def is_confidential_disk_key(resource: RecordedResource, purpose: str | None) -> bool:
    return resource.type == "azure-native:keyvault:Key" and purpose == CONFIDENTIAL_DISK


def platform_token(issuer: str, attestation_type: str) -> dict[str, Any]:
    """The platform's token at VM start (top-level claims, as Microsoft's policy reads them)."""
    return {
        "iss": issuer.rstrip("/"),
        "x-ms-ver": "1.0",
        "x-ms-attestation-type": attestation_type,
        "x-ms-compliance-status": "azure-compliant-cvm",
    }


def _key_region(resource: RecordedResource, recording: Recording) -> str | None:
    """The location of the vault the key is declared in (by vault name)."""
    vault_name = unwrap(resource.properties).get("vaultName")
    for vault in recording.of_type("azure-native:keyvault:Vault"):
        props = unwrap(vault.properties)
        if vault_name is not None and vault_name in (props.get("vaultName"), vault.outputs.get("name")):
            location = props.get("location")
            return location if isinstance(location, str) else None
    return None


def _private_authorities(recording: Recording) -> list[str]:
    """The attest URIs of the attestation providers the program declares (its own authorities)."""
    found: list[str] = []
    for provider in recording.of_type("azure-native:attestation:AttestationProvider"):
        props = unwrap(provider.properties)
        uri = provider.outputs.get("attestUri")
        if not isinstance(uri, str) or not uri.startswith("https://"):
            name, location = props.get("providerName"), props.get("location")
            uri = attest_uri(name, location) if isinstance(name, str) and isinstance(location, str) else None
        if uri:
            found.append(uri)
    return found


def _cvm_hosts(settings: Any, region: str | None) -> list[Any]:
    hosts = [
        h
        for h in settings.collaboration.workload.hosts
        if h.cloud == "azure" and h.tee in ATTESTATION_TYPES and not h.kubernetes
    ]
    return [h for h in hosts if region is None or h.region == region]


def judge(resource: RecordedResource, recording: Recording, settings: Any) -> dict[str, str]:
    data = unwrap(resource.properties).get("properties", {}).get("releasePolicy", {}).get("data")
    if not isinstance(data, str) or data == UNKNOWN:
        return {case: "error: the confidential disk key has no known release policy" for case in CASES}
    try:
        policy = decode_release_policy(data)
        region = _key_region(resource, recording)
        hosts = _cvm_hosts(settings, region)
        measurements = settings.collaboration.measurements
        other_region = "northeurope" if region == "westeurope" else "westeurope"

        def run(tokens: Iterable[Mapping[str, Any] | None]) -> list[bool]:
            return [azure.evaluate(policy, token) for token in tokens]

        decisions: dict[str, list[bool]] = {
            "platform-releases-disk-key-at-vm-start": run(
                platform_token(shared_endpoint(h.region), ATTESTATION_TYPES[h.tee]) for h in hosts
            ),
            "data-key-token-at-vm-start": run(
                [
                    # the workload's own token, from the collaboration's provider (the data key's authority)
                    *(
                        claims.maa_token(measurements, claims.AzureWorkload(tee=h.tee, container=False), issuer, "approved")
                        for h in hosts
                        for issuer in _private_authorities(recording)
                    ),
                    # a CVM guest token in the data-key layout (hardware claims nested under
                    # x-ms-isolation-tee, top-level type azurevm), even from the shared authority
                    *(
                        claims.maa_token(measurements, claims.AzureWorkload(tee="sev-snp", container=False), shared_endpoint(h.region), "approved")
                        for h in hosts
                    ),
                ]
            ),
            "platform-token-other-authority": run(
                platform_token(issuer, ATTESTATION_TYPES[h.tee])
                for h in hosts
                for issuer in (shared_endpoint(other_region), attest_uri("ccpothercollab", h.region))
            ),
            "no-attestation": run([None]),
        }
    except (ValueError, KeyError, TypeError) as error:
        return {case: f"error: {error}" for case in CASES}
    out: dict[str, str] = {}
    for case, results in decisions.items():
        if case == "platform-releases-disk-key-at-vm-start":
            out[case] = "release" if results and all(results) else "deny"
        else:
            out[case] = "release" if any(results) else "deny"
    return out


def rows(resource: RecordedResource, recording: Recording, settings: Any, party: str) -> list[dict[str, Any]]:
    decisions = judge(resource, recording, settings)
    return [
        {
            "party": party,
            "cloud": "azure",
            "key_urn": resource.urn,
            "case": case,
            "expected": EXPECTED[case],
            "decision": decisions.get(case, "error: not judged"),
        }
        for case in CASES
    ]
