"""The one vocabulary of key purposes: what every ccp key is for, on every cloud.

Each key carries `ccp-key-purpose` (AWS tag, Azure tag, GCP label) with one of these values. The
components set it; the zero-trust rules and the key-release simulation read it to decide which
guarantees a key owes:

- `party-data`: a party's data key. Released only to an attested workload (AWS key policy with
  `kms:RecipientAttestation`, Azure secure key release, GCP digest principal sets). The party's
  content is envelope-encrypted under it.
- `confidential-disk`: the customer key of an Azure confidential OS disk. Azure requires it to be
  exportable with a release policy (the Confidential VM Orchestrator releases it into the attested
  VM), so it is attestation-bound like a data key, but it holds no party's data.
- service purposes (`party-storage`, `disk`, `audit`, `cluster-secrets`): keys a cloud service
  uses on a caller's behalf (S3/Cloud Storage/Azure Storage at rest, disks, logs, Kubernetes
  secrets). Those services call the KMS without an attestation document, so these keys cannot be
  attestation-bound; they are service-bound instead (AWS `kms:ViaService` or a service principal,
  GCP service agents only, Azure non-exportable without a release policy).

A key without the tag, or with a value outside this vocabulary, is judged as `party-data`: the
strictest reading, so a forgotten or misspelt tag can never relax a rule (fail closed).
"""

from __future__ import annotations

from typing import Final

PURPOSE_TAG: Final = "ccp-key-purpose"

PARTY_DATA: Final = "party-data"
CONFIDENTIAL_DISK: Final = "confidential-disk"
PARTY_STORAGE: Final = "party-storage"
DISK: Final = "disk"
AUDIT: Final = "audit"
CLUSTER_SECRETS: Final = "cluster-secrets"

# Released only against attestation.
ATTESTED: Final = frozenset({PARTY_DATA, CONFIDENTIAL_DISK})
# Used by a cloud service on a caller's behalf; never released to anyone.
SERVICE: Final = frozenset({PARTY_STORAGE, DISK, AUDIT, CLUSTER_SECRETS})
PURPOSES: Final = ATTESTED | SERVICE


def purpose_tags(purpose: str) -> dict[str, str]:
    """The tag/label every key of this purpose carries; refuses a value outside the vocabulary."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown key purpose {purpose!r}; one of {sorted(PURPOSES)}")
    return {PURPOSE_TAG: purpose}


def is_service(purpose: str | None) -> bool:
    """A service-bound key: only an explicit service purpose counts (missing/unknown do not)."""
    return purpose in SERVICE


def is_party_data(purpose: str | None) -> bool:
    """Judged as a party data key: tagged so, untagged, or tagged with an unknown value."""
    return purpose not in SERVICE and purpose != CONFIDENTIAL_DISK
