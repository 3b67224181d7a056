"""A party's data key: released only to the attested enclave, administered by someone else.

The key policy is generated from the approved measurements by the pure
`components.attestation.aws_key_policy.key_policy`; everything it names (role ARN, admin, owner) is
computed from config, so the policy is a plain string at preview and the review reads it whole.

Administration belongs to the party's break-glass role alone (MFA), and every other principal is
explicitly denied PutKeyPolicy/CreateGrant (see `aws_key_policy`). KMS' lockout safety check stays on
(`bypass_policy_lockout_safety_check=False`): it requires the CreateKey caller to be allowed
PutKeyPolicy by the new policy, so the party's key is created, and its policy later changed, by
`pulumi up` running as that break-glass role in an MFA session; any other deployer is refused by
KMS instead of leaving an unmanageable key.

Production may back the key with a CloudHSM custom key store (`HsmBacking`): FIPS 140-3 level 3
HSMs the collaboration controls. AWS KMS does not rotate keys in custom key stores automatically
(https://docs.aws.amazon.com/kms/latest/developerguide/rotate-keys.html), so rotation is then off
and must be done by creating a new key and moving the alias; the review shows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import pulumi
import pulumi_aws as aws

from components.attestation.aws_key_policy import key_policy
from enclave_runtime.measurements import NitroMeasurements
from components.aws.common import Account, child, to_json
from components.key_purpose import PARTY_DATA, purpose_tags

DELETION_WINDOW_DAYS: Final = 30  # the maximum: a scheduled deletion can be noticed and cancelled
ROTATION_PERIOD_DAYS: Final = 90


@dataclass(frozen=True)
class HsmBacking:
    """A CloudHSM cluster for the custom key store. The cluster must be initialised out of band
    (its trust anchor certificate and the `kmsuser` password come from that ceremony), and it needs
    HSMs in at least two subnets of different zones."""

    subnet_ids: list[pulumi.Input[str]]
    availability_zones: list[str]
    trust_anchor_certificate: pulumi.Input[str]
    key_store_password: pulumi.Input[str]
    hsm_type: str = "hsm2m.medium"


@dataclass(frozen=True)
class PartyDataKeyArgs:
    party: str
    region: str
    # The enclave role's (workload, deploying) account: the key policy's `aws:PrincipalAccount`.
    # The key itself lives in the account of the component's provider (the party's own account when
    # the site passes the party's `deployRole` provider), which the enclave reaches cross-account.
    account: Account
    measurements: NitroMeasurements
    enclave_role_arn: str
    tags: dict[str, str]
    # The party's break-glass IAM role: the only administrator (MFA), the only principal not denied
    # PutKeyPolicy/CreateGrant. Never the account root (it delegates to every IAM admin).
    break_glass_principal_arn: str
    owner_principal_arn: str | None = None  # only when the party opted in to decrypt outside
    encrypt_principal_arn: str | None = None  # who wraps data keys for upload
    hsm: HsmBacking | None = None


class PartyDataKey(pulumi.ComponentResource):
    key: aws.kms.Key
    alias: aws.kms.Alias
    policy_document: dict

    def __init__(self, name: str, args: PartyDataKeyArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ccp:aws:PartyDataKey", name, None, opts)
        region = args.region
        self.policy_document = key_policy(
            args.measurements,
            account_id=args.account.account_id,
            enclave_role_arn=args.enclave_role_arn,
            admin_principal_arn=args.break_glass_principal_arn,
            owner_principal_arn=args.owner_principal_arn,
            encrypt_principal_arn=args.encrypt_principal_arn,
            partition=args.account.partition,
        )
        custom_key_store_id: pulumi.Input[str] | None = None
        if args.hsm is not None:
            custom_key_store_id = self._hsm_key_store(name, args, args.hsm).id
        self.key = aws.kms.Key(
            name,
            region=region,
            description=f"ccp data key of party {args.party}: released only to the attested enclave",
            key_usage="ENCRYPT_DECRYPT",
            customer_master_key_spec="SYMMETRIC_DEFAULT",
            enable_key_rotation=args.hsm is None,
            rotation_period_in_days=ROTATION_PERIOD_DAYS if args.hsm is None else None,
            deletion_window_in_days=DELETION_WINDOW_DAYS,
            multi_region=False,  # a replica in another region would escape data residency
            bypass_policy_lockout_safety_check=False,
            custom_key_store_id=custom_key_store_id,
            policy=to_json(self.policy_document),
            tags={**args.tags, **purpose_tags(PARTY_DATA)},
            opts=child(self),
        )
        self.alias = aws.kms.Alias(
            name,
            name=f"alias/ccp/{args.party}/data",
            target_key_id=self.key.key_id,
            region=region,
            opts=child(self),
        )
        self.register_outputs({"arn": self.key.arn, "alias": self.alias.name})

    def _hsm_key_store(self, name: str, args: PartyDataKeyArgs, hsm: HsmBacking) -> aws.kms.CustomKeyStore:
        if len(set(hsm.availability_zones)) < 2 or len(hsm.subnet_ids) < 2:
            raise ValueError(
                f"party {args.party}: a CloudHSM key store needs HSMs in at least two availability zones"
            )
        cluster = aws.cloudhsmv2.Cluster(
            f"{name}-hsm",
            hsm_type=hsm.hsm_type,
            mode="FIPS",
            subnet_ids=hsm.subnet_ids,
            region=args.region,
            tags=args.tags,
            opts=child(self),
        )
        hsms = [
            aws.cloudhsmv2.Hsm(
                f"{name}-hsm-{zone}",
                cluster_id=cluster.cluster_id,
                availability_zone=zone,
                region=args.region,
                opts=child(self),
            )
            for zone in hsm.availability_zones
        ]
        return aws.kms.CustomKeyStore(
            f"{name}-keystore",
            custom_key_store_name=f"ccp-{args.party}",
            custom_key_store_type="AWS_CLOUDHSM",
            cloud_hsm_cluster_id=cluster.cluster_id,
            trust_anchor_certificate=hsm.trust_anchor_certificate,
            key_store_password=pulumi.Output.secret(hsm.key_store_password),
            region=args.region,
            opts=child(self, depends_on=hsms),
        )
