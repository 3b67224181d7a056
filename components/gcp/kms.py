"""Cloud KMS keys: each party's data key, released only to attested workloads, and service CMEKs.

A party data key's `roles/cloudkms.cryptoKeyDecrypter` goes to one principal set per approved image
digest (`principalSet://…/attribute.image_digest/<digest>`), and to the party's own principal only
when it opted in with `ownerDecrypt`; the owner otherwise only wraps (`cryptoKeyEncrypter`). No
service agent is ever bound to a data key: Cloud Storage, Compute Engine and GKE call Cloud KMS
without an attestation token, so CMEK (buckets, disks, cluster secrets) uses separate service keys
whose only encrypter/decrypters are the Google service agents (`ServiceKey`, see
components/README.md "Two keys per party").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import pulumi
import pulumi_gcp as gcp

from components.attestation.gcp_condition import digest_principal_set
from components.gcp.common import KEY_ROTATION_PERIOD, bounded, check_member
from components.key_purpose import PARTY_DATA, SERVICE, purpose_tags

DECRYPTER: Final = "roles/cloudkms.cryptoKeyDecrypter"
ENCRYPTER: Final = "roles/cloudkms.cryptoKeyEncrypter"
ENCRYPTER_DECRYPTER: Final = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
ProtectionLevel = Literal["HSM", "SOFTWARE"]


def protection_level(prod: bool, allow_software: bool) -> ProtectionLevel:
    """HSM always in prod; SOFTWARE only when a dev stack asks for it."""
    if prod and allow_software:
        raise ValueError("software-protected keys are refused in prod: production keys are HSM-backed")
    return "SOFTWARE" if allow_software else "HSM"


def crypto_key(
    name: str,
    *,
    project: str,
    location: str,
    labels: dict[str, str],
    purpose: str,
    protection: ProtectionLevel,
    prod: bool,
    opts: pulumi.ResourceOptions,
) -> tuple[gcp.kms.KeyRing, gcp.kms.CryptoKey, str]:
    """A key ring in `location`, a symmetric key rotated every 90 days, and the key's resource id.

    The id is built as Cloud KMS builds it, so that every reference to the key (CMEK settings, IAM
    members) is a plain string known at preview; `depends_on` keeps the creation order. The key is
    labelled with its `ccp-key-purpose` (components/key_purpose.py).
    """
    ring_name = bounded(name, 63)
    ring_id = key_ring_id(project, location, ring_name)
    ring = gcp.kms.KeyRing(
        f"{name}-ring",
        name=ring_name,
        project=project,
        location=location,
        opts=opts,
    )
    key = gcp.kms.CryptoKey(
        f"{name}-key",
        name=ring_name,
        key_ring=ring_id,
        purpose="ENCRYPT_DECRYPT",
        rotation_period=KEY_ROTATION_PERIOD,
        version_template=gcp.kms.CryptoKeyVersionTemplateArgs(
            algorithm="GOOGLE_SYMMETRIC_ENCRYPTION",
            protection_level=protection,
        ),
        destroy_scheduled_duration="2592000s" if prod else "86400s",
        labels={**labels, **purpose_tags(purpose)},
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(protect=prod, depends_on=[ring])),
    )
    return ring, key, f"{ring_id}/cryptoKeys/{ring_name}"


def key_ring_id(project: str, location: str, name: str) -> str:
    return f"projects/{project}/locations/{location}/keyRings/{name}"


@dataclass(frozen=True)
class PartyDataKeyArgs:
    project: str
    location: str
    pool_project_number: str
    pool_id: str
    image_digests: list[str]
    labels: dict[str, str]
    prod: bool
    allow_software_key: bool = False
    owner_principal: str | None = None  # set only when the party opted in with ownerDecrypt
    encrypt_principal: str | None = None  # who wraps the party's content keys (encrypt only)


class PartyDataKey(pulumi.ComponentResource):
    """A party's key: decrypt only by the approved Confidential Space images (and its owner, if opted in);
    the owner's principal may wrap (encrypt) the content keys it uploads."""

    key: gcp.kms.CryptoKey
    key_id: str
    decrypters: dict[str, str]

    def __init__(self, name: str, args: PartyDataKeyArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ccp:gcp:PartyDataKey", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        if not args.image_digests:
            raise ValueError(f"{name}: no approved image digests: the key would have no decrypter")
        self.ring, self.key, self.key_id = crypto_key(
            name,
            project=args.project,
            location=args.location,
            labels=args.labels,
            purpose=PARTY_DATA,
            protection=protection_level(args.prod, args.allow_software_key),
            prod=args.prod,
            opts=child,
        )
        after_key = pulumi.ResourceOptions(parent=self, depends_on=[self.key])
        # member -> logical name suffix, in a stable order: what review shows as "who can decrypt".
        self.decrypters = {
            digest_principal_set(args.pool_project_number, args.pool_id, digest): f"digest-{digest[7:19]}"
            for digest in sorted(set(args.image_digests))
        }
        if args.owner_principal is not None:
            self.decrypters[check_member(args.owner_principal)] = "owner"
        self.bindings = [
            gcp.kms.CryptoKeyIAMMember(
                f"{name}-decrypt-{suffix}",
                crypto_key_id=self.key_id,
                role=DECRYPTER,
                member=member,
                opts=after_key,
            )
            for member, suffix in self.decrypters.items()
        ]
        self.encrypter: gcp.kms.CryptoKeyIAMMember | None = None
        if args.encrypt_principal is not None:
            self.encrypter = gcp.kms.CryptoKeyIAMMember(
                f"{name}-encrypt-owner",
                crypto_key_id=self.key_id,
                role=ENCRYPTER,
                member=check_member(args.encrypt_principal),
                opts=after_key,
            )
        self.register_outputs({"key": self.key_id, "decrypters": list(self.decrypters)})


@dataclass(frozen=True)
class ServiceKeyArgs:
    """A CMEK for a Google service (Cloud Storage buckets, Compute Engine disks, GKE secrets) used
    through its service agents; `purpose` is one of the service purposes of components/key_purpose.py."""

    project: str
    location: str
    service_agents: list[str]
    labels: dict[str, str]
    purpose: str
    prod: bool
    allow_software_key: bool = False


class ServiceKey(pulumi.ComponentResource):
    """A CMEK whose only users are the named Google service agents (encrypter/decrypter)."""

    key: gcp.kms.CryptoKey
    key_id: str

    def __init__(self, name: str, args: ServiceKeyArgs, opts: pulumi.ResourceOptions | None = None):
        if args.purpose not in SERVICE:
            raise ValueError(
                f"{name}: a service key's purpose is one of {sorted(SERVICE)}, not {args.purpose!r} "
                "(party data keys are PartyDataKey: released only to attested workloads)"
            )
        if not args.service_agents:
            raise ValueError(f"{name}: a service key needs the service agent that uses it")
        super().__init__("ccp:gcp:ServiceKey", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.ring, self.key, self.key_id = crypto_key(
            name,
            project=args.project,
            location=args.location,
            labels=args.labels,
            purpose=args.purpose,
            protection=protection_level(args.prod, args.allow_software_key),
            prod=args.prod,
            opts=child,
        )
        after_key = pulumi.ResourceOptions(parent=self, depends_on=[self.key])
        self.bindings = [
            gcp.kms.CryptoKeyIAMMember(
                f"{name}-agent-{i}",
                crypto_key_id=self.key_id,
                role=ENCRYPTER_DECRYPTER,
                member=check_member(agent),
                opts=after_key,
            )
            for i, agent in enumerate(sorted(set(args.service_agents)))
        ]
        self.register_outputs({"key": self.key_id})
