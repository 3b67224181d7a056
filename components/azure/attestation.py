"""The Microsoft Azure Attestation (MAA) instance whose tokens a party's key release trusts.

A private provider per collaboration means the release policies name an authority nobody else
configures (its attestation policy and signing certificates are the collaboration's own). Its
attest endpoint stays reachable: Key Vault validates release tokens by reading the authority's
signing certificates from its own network, and the endpoint only ever signs verified evidence.
The regional shared endpoints (`shared<code>.<code>.attest.azure.net` with Microsoft's short region
code, e.g. `sharedweu.weu`; components/attestation/maa_regions.py) are the alternative when
a collaboration prefers Microsoft's default attestation policy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi
from pulumi_azure_native import attestation

from components.attestation.azure_guest_policy import ATTESTATION_TYPE, maa_policy, policy_hash
from components.azure.common import child
from components.azure.options import policy_signing_key
from enclave_runtime.measurements import AzureCvmMeasurements


def provider_name(collaboration: str, location: str) -> str:
    """3-24 alphanumerics: the MAA DNS label (`<name>.<short region code>.attest.azure.net`)."""
    return re.sub(r"[^a-z0-9]", "", f"ccp{collaboration}{location}")[:24]


@dataclass(frozen=True)
class AttestationArgs:
    collaboration: str
    resource_group_name: pulumi.Input[str]
    location: str
    tags: dict[str, str]
    shared_endpoint: str | None = None
    # PEM certificates of the parties' policy signers: isolated mode (components/azure/options.py).
    policy_signing_certificates: tuple[str, ...] = ()


class AttestationProvider(pulumi.ComponentResource):
    """Exposes `authority`: the base URL every release policy of the site names."""

    authority: pulumi.Output[str]
    provider: attestation.AttestationProvider | None

    def __init__(self, name: str, args: AttestationArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ccp:azure:AttestationProvider", name, None, opts)
        if args.shared_endpoint is not None:
            self.provider = None
            self.authority = pulumi.Output.from_input(args.shared_endpoint.rstrip("/"))
        else:
            self.provider = attestation.AttestationProvider(
                name,
                provider_name=provider_name(args.collaboration, args.location),
                resource_group_name=args.resource_group_name,
                location=args.location,
                properties=attestation.AttestationServiceCreationSpecificParamsArgs(
                    public_network_access="Enabled",
                    tpm_attestation_authentication="Enabled",
                    # Isolated mode when the parties supply signing certificates: the attestation
                    # policy can then only be replaced by a policy signed with one of their keys,
                    # not by whoever has Azure RBAC write on the provider (AAD mode).
                    policy_signing_certificates=attestation.JsonWebKeySetArgs(
                        keys=[
                            attestation.JsonWebKeyArgs(**_jwk(policy_signing_key(pem, i)))
                            for i, pem in enumerate(args.policy_signing_certificates)
                        ]
                    )
                    if args.policy_signing_certificates
                    else None,
                ),
                tags=args.tags,
                opts=child(self),
            )
            self.authority = self.provider.attest_uri.apply(
                lambda uri: _require_uri(uri).rstrip("/")
            )
        self.register_outputs({"authority": self.authority})


def _require_uri(uri: str | None) -> str:
    if not uri:
        raise ValueError("the attestation provider returned no attestUri: no release policy can name it")
    return uri


def _jwk(key: dict) -> dict:
    """JsonWebKeyArgs keywords (the SDK spells x5c `x5_c`)."""
    return {("x5_c" if k == "x5c" else k): v for k, v in key.items()}


class GuestAttestationPolicy(pulumi.ComponentResource):
    """The collaboration's own MAA attestation policy for Azure CVM workload hosts (`AzureGuest`: the guest's
    vTPM PCRs against `measurements.azureCvm.pcrs`), declared with the provider it belongs to.

    azure-native has no resource for an attestation policy: in isolated mode it is set on the data plane
    with a JWS signed by one of the parties' policy-signing keys, which the stack never holds. The stack
    therefore declares the exact text (and its `x-ms-policy-hash`, which every CVM release policy pins) as
    this component's inputs, so the review records and simulates it and a party signs and uploads exactly
    it (`az attestation policy set --attestation-type AzureGuest --policy-format JWT`,
    https://learn.microsoft.com/azure/attestation/policy-signer-examples). A different uploaded policy has
    a different hash: no key is released on its tokens.
    """

    def __init__(
        self,
        name: str,
        provider: AttestationProvider,
        pcrs: AzureCvmMeasurements,
        opts: pulumi.ResourceOptions | None = None,
    ):
        text = maa_policy(pcrs)
        props = {
            "attestationType": ATTESTATION_TYPE,
            "authority": provider.authority,
            "policy": text,
            "policyHash": policy_hash(text),
        }
        super().__init__("ccp:azure:AttestationPolicy", name, props, opts)
        self.register_outputs(props)
