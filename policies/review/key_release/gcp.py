"""GCP: Workload Identity Federation token exchange, then the Cloud KMS IAM check.

Cloud KMS releases nothing on an attestation by itself. A Confidential Space workload exchanges its
attestation token (OIDC, issuer `https://confidentialcomputing.googleapis.com`) at STS; the pool
provider accepts it only if the issuer is the provider's, the audience is allowed and the CEL
attribute condition is true; the federated identity then carries the attributes computed by the
provider's attribute mapping. Decrypt succeeds only if an IAM member of the key with a decrypting
role names that identity: `principal://.../subject/<google.subject>`,
`principalSet://.../attribute.<name>/<value>` or `principalSet://.../*` of the same pool.
(IAM "Principal identifiers", https://cloud.google.com/iam/docs/principal-identifiers;
Confidential Space "Create and grant access to confidential resources".)

The CEL is evaluated by `components.attestation.gcp_condition` (cel-python), the same code the
generator's tests use, so a missing claim is False and any CEL error is a refusal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final, Mapping, Sequence

from components.attestation.gcp_condition import evaluate_cel, evaluate_condition
from policies.review.key_release.aws import PolicyError

DECRYPTING_ROLES: Final = frozenset(
    {
        "roles/cloudkms.cryptoKeyDecrypter",
        "roles/cloudkms.cryptoKeyEncrypterDecrypter",
        "roles/cloudkms.cryptoKeyDecrypterViaDelegation",
        "roles/cloudkms.admin",
        "roles/owner",
        "roles/editor",
    }
)
DEFAULT_AUDIENCE_PREFIX: Final = "https://iam.googleapis.com/"
_POOL_MEMBER = re.compile(
    r"^(?P<kind>principal|principalSet)://iam\.googleapis\.com/projects/(?P<number>[0-9]+)/locations/global/"
    r"workloadIdentityPools/(?P<pool>[a-z0-9-]+)/(?P<rest>.+)$"
)


@dataclass(frozen=True)
class Provider:
    """What STS checks: the pool, issuer, audiences, condition and mapping of one provider."""

    project_number: str
    pool_id: str
    provider_id: str
    issuer: str
    allowed_audiences: Sequence[str]
    condition: str | None
    mapping: Mapping[str, str]


@dataclass(frozen=True)
class Binding:
    role: str
    member: str


@dataclass(frozen=True)
class FederatedIdentity:
    project_number: str
    pool_id: str
    subject: str
    attributes: Mapping[str, str] = field(default_factory=dict)


def _same_issuer(a: str, b: Any) -> bool:
    return isinstance(b, str) and a.rstrip("/") == b.rstrip("/")


def exchange(provider: Provider, token: Mapping[str, Any] | None) -> FederatedIdentity | None:
    """STS token exchange: None when the provider refuses the token."""
    if token is None or not _same_issuer(provider.issuer, token.get("iss")):
        return None
    audiences = list(provider.allowed_audiences) or [
        f"{DEFAULT_AUDIENCE_PREFIX}projects/{provider.project_number}/locations/global/"
        f"workloadIdentityPools/{provider.pool_id}/providers/{provider.provider_id}"
    ]
    token_audiences = token.get("aud")
    token_audiences = token_audiences if isinstance(token_audiences, list) else [token_audiences]
    if not any(a in audiences for a in token_audiences):
        return None
    if provider.condition is not None and not evaluate_condition(provider.condition, token):
        return None
    if "google.subject" not in provider.mapping:
        raise PolicyError("the provider's attribute mapping has no google.subject")
    attributes: dict[str, str] = {}
    for target, expression in provider.mapping.items():
        try:
            value = evaluate_cel(expression, token)
        except Exception:  # noqa: BLE001 - STS rejects a token whose mapping cannot be computed
            return None
        attributes[target] = str(value)
    return FederatedIdentity(
        project_number=provider.project_number,
        pool_id=provider.pool_id,
        subject=attributes["google.subject"],
        attributes={k.removeprefix("attribute."): v for k, v in attributes.items() if k.startswith("attribute.")},
    )


PUBLIC_MEMBERS: Final = frozenset({"allUsers", "allAuthenticatedUsers"})


def member_matches(member: str, identity: FederatedIdentity) -> bool:
    if member in PUBLIC_MEMBERS:
        return True
    found = _POOL_MEMBER.match(member)
    if found is None:
        return False
    if (found["number"], found["pool"]) != (identity.project_number, identity.pool_id):
        return False
    rest = found["rest"]
    if found["kind"] == "principal":
        return rest == f"subject/{identity.subject}"
    if rest == "*":
        return True
    if rest.startswith("group/"):
        return False
    if rest.startswith("attribute."):
        name, _, value = rest.removeprefix("attribute.").partition("/")
        return identity.attributes.get(name) == value
    return False


def decrypt_allowed(bindings: Sequence[Binding], identity: FederatedIdentity | None) -> bool:
    if identity is None:
        return False
    return any(b.role in DECRYPTING_ROLES and member_matches(b.member, identity) for b in bindings)


def direct_release(bindings: Sequence[Binding], service_accounts: Sequence[str]) -> bool:
    """Without any attestation: the workload's own service account (or the public) decrypting."""
    callers = {f"serviceAccount:{sa}" for sa in service_accounts} | PUBLIC_MEMBERS
    return any(b.role in DECRYPTING_ROLES and b.member in callers for b in bindings)


def release(providers: Sequence[Provider], bindings: Sequence[Binding], token: Mapping[str, Any] | None) -> bool:
    """Can the holder of `token` decrypt with the key through any provider of its pools?"""
    return any(decrypt_allowed(bindings, exchange(p, token)) for p in providers)


# Roles that include `cloudkms.cryptoKeyVersions.useToEncrypt` (Cloud KMS "Permissions and roles",
# https://cloud.google.com/kms/docs/reference/permissions-and-roles): a party wraps data keys with one.
ENCRYPTING_ROLES: Final = frozenset(
    {"roles/cloudkms.cryptoKeyEncrypter", "roles/cloudkms.cryptoKeyEncrypterDecrypter"}
)


def encrypt_allowed(bindings: Sequence[Binding], principal: str | FederatedIdentity | None) -> bool:
    """May `principal` (an IAM member string such as `group:...`, or a federated identity) encrypt?"""
    if principal is None:
        return False
    if isinstance(principal, FederatedIdentity):
        return any(b.role in ENCRYPTING_ROLES and member_matches(b.member, principal) for b in bindings)
    return any(b.role in ENCRYPTING_ROLES and b.member in {principal, *PUBLIC_MEMBERS} for b in bindings)
