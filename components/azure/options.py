"""Azure-only settings that are not part of the collaboration model (Pulumi config namespace
`ccp-azure`, a typed section of the one stack config model: `stacks.config.StackConfig.azure`), with
defaults that keep the site closed. Components never read Pulumi config themselves: the Azure site
gets these as `SiteArgs.options`.

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
- `alertEmails`: addresses the site's action group (the stack's notification channel) emails when an
  alert fires (refused key releases, refused access, audit ingestion errors, key-vault / key /
  role-assignment / diagnostic-setting / attestation-provider changes). Default: none (the action
  group exists; add receivers outside ccp, or here).
- `auditArchiveLock`: the state of the prod audit archive's immutability policy, `Locked` (default:
  nobody can shorten it) or `Unlocked`. Azure creates a policy Unlocked only, so the first `pulumi up`
  of a new archive sets `Unlocked` (and waives `azure-storage-storageaccount-enforce-immutable-audit`
  with that reason) and the next one `Locked`.
- `addressSpace`: the /16 base of the first regional VNet (default 10.40.0.0/16; the next region
  takes 10.41.0.0/16, ...).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, field_validator
from pydantic_core import PydanticCustomError

from enclave_runtime.measurements import Model

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


def opens_login(key_data: Any) -> bool:
    """Whether an SSH public key (`keyData`) opens a login: every key but ccp's no-access one (ARM requires a
    credential on a Linux VM; that key's private half was never kept)."""
    return str(key_data or "").strip() != NO_ACCESS_SSH_PUBLIC_KEY


def login_keys(public_keys: Any) -> list[Any]:
    """The keys of `osProfile.linuxConfiguration.ssh.publicKeys` that open a login."""
    keys = public_keys if isinstance(public_keys, list) else []
    return [k for k in keys if not isinstance(k, Mapping) or opens_login(k.get("keyData"))]
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# The nil GUID and GUIDs starting with eight zeros are the conventional stand-ins of examples
# ("00000000-0000-0000-0000-000000000000", "00000000-0000-4000-8000-00000000c0de"): never a real
# object id in a prod stack.
_PLACEHOLDER_GUID = re.compile(r"^00000000-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----\s*([A-Za-z0-9+/=\s]+?)\s*-----END CERTIFICATE-----")
ORCHESTRATOR_COMMAND: Final = f"az ad sp show --id {CVM_ORCHESTRATOR_APP_ID} --query id -o tsv"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SHARED_MAA = re.compile(r"^https://shared[a-z0-9]+\.[a-z0-9]+\.attest\.azure\.net/?$")


def _message(text: str) -> PydanticCustomError:
    """A validation message shown after the key's path (`ccp-azure:<key>: <text>`)."""
    return PydanticCustomError("ccp_option", text.replace("{", "{{").replace("}", "}}"))


def _certificate(pem: str) -> str:
    """Each policy-signing certificate must parse (the loc gives its index in the list)."""
    try:
        policy_signing_key(pem)
    except ValueError as error:
        raise _message(str(error).removeprefix(f"{NAMESPACE}:attestationPolicySigningCertificates[0] ")) from None
    return pem


Certificate = Annotated[str, AfterValidator(_certificate)]


class AzureOptions(Model):
    """The `ccp-azure` section of the stack config: validated by `stacks.config.parse` with the rest
    of the config (unknown keys refused), and passed to the Azure site as `SiteArgs.options`."""

    admin_ssh_public_key: str = NO_ACCESS_SSH_PUBLIC_KEY
    cvm_orchestrator_object_id: str | None = None
    shared_attestation_endpoint: str | None = None
    address_space: str = "10.40.0.0/16"
    attestation_policy_signing_certificates: tuple[Certificate, ...] = ()
    alert_emails: tuple[str, ...] = ()
    audit_archive_lock: Literal["Locked", "Unlocked"] = "Locked"

    @field_validator("alert_emails")
    @classmethod
    def _emails(cls, emails: tuple[str, ...]) -> tuple[str, ...]:
        for email in emails:
            if not _EMAIL.match(email):
                raise _message(f"'{email}' is not an email address (name@domain)")
        return emails

    @field_validator("admin_ssh_public_key")
    @classmethod
    def _ssh_key(cls, key: str) -> str:
        if not key.startswith(("ssh-rsa ", "ssh-ed25519 ")):
            raise _message(
                f"{key[:40]!r} is not an OpenSSH public key (ssh-rsa or ssh-ed25519): give the public half, "
                "e.g. the content of ~/.ssh/id_ed25519.pub; password authentication is never enabled"
            )
        return key

    @field_validator("cvm_orchestrator_object_id")
    @classmethod
    def _orchestrator(cls, oid: str | None) -> str | None:
        if oid is not None and not _GUID.match(oid):
            raise _message(
                f"'{oid}' is not a lowercase GUID: use the object id of the service principal of app "
                f"{CVM_ORCHESTRATOR_APP_ID} (`{ORCHESTRATOR_COMMAND}`)"
            )
        return oid

    @field_validator("shared_attestation_endpoint")
    @classmethod
    def _shared_endpoint(cls, shared: str | None) -> str | None:
        if shared is not None and not _SHARED_MAA.match(shared):
            raise _message(
                f"'{shared}' is not a regional shared MAA endpoint (https://shared<code>.<code>.attest.azure.net "
                "with the short region code, e.g. https://sharedweu.weu.attest.azure.net)"
            )
        return shared

    @field_validator("attestation_policy_signing_certificates", mode="before")
    @classmethod
    def _certificate_list(cls, certificates: Any) -> Any:
        if isinstance(certificates, str) or not isinstance(certificates, (list, tuple)):
            raise _message(
                f"{str(certificates)[:40]!r} is not a list of PEM certificates: give a YAML list, one "
                "'-----BEGIN CERTIFICATE-----' block per party signer"
            )
        return certificates

    @field_validator("address_space")
    @classmethod
    def _address_space(cls, value: str) -> str:
        try:
            network = ipaddress.ip_network(value)
        except ValueError:
            network = None
        if network is None or network.prefixlen != 16 or not network.is_private:
            raise _message(f"'{value}' must be a private /16 network, e.g. 10.40.0.0/16")
        return value

    def region_address_space(self, index: int) -> str:
        """The /16 of the `index`-th regional VNet (regions never overlap, so they can peer)."""
        base = ipaddress.ip_network(self.address_space)
        return str(ipaddress.ip_network((int(base.network_address) + (index << 16), 16)))

    def prod_problems(self, *, confidential_vms: bool, attestation_provider: bool) -> list[str]:
        """What a prod stack may not leave to defaults or placeholders (one line per problem, with
        its `ccp-azure:` key)."""
        problems: list[str] = []
        oid = self.cvm_orchestrator_object_id
        if confidential_vms and oid is None:
            problems.append(
                f"{NAMESPACE}:cvmOrchestratorObjectId: is required in prod with a confidential VM: prod "
                "confidential VMs encrypt their OS disk with a customer key that the Confidential VM Orchestrator "
                f"releases; set {NAMESPACE}:cvmOrchestratorObjectId to the output of `{ORCHESTRATOR_COMMAND}`"
            )
        elif is_placeholder_guid(oid):
            problems.append(
                f"{NAMESPACE}:cvmOrchestratorObjectId: '{oid}' is a placeholder, not the object id of the "
                "Confidential VM Orchestrator in your tenant (the platform could not release the confidential "
                f"OS-disk key and the VM would not start): set the output of `{ORCHESTRATOR_COMMAND}`"
            )
        if attestation_provider and not self.attestation_policy_signing_certificates:
            problems.append(
                f"{NAMESPACE}:attestationPolicySigningCertificates: is empty: a prod attestation provider "
                "without policy signing certificates runs in AAD mode, where anyone with Azure RBAC write on "
                "it can replace its attestation policy; set the PEM certificates of the parties' policy "
                f"signers (isolated mode), or use {NAMESPACE}:sharedAttestationEndpoint"
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
