"""Azure-only settings that are not part of the collaboration model (Pulumi config namespace
`ccp-azure`), with defaults that keep the site closed.

- `adminSshPublicKey`: an operator's OpenSSH public key for break-glass access. Default: a key
  whose private half was discarded when it was generated (ARM requires one credential on a Linux
  VM; with password authentication disabled this leaves no interactive login at all, which is
  what an attested workload wants: the parties trust the measurements, not an operator shell).
- `cvmOrchestratorObjectId`: object id, in this tenant, of the "Confidential VM Orchestrator"
  service principal (first-party app id bf7b6499-ff71-4aa2-97a4-f372087be7f0). Prod confidential
  OS disks are encrypted with a customer key that this principal must be able to release;
  `az ad sp show --id bf7b6499-ff71-4aa2-97a4-f372087be7f0 --query id -o tsv` prints it.
  Required in prod when a confidential VM is declared; refused-by-error rather than guessed, and in
  prod a placeholder (the nil GUID `00000000-0000-0000-0000-000000000000` or any GUID starting with
  `00000000-`) is refused with that command.
- `attestationPolicySigningCertificates`: the PEM X.509 certificates (a list) whose keys sign the
  collaboration attestation provider's policies, agreed by the parties. With them the provider runs
  in isolated mode: its attestation policy can only be replaced by a policy signed with one of these
  keys, not by whoever holds Azure RBAC write on the provider (AAD mode). Required in prod when the
  collaboration declares its own provider
  (https://learn.microsoft.com/azure/attestation/basic-concepts#attestation-provider,
  https://learn.microsoft.com/azure/attestation/policy-signer-examples).
- `sharedAttestationEndpoint`: use a regional shared MAA endpoint
  (e.g. https://sharedweu.weu.attest.azure.net) instead of a private attestation provider.
- `addressSpace`: the /16 base of the first regional VNet (default 10.40.0.0/16; the next region
  takes 10.41.0.0/16, ...).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Final

NAMESPACE: Final = "ccp-azure"
CVM_ORCHESTRATOR_APP_ID: Final = "bf7b6499-ff71-4aa2-97a4-f372087be7f0"
# Public half only; the private key was never stored (see module docstring).
NO_ACCESS_SSH_PUBLIC_KEY: Final = (
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQChoWdh0HyPdxwRIxAkE3dOfzSHoCLWItjLwBHI1VGOmHSGyzKeRa/"
    "HboGBNeoZMKs/bFJtcZqPV8tW1dhH3m6dcL64AVNFFJgLC3I5DLY0hvdhWsDJpLibKPztStYZoTplr128XGQ4K+7sq24"
    "p0fJTmLtLQyAxmNI9XcT9JV23HyiSKd5Iios2sKEzbvHtowHV8N3xZL7Zft9yb0YAThHCLXMEQFY9zWGFmuaFrwft9H"
    "/z9bMwxS70XSmv2Kq0xoh+EZ+RafRab8egtmQzB/k4/XmBmRr6QOfcoHFZt3zCxcXWibUq/67rl1pzUeezImWSvTjs0X"
    "9focJ5PXcruAmYVfNo+sIVTwmFWa9yAvgFiOrkKf0EuQQz74EJf2gpkLC5J/Qx4qDJll1SKYArBGp2fm93X18L1ZyE7"
    "W+/UHRupR30Nsbg1ESuPK1PZWNZKNDWIbua42qpgkDBMN81ZpZZ+uDSuFNMGQ2TD0QQaWVfncKFaYIo7hHgA/qnn8TaL"
    "P8= ccp-no-access"
)
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# The nil GUID and GUIDs starting with eight zeros are the conventional stand-ins of examples
# ("00000000-0000-0000-0000-000000000000", "00000000-0000-4000-8000-00000000c0de"): never a real
# object id in a prod stack.
_PLACEHOLDER_GUID = re.compile(r"^00000000-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----\s*([A-Za-z0-9+/=\s]+?)\s*-----END CERTIFICATE-----")
ORCHESTRATOR_COMMAND: Final = f"az ad sp show --id {CVM_ORCHESTRATOR_APP_ID} --query id -o tsv"
_SHARED_MAA = re.compile(r"^https://shared[a-z0-9]+\.[a-z0-9]+\.attest\.azure\.net/?$")


@dataclass(frozen=True)
class AzureOptions:
    admin_ssh_public_key: str = NO_ACCESS_SSH_PUBLIC_KEY
    cvm_orchestrator_object_id: str | None = None
    shared_attestation_endpoint: str | None = None
    address_space: str = "10.40.0.0/16"
    attestation_policy_signing_certificates: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        key = self.admin_ssh_public_key
        if not key.startswith(("ssh-rsa ", "ssh-ed25519 ")):
            raise ValueError(
                f"{NAMESPACE}:adminSshPublicKey is not an OpenSSH public key (ssh-rsa or "
                "ssh-ed25519); password authentication is never enabled"
            )
        oid = self.cvm_orchestrator_object_id
        if oid is not None and not _GUID.match(oid):
            raise ValueError(
                f"{NAMESPACE}:cvmOrchestratorObjectId '{oid}' is not a lowercase GUID: use the "
                f"object id of the service principal of app {CVM_ORCHESTRATOR_APP_ID}"
            )
        shared = self.shared_attestation_endpoint
        if shared is not None and not _SHARED_MAA.match(shared):
            raise ValueError(
                f"{NAMESPACE}:sharedAttestationEndpoint '{shared}' is not a regional shared MAA "
                "endpoint (https://shared<code>.<code>.attest.azure.net with the short region code, "
                "e.g. https://sharedweu.weu.attest.azure.net)"
            )
        certificates = self.attestation_policy_signing_certificates
        if isinstance(certificates, str) or not all(isinstance(c, str) for c in certificates):
            raise ValueError(
                f"{NAMESPACE}:attestationPolicySigningCertificates {certificates!r} is not a list of PEM "
                "certificates: give a YAML list, one '-----BEGIN CERTIFICATE-----' block per party signer"
            )
        object.__setattr__(self, "attestation_policy_signing_certificates", tuple(certificates))
        for index, pem in enumerate(self.attestation_policy_signing_certificates):
            policy_signing_key(pem, index)
        network = ipaddress.ip_network(self.address_space)
        if network.prefixlen != 16 or not network.is_private:
            raise ValueError(
                f"{NAMESPACE}:addressSpace '{self.address_space}' must be a private /16"
            )

    @classmethod
    def from_config(cls) -> "AzureOptions":
        """Read the `ccp-azure` namespace of the current stack (defaults when unset)."""
        import pulumi

        cfg = pulumi.Config(NAMESPACE)
        values = {
            "admin_ssh_public_key": cfg.get("adminSshPublicKey"),
            "cvm_orchestrator_object_id": cfg.get("cvmOrchestratorObjectId"),
            "shared_attestation_endpoint": cfg.get("sharedAttestationEndpoint"),
            "address_space": cfg.get("addressSpace"),
            "attestation_policy_signing_certificates": cfg.get_object("attestationPolicySigningCertificates"),
        }
        return cls(**{k: v for k, v in values.items() if v is not None})

    def region_address_space(self, index: int) -> str:
        """The /16 of the `index`-th regional VNet (regions never overlap, so they can peer)."""
        base = ipaddress.ip_network(self.address_space)
        return str(ipaddress.ip_network((int(base.network_address) + (index << 16), 16)))

    def prod_problems(self, *, confidential_vms: bool, attestation_provider: bool) -> list[str]:
        """What a prod stack may not leave to defaults or placeholders (one message per problem)."""
        problems: list[str] = []
        oid = self.cvm_orchestrator_object_id
        if confidential_vms and oid is None:
            problems.append(
                "prod confidential VMs encrypt their OS disk with a customer key that the Confidential VM "
                f"Orchestrator releases: set {NAMESPACE}:cvmOrchestratorObjectId ({ORCHESTRATOR_COMMAND})"
            )
        elif is_placeholder_guid(oid):
            problems.append(
                f"{NAMESPACE}:cvmOrchestratorObjectId '{oid}' is a placeholder, not the object id of the "
                "Confidential VM Orchestrator in your tenant (the platform could not release the confidential "
                f"OS-disk key and the VM would not start): set the output of `{ORCHESTRATOR_COMMAND}`"
            )
        if attestation_provider and not self.attestation_policy_signing_certificates:
            problems.append(
                f"{NAMESPACE}:attestationPolicySigningCertificates is empty: a prod attestation provider "
                "without policy signing certificates runs in AAD mode, where anyone with Azure RBAC write on "
                "it can replace its attestation policy; set the PEM certificates of the parties' policy "
                "signers (isolated mode), or use sharedAttestationEndpoint"
            )
        return problems


def is_placeholder_guid(value: str | None) -> bool:
    return value is not None and bool(_PLACEHOLDER_GUID.match(value.lower()))


def policy_signing_key(pem: str, index: int = 0) -> dict[str, Any]:
    """The JSON web key (kty, alg, x5c) of one PEM policy-signing certificate, or a ValueError
    naming the field, the value and the fix."""
    import base64

    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    field = f"{NAMESPACE}:attestationPolicySigningCertificates[{index}]"
    match = _PEM_CERT.search(pem)
    shown = pem.strip().splitlines()[0][:60] if pem.strip() else pem
    try:
        if match is None:
            raise ValueError("no PEM block")
        der = base64.b64decode("".join(match.group(1).split()), validate=True)
        public_key = x509.load_der_x509_certificate(der).public_key()
    except ValueError:
        raise ValueError(
            f"{field} {shown!r} is not a PEM X.509 certificate: give each party signer's certificate "
            "('-----BEGIN CERTIFICATE-----' ... '-----END CERTIFICATE-----'), e.g. "
            "`openssl req -x509 -newkey rsa:3072 -keyout signer.key -out signer.pem`"
        ) from None
    if isinstance(public_key, rsa.RSAPublicKey):
        kty, alg = "RSA", "RS256"
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        kty, alg = "EC", "ES256"
    else:
        raise ValueError(f"{field} {shown!r} has a {type(public_key).__name__}: use an RSA or EC signing key")
    return {"kty": kty, "alg": alg, "use": "sig", "x5c": [base64.b64encode(der).decode("ascii")]}
