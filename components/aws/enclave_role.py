"""The identity of the enclave parent instances: one role per site, named deterministically.

The data keys' policies name this role (so its ARN is computed from config and known at preview),
and the keys are released to it only with an attestation document (see
`components.attestation.aws_key_policy`). Its own IAM permissions add nothing on the data keys but
the attested Decrypt/GenerateDataKey: the key policies do not delegate to IAM, so an IAM grant could
not widen them anyway, and the role policy states the same limit for reviewers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Sequence

import pulumi
import pulumi_aws as aws

from components.attestation.aws_key_policy import ENCLAVE_ACTIONS, IMAGE_SHA384
from components.aws.common import Account, child, to_json

SSM_CORE: Final = "AmazonSSMManagedInstanceCore"
# Managed node groups need these on the node role (EKS user guide, "Amazon EKS node IAM role").
EKS_NODE_POLICIES: Final[tuple[str, ...]] = (
    "AmazonEKSWorkerNodePolicy",
    "AmazonEC2ContainerRegistryReadOnly",
    "AmazonEKS_CNI_Policy",
)


def trust_policy(account: Account) -> dict[str, Any]:
    """Only EC2 in this account may assume the role (confused-deputy guard)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Ec2AssumeRole",
                "Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": account.account_id}},
            }
        ],
    }


def access_policy(
    *,
    data_key_arns: Sequence[str],
    storage_key_arns: Sequence[str],
    bucket_arns: Sequence[str],
    log_group_arns: Sequence[str],
    regions: Sequence[str],
) -> dict[str, Any]:
    """What the parent instance may do: attested use of the data keys, read party storage (whose
    objects are envelope-encrypted under those keys), and write runtime logs."""
    statements: list[dict[str, Any]] = [
        {
            "Sid": "AttestedDataKeyUse",
            "Effect": "Allow",
            "Action": list(ENCLAVE_ACTIONS),
            "Resource": sorted(data_key_arns),
            "Condition": {"Null": {IMAGE_SHA384: "false"}},
        }
    ]
    if bucket_arns:
        statements += [
            {
                "Sid": "ReadPartyStorage",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:ListBucket"],
                "Resource": sorted([*bucket_arns, *(f"{arn}/*" for arn in bucket_arns)]),
            },
            {
                "Sid": "StorageKeyThroughS3Only",
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": sorted(storage_key_arns),
                "Condition": {
                    "StringEquals": {"kms:ViaService": sorted(f"s3.{r}.amazonaws.com" for r in regions)}
                },
            },
        ]
    if log_group_arns:
        statements.append(
            {
                "Sid": "WriteRuntimeLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                "Resource": sorted(f"{arn}:*" for arn in log_group_arns),
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


@dataclass(frozen=True)
class EnclaveRoleArgs:
    role_name: str
    account: Account
    tags: dict[str, str]
    kubernetes_nodes: bool = False


class EnclaveRole(pulumi.ComponentResource):
    role: aws.iam.Role
    instance_profile: aws.iam.InstanceProfile
    arn: str

    def __init__(self, name: str, args: EnclaveRoleArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ccp:aws:EnclaveRole", name, None, opts)
        if len(args.role_name) > 64:
            raise ValueError(f"IAM role name {args.role_name!r} is longer than 64 characters")
        partition = args.account.partition
        self.arn = args.account.role_arn(args.role_name)
        self.role = aws.iam.Role(
            name,
            name=args.role_name,
            description="Nitro Enclaves parent instances: attested data-key use only",
            assume_role_policy=to_json(trust_policy(args.account)),
            max_session_duration=3600,
            tags=args.tags,
            opts=child(self),
        )
        managed = [SSM_CORE, *(EKS_NODE_POLICIES if args.kubernetes_nodes else ())]
        for policy in managed:
            aws.iam.RolePolicyAttachment(
                f"{name}-{policy}",
                role=self.role.name,
                policy_arn=f"arn:{partition}:iam::aws:policy/{policy}",
                opts=child(self),
            )
        self.instance_profile = aws.iam.InstanceProfile(
            name,
            name=args.role_name,
            role=self.role.name,
            tags=args.tags,
            opts=child(self),
        )
        self.register_outputs({"arn": self.arn, "instanceProfile": self.instance_profile.name})

    def allow_access(
        self,
        name: str,
        *,
        data_key_arns: Sequence[pulumi.Input[str]],
        storage_key_arns: Sequence[pulumi.Input[str]],
        bucket_arns: Sequence[str],
        log_group_arns: Sequence[pulumi.Input[str]],
        regions: Sequence[str],
    ) -> aws.iam.RolePolicy:
        """Attach the access policy once the keys, buckets and log groups it names exist."""
        document = pulumi.Output.all(
            list(data_key_arns), list(storage_key_arns), list(log_group_arns)
        ).apply(
            lambda values: to_json(
                access_policy(
                    data_key_arns=values[0],
                    storage_key_arns=values[1],
                    bucket_arns=bucket_arns,
                    log_group_arns=values[2],
                    regions=regions,
                )
            )
        )
        return aws.iam.RolePolicy(name, role=self.role.name, policy=document, opts=child(self))
