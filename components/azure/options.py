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
  Required in prod; refused-by-error rather than guessed.
- `sharedAttestationEndpoint`: use a regional shared MAA endpoint
  (e.g. https://sharedweu.weu.attest.azure.net) instead of a private attestation provider.
- `addressSpace`: the /16 base of the first regional VNet (default 10.40.0.0/16; the next region
  takes 10.41.0.0/16, ...).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Final

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
_SHARED_MAA = re.compile(r"^https://shared[a-z0-9]+\.[a-z0-9]+\.attest\.azure\.net/?$")


@dataclass(frozen=True)
class AzureOptions:
    admin_ssh_public_key: str = NO_ACCESS_SSH_PUBLIC_KEY
    cvm_orchestrator_object_id: str | None = None
    shared_attestation_endpoint: str | None = None
    address_space: str = "10.40.0.0/16"

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
        }
        return cls(**{k: v for k, v in values.items() if v is not None})

    def region_address_space(self, index: int) -> str:
        """The /16 of the `index`-th regional VNet (regions never overlap, so they can peer)."""
        base = ipaddress.ip_network(self.address_space)
        return str(ipaddress.ip_network((int(base.network_address) + (index << 16), 16)))
